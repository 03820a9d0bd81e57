# SQL regression tests: sql/NAME.sql run through the sqlite3 shell with the
# extension loaded, compared with sql/NAME.out; and README.md's commands and
# snippets (tests/readme_test.py, against a real syncd).
.PHONY: test-sql sql-accept test-sql-valgrind
TEST_TARGETS += test-sql

test-sql: $(EXT) server/syncd
	bash tests/run_sql.sh
	bash tests/readme_test.sh

# Accept the current results as the new expected output (review the diff first).
sql-accept: $(EXT)
	bash tests/run_sql.sh --accept

# The SQL tests under valgrind memcheck: any error or leak report lands in the
# output and fails the comparison. values.sql is left out: valgrind computes
# x87 long doubles with 64 bits, so SQLite's own printf and text-to-REAL
# conversion give different digits under it than on the real CPU.
# Every leak kind but "still reachable" is reported, and so fails the test.
SQL_VALGRIND_LEAKS = --show-leak-kinds=definite,indirect,possible \
                     --errors-for-leak-kinds=definite,indirect,possible
SQL_VALGRIND_TESTS = $(filter-out values,$(basename $(notdir $(wildcard sql/*.sql))))
test-sql-valgrind: $(EXT)
	@echo "test-sql-valgrind: values.sql not run (x87 long double is not emulated by valgrind)"
	SQL_WRAP="valgrind -q --leak-check=full $(SQL_VALGRIND_LEAKS) --error-exitcode=99" \
	  bash tests/run_sql.sh $(SQL_VALGRIND_TESTS)

# The SQL tests against the AddressSanitizer + UBSan build of the extension
# (mk/san.mk), loaded into the stock sqlite3 shell with the sanitizer
# runtimes preloaded; make asan runs them with every other suite.
# intercept_tls_get_addr=0: LeakSanitizer's record of dynamic TLS blocks goes
# wrong with this glibc (a range like 0x3e-0x1000001140) and its tracer then
# crashes at exit ("Tracer caught signal 11"), depending only on the heap's
# layout; leaks are still checked, dynamic TLS is just not scanned for roots.
.PHONY: test-sql-asan
test-sql-asan: asan-build
	SYNC_TEST_PRELOAD="$$($(CC) -print-file-name=libasan.so):$$($(CC) -print-file-name=libubsan.so)" \
	  ASAN_OPTIONS=detect_leaks=1:intercept_tls_get_addr=0 SYNC_EXT=$(abspath build/asan/sync.$(SO)) bash tests/run_sql.sh
