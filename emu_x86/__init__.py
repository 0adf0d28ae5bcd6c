"""emu-x86: a cycle-approximate x86-64 emulator (emu), its toy Linux-compatible kernel
(kernel), the GNU-as-compatible assembler that builds guest sources (emuas) and the
command line, test runner and tools (emucli), under one import name so that an
install adds a single top-level package to site-packages."""

# typing.TYPE_CHECKING's value at run time, without importing typing: the
# modules on a run's start-up path guard their annotation-only imports with
# ``if TYPE_CHECKING:`` from here, and typing was 2% of a glibc hello's
# instructions. Type checkers (mypy, pyright) and ruff treat any name
# TYPE_CHECKING as true.
TYPE_CHECKING = False
