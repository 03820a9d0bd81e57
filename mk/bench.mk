# Benchmarks (not part of `make test`: they measure, they do not judge).
#
#   make bench                     every figure, printed as one table
#   make bench BENCH_ARGS="-r 3"   fewer repetitions (see bench/bench.c)
#
# Each figure is a ratio against a baseline measured in the same process;
# bench/RESULTS.md keeps the results with the command that produced them.
.PHONY: bench
BENCH_ARGS ?=
CLEAN_EXTRA += bench/bench

bench/bench: bench/bench.c
	$(CC) $(WARN) $(CFLAGS) -o $@ $< $(LDFLAGS) -lsqlite3

bench: bench/bench $(EXT)
	./bench/bench $(EXT) $(BENCH_ARGS)

# The network figures (issue 6, 4 to 8): a real syncd on loopback and
# clients loading the extension (bench/net/netbench.py; needs a python whose
# sqlite3 module can load extensions, and tests/pg_env.sh's PostgreSQL for
# the second half of figure 7). Takes about 15 minutes.
#
#   make bench-net                                all of it
#   make bench-net NETBENCH_ARGS="--quick"        small sizes, a smoke run
#   make bench-net NETBENCH_ARGS="--only 4,6"     some figures
.PHONY: bench-net
NETBENCH_ARGS ?=
NETBENCH_PYTHON ?= /usr/bin/python3

bench-net: $(EXT) server/syncd
	$(NETBENCH_PYTHON) bench/net/netbench.py $(NETBENCH_ARGS)

# The push path on both storages (issue 17): one client's drain and 50
# pushers, on SQLite then on a throwaway PostgreSQL (bench/net/pgpush.py;
# PGPUSH_ARGS="--syncd OLD/syncd" measures another build).
.PHONY: bench-pg
PGPUSH_ARGS ?=

bench-pg: $(EXT) server/syncd
	cd bench/net && $(NETBENCH_PYTHON) pgpush.py $(PGPUSH_ARGS)

# The read rules (issue 15, "Speed"): one user's initial sync of 10k rows
# of a 1M-row table under `owner = :sub` vs 10k rows without rules (with
# the query plans), and event fan-out to 200 users, each change readable
# by one project's 10 members, vs the same without rules, and the pull
# after joining a project (move-in) vs a full resync
# (bench/net/rulesbench.py; a few minutes, most of it building the table).
#
#   make bench-rules                                        all of it
#   make bench-rules RULESBENCH_ARGS="--only c --opens 5000"  (c): move-in
#   make bench-rules RULESBENCH_ARGS="--rows 200000 --only a"
#   make bench-rules RULESBENCH_ARGS="--pg --only a"      (a) on PostgreSQL
.PHONY: bench-rules
RULESBENCH_ARGS ?=

bench-rules: server/syncd
	$(NETBENCH_PYTHON) bench/net/rulesbench.py $(RULESBENCH_ARGS)

# Compression (issue 16): an initial sync's bytes and time, and the live
# latency over the event stream, from a syncd that gzips and one run with
# --no-compress, on the same seeded rows (bench/net/gzbench.py).
#
#   make bench-gzip                               100,000 rows, 300 changes
#   make bench-gzip GZBENCH_ARGS="--rows 1000000"
.PHONY: bench-gzip
GZBENCH_ARGS ?=

bench-gzip: $(EXT) server/syncd
	cd bench/net && $(NETBENCH_PYTHON) gzbench.py $(GZBENCH_ARGS)

# Live clients (issue 17): N event streams on one syncd (one per client
# id), then one-row pushes: syncd's RSS and threads, the p99 from a push to
# each stream's event, /health and /push latency meanwhile, at 100, 1,000
# and 10,000 streams (bench/net/streambench.py; raises its own descriptor
# limit and syncd's to the hard limit; about 3 minutes).
#
#   make bench-streams
#   make bench-streams STREAMBENCH_ARGS="--baseline OLD/server/syncd"
#   make bench-streams STREAMBENCH_ARGS="--sizes 1000 --changes 50"
.PHONY: bench-streams
STREAMBENCH_ARGS ?=

bench-streams: server/syncd
	$(NETBENCH_PYTHON) bench/net/streambench.py $(STREAMBENCH_ARGS)

# Verify (issue 14, "Speed"): POST /verify of a 1M-row table from syncd's
# fingerprint cache -- warm, and the first request after N rows changed
# behind syncd's back -- against the full scan (--verify-scan), same run
# (bench/net/verifybench.py; about a minute on SQLite).
#
#   make bench-verify                                       SQLite
#   make bench-verify VERIFYBENCH_ARGS="--pg"               PostgreSQL (tests/pg_env.sh)
#   make bench-verify VERIFYBENCH_ARGS="--rows 100000 --changes 10,100"
.PHONY: bench-verify
VERIFYBENCH_ARGS ?=

bench-verify: server/syncd
	$(NETBENCH_PYTHON) bench/net/verifybench.py $(VERIFYBENCH_ARGS)

# Verify on the client (issue 14, "Speed"): sync_verify('todos') of a
# 1M-row table in sync against count(*) and sum(length(...)) of it, and
# its bytes on the wire (a counting relay in front of syncd), then the
# repair of 100 rows changed behind syncd against a full sync's bytes, with
# gzip and without (bench/net/verifyclient.py; a few minutes, most of it
# the initial sync).
#
#   make bench-verify-client
#   make bench-verify-client VERIFYCLIENT_ARGS="--rows 100000 --reps 3"
.PHONY: bench-verify-client
VERIFYCLIENT_ARGS ?=

bench-verify-client: $(EXT) server/syncd
	$(NETBENCH_PYTHON) bench/net/verifyclient.py $(VERIFYCLIENT_ARGS)
