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
# The tree (docs/ARCHITECTURE.md, "Layout"): common/ is compiled into both
# the extension and syncd; ext/engine/ is the engine (no threads, no
# network); ext/net/ is the network layer, left out by `make NET=0`, which
# builds an engine-only ext/sync.so that does not link libcurl.
NET        ?= 1
INC_COMMON  = -Icommon
COMMON_SRC  = $(wildcard common/*.c)
COMMON_H    = $(wildcard common/*.h)
ENGINE_SRC  = $(wildcard ext/*.c ext/engine/*.c)
NET_SRC     = $(if $(filter 0,$(NET)),,$(wildcard ext/net/*.c))
EXT_H       = $(COMMON_H) $(wildcard ext/*.h ext/engine/*.h ext/net/*.h)
EXT_INC     = $(INC_COMMON) -Iext -Iext/engine $(if $(NET_SRC),-Iext/net)
# syncd's sources are listed here, not in mk/server.mk: mk/fuzz.mk and
# mk/san.mk, read before it, expand them in their rules' prerequisites.
SERVER_DIRS = server $(wildcard server/*/)
SERVER_INC  = $(INC_COMMON) $(patsubst %/,%,$(SERVER_DIRS:%=-I%))
SERVER_SRC  = $(COMMON_SRC) $(wildcard server/*.c server/*/*.c)
SERVER_H    = $(COMMON_H) $(wildcard server/*.h server/*/*.h)
PKGS_EXT    = $(if $(filter 0,$(NET)),libcjson,libcurl libcjson)
EXT_CFLAGS  = $(WARN) -fPIC -fvisibility=hidden -DSYNC_LOADABLE $(if $(filter 0,$(NET)),-DSYNC_NO_NET) \
              $(EXT_INC) $(shell pkg-config --cflags $(PKGS_EXT) 2>/dev/null)
EXT_LIBS    = $(shell pkg-config --libs $(PKGS_EXT) 2>/dev/null) -lpthread

EXT_SRC  = $(COMMON_SRC) $(ENGINE_SRC) $(NET_SRC)
# Objects live under build/: common/ is compiled once for the extension and
# once for syncd, and a NET=0 build keeps its own objects.
EXT_ODIR = build/ext$(if $(filter 0,$(NET)),-nonet)
EXT_OBJ  = $(EXT_SRC:%.c=$(EXT_ODIR)/%.o)
EXT      = ext/sync.$(SO)

.PHONY: all test deps clean format lint
all: $(EXT)

# The extension is relinked whenever NET differs from the last build's.
EXT_FLAVOR = build/ext-flavor
$(shell mkdir -p build; [ "$$(cat $(EXT_FLAVOR) 2>/dev/null)" = "NET=$(NET)" ] || echo "NET=$(NET)" > $(EXT_FLAVOR))

$(EXT): $(EXT_OBJ) $(EXT_FLAVOR)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(EXT_OBJ) $(LDFLAGS) $(EXT_LIBS)

$(EXT_ODIR)/%.o: %.c $(EXT_H)
	@mkdir -p $(dir $@)
	$(CC) $(EXT_CFLAGS) $(CFLAGS) -c -o $@ $<

deps:
	bash .ci/deps

format:
	clang-format -i $(wildcard agent/*.[ch] common/*.[ch] ext/*.[ch] ext/*/*.[ch] server/*.[ch] server/*/*.[ch] tests/unit/*.c tests/fuzz/*.c)

clean:
	rm -f $(EXT) $(CLEAN_EXTRA)
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
