# syncd, the reference sync server, and its protocol tests (tests/server).
# value.c is shared with the extension; here it is compiled a second time
# without -DSYNC_LOADABLE so it calls the libsqlite3 the server links.
# syncd parses JSON with SQLite's JSON functions only (exact 64-bit ids and
# values), so it does not link cJSON.
.PHONY: test-server
TEST_TARGETS += test-server
all: server/syncd

PKGS_SERVER    = libmicrohttpd libpq sqlite3 libcrypto
SERVER_CFLAGS  = $(WARN) $(shell pkg-config --cflags $(PKGS_SERVER) 2>/dev/null)
SERVER_LIBS    = $(shell pkg-config --libs $(PKGS_SERVER) 2>/dev/null) -lpthread
SERVER_SRC     = $(wildcard server/*.c)
SERVER_OBJ     = $(SERVER_SRC:.c=.o) server/value.o
CLEAN_EXTRA   += server/*.o server/syncd

server/syncd: $(SERVER_OBJ)
	$(CC) -o $@ $(SERVER_OBJ) $(LDFLAGS) $(SERVER_LIBS)

server/%.o: server/%.c $(wildcard server/*.h) ext/value.h
	$(CC) $(SERVER_CFLAGS) $(CFLAGS) -c -o $@ $<

server/value.o: ext/value.c ext/value.h ext/sqlite_api.h
	$(CC) $(SERVER_CFLAGS) $(CFLAGS) -c -o $@ $<

test-server: server/syncd
	python3 tests/server/run.py
