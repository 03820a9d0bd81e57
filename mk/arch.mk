# The layout's rules (tests/arch/check.py, docs/ARCHITECTURE.md "Layout"):
# calls and includes run one way (ext/net -> ext/engine -> common,
# server/http -> server/store -> common), no two files use each other, no C
# file over 900 lines, every file opens with a comment. Reads the sources
# and the objects of make all (nm); tests/arch/test_check.py first shows it
# catches each rule broken in a small tree.
#
#   make test-arch    the last line is "arch: N passed, N failed"
.PHONY: test-arch
TEST_TARGETS += test-arch

test-arch: $(EXT) server/syncd
	python3 tests/arch/test_check.py
	python3 tests/arch/check.py --objects $(EXT_ODIR) build/server
