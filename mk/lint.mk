# Static checks of the C sources, not part of make test (their findings
# depend on the tools' versions): cppcheck's warning and portability
# checks, then clang-format against .clang-format. Both come with the
# machine (make deps installs them when missing). A finding cppcheck gets
# wrong is silenced where it is, with "cppcheck-suppress ID" and the reason.
#
#   make lint    exits non-zero on any finding, and names it
.PHONY: lint
LINT_SRC = $(sort $(wildcard common/*.[ch] ext/*.[ch] ext/engine/*.[ch] ext/net/*.[ch] \
                             server/*/*.[ch] agent/*.[ch] tests/unit/*.[ch]))

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
	  --inline-suppr --suppress=missingIncludeSystem -D_GNU_SOURCE -j2 \
	  -Icommon -Iext -Iext/engine -Iext/net -Iserver/http -Iserver/store \
	  common ext server agent
	clang-format --dry-run -Werror $(LINT_SRC)
	@echo "lint: $(words $(LINT_SRC)) files clean"
