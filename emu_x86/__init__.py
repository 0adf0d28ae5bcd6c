"""emu-x86: a cycle-approximate x86-64 emulator (emu), its toy Linux-compatible kernel
(kernel), the GNU-as-compatible assembler that builds guest sources (emuas) and the
command line, test runner and tools (emucli), under one import name so that an
install adds a single top-level package to site-packages."""
