# syncd, the reference sync server, and its protocol tests (tests/server).
# common/ is shared with the extension; here it is compiled a second time
# without -DSYNC_LOADABLE so it calls the libsqlite3 the server links.
# syncd reads JSON with common/jscan.c and SQLite's JSON functions (exact
# 64-bit ids and values), so it does not link cJSON. zlib gzips answers
# and event streams (server/http/compress.c).
.PHONY: test-server
TEST_TARGETS += test-server
all: server/syncd

PKGS_SERVER    = libmicrohttpd libpq sqlite3 libcrypto libjwt zlib
SERVER_CFLAGS  = $(WARN) $(SERVER_INC) $(shell pkg-config --cflags $(PKGS_SERVER) 2>/dev/null)
SERVER_LIBS    = $(shell pkg-config --libs $(PKGS_SERVER) 2>/dev/null) -lpthread
SERVER_OBJ     = $(SERVER_SRC:%.c=build/server/%.o)
CLEAN_EXTRA   += server/syncd

server/syncd: $(SERVER_OBJ)
	$(CC) -o $@ $(SERVER_OBJ) $(LDFLAGS) $(SERVER_LIBS)

build/server/%.o: %.c $(SERVER_H)
	@mkdir -p $(dir $@)
	$(CC) $(SERVER_CFLAGS) $(CFLAGS) -c -o $@ $<

test-server: server/syncd
	python3 tests/server/run.py
