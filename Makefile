# Build and test entry points. Each area keeps its own rules in mk/*.mk so
# that the extension, the server and the test suites can grow apart.
#
#   make            build ext/sync.so (the loadable extension) and server/syncd
#   make test       every test that runs in CI (see README)
#   make deps       install what a fresh Debian 12 machine lacks

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN     = -std=c11 -Wall -Wextra -Werror -D_GNU_SOURCE
UNAME_S := $(shell uname -s)
SO       = $(if $(filter Darwin,$(UNAME_S)),dylib,so)

PKGS_EXT    = libcurl libcjson
EXT_CFLAGS  = $(WARN) -fPIC -fvisibility=hidden -DSYNC_LOADABLE $(shell pkg-config --cflags $(PKGS_EXT) 2>/dev/null)
EXT_LIBS    = $(shell pkg-config --libs $(PKGS_EXT) 2>/dev/null) -lpthread

EXT_SRC  = $(wildcard ext/*.c)
EXT_OBJ  = $(EXT_SRC:.c=.o)
EXT      = ext/sync.$(SO)

.PHONY: all test deps clean format lint
all: $(EXT)

$(EXT): $(EXT_OBJ)
	$(CC) -shared -o $@ $(EXT_OBJ) $(LDFLAGS) $(EXT_LIBS)

ext/%.o: ext/%.c $(wildcard ext/*.h)
	$(CC) $(EXT_CFLAGS) $(CFLAGS) -c -o $@ $<

deps:
	bash .ci/deps

format:
	clang-format -i ext/*.c ext/*.h $(wildcard server/*.c server/*.h tests/unit/*.c tests/fuzz/*.c)

clean:
	rm -f ext/*.o $(EXT) $(CLEAN_EXTRA)
	rm -rf sql/results build

include $(wildcard mk/*.mk)

# Every suite registers itself in TEST_TARGETS from its mk/*.mk file. Like
# make demo, make test first installs what the machine lacks (.ci/deps asks
# apt-get only for missing packages) and builds better-sqlite3 for the Node
# binding when npm can (its tests say they are skipped otherwise).
test:
	@bash .ci/deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory bindings-deps || echo "bindings-deps failed: the Node binding's tests will be skipped"
	@fail=0; for t in $(TEST_TARGETS); do $(MAKE) --no-print-directory $$t || fail=1; done; \
	if [ $$fail = 0 ]; then echo "make test: all suites passed"; else echo "make test: some suites FAILED"; exit 1; fi
