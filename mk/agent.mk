# agent/sync-agent: the background agent (docs/AGENT.md). It links
# libsqlite3 and loads ext/sync.so into its own connections; the extension
# itself never links libsqlite3.
#
#   make test-agent   its end-to-end test (tests/agent) against a real
#                     syncd; the last line is "N passed, N failed"
.PHONY: test-agent
TEST_TARGETS += test-agent
all: agent/sync-agent

AGENT_SRC    = $(wildcard agent/*.c)
AGENT_CFLAGS = $(WARN) $(shell pkg-config --cflags sqlite3 2>/dev/null) \
               -DSYNC_AGENT_LIBDIR='"$(PREFIX)/lib/sqlite-sync"' -DSYNC_SO='"$(SO)"'
CLEAN_EXTRA += agent/sync-agent

agent/sync-agent: $(AGENT_SRC) $(wildcard agent/*.h)
	$(CC) $(AGENT_CFLAGS) $(CFLAGS) -o $@ $(AGENT_SRC) $(LDFLAGS) \
	  $(shell pkg-config --libs sqlite3 2>/dev/null || echo -lsqlite3)

test-agent: $(EXT) server/syncd agent/sync-agent
	$(E2E_PYTHON) tests/agent/run.py
