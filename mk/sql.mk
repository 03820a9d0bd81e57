# SQL regression tests: sql/NAME.sql run through the sqlite3 shell with the
# extension loaded, compared with sql/NAME.out.
.PHONY: test-sql sql-accept
TEST_TARGETS += test-sql

test-sql: $(EXT)
	bash tests/run_sql.sh

# Accept the current results as the new expected output (review the diff first).
sql-accept:
	bash tests/run_sql.sh --accept
