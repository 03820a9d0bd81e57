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
