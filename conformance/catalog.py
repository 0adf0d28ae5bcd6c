"""Which selftests run, how each is built, and with which arguments.

One ``Program`` per binary (source, extra sources, the flags of its own
Makefile), one ``Case`` per run (arguments, whether threads make the vCPU
count matter).  The argument sets are the ones the suites' run scripts use
(``rseq/run_param_test.sh``, ``futex/functional/run.sh``); where a set is
reduced to keep an emulated run well under a minute, the note says so and
the report repeats it.
"""
from __future__ import annotations

from dataclasses import dataclass

# Common to every build: static glibc, as `emu run` needs, and lib.mk's
# `-D_GNU_SOURCE=` (without it futex's basename() is implicitly declared and the
# programs crash natively).
BASE_CFLAGS = ("-O2", "-static", "-pthread", "-D_GNU_SOURCE=")
THREADS_PER_CPU = 6            # run_param_test.sh: NR_THREADS=$((6*${NR_CPUS}))
PARAM_REPS = 100               # run_param_test.sh uses REPS=1000; reduced for the emulator
NR_CPUS = "{nr_cpus_threads}"  # placeholder: 6 x the CPUs of the machine running it


@dataclass(frozen=True)
class Program:
    suite: str                     # rseq, membarrier, futex, x86
    name: str                      # binary name (x86: with its _64 suffix)
    source: str                    # relative to tools/testing/selftests
    extra_sources: tuple[str, ...] = ()
    cflags: tuple[str, ...] = ()   # relative include paths are relative to the source's folder
    libs: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    program: Program
    args: tuple[str, ...] = ()
    threaded: bool = False         # run under emu with 1 and 4 vCPUs
    profile: str | None = None     # emu --profile (None: the default, spr)
    note: str = ""

    @property
    def name(self) -> str:
        return f"{self.program.suite}/{self.program.name}"

    @property
    def label(self) -> str:
        """The arguments as shown in the report (the thread-count placeholder spelled out)."""
        return " ".join(f"{THREADS_PER_CPU}×NR_CPUS" if a == NR_CPUS else a for a in self.args)

    def argv(self, nr_cpus: int) -> list[str]:
        return [str(THREADS_PER_CPU * nr_cpus) if a == NR_CPUS else a for a in self.args]


# ---- rseq ------------------------------------------------------------------
# The Makefile links librseq.so (rseq.c); statically, rseq.c is compiled in.
_RSEQ_FLAGS = ("-Wall", "-I.", "-I../../../../tools/include")
_RSEQ_LIBS = ("-ldl",)


def _rseq(name: str, source: str, *defines: str) -> Program:
    return Program("rseq", name, f"rseq/{source}", ("rseq/rseq.c",), (*_RSEQ_FLAGS, *defines), _RSEQ_LIBS)


RSEQ_PROGRAMS = {
    "basic_test": _rseq("basic_test", "basic_test.c"),
    "basic_percpu_ops_test": _rseq("basic_percpu_ops_test", "basic_percpu_ops_test.c"),
    "basic_percpu_ops_mm_cid_test": _rseq("basic_percpu_ops_mm_cid_test", "basic_percpu_ops_test.c",
                                          "-DBUILDOPT_RSEQ_PERCPU_MM_CID"),
    "param_test": _rseq("param_test", "param_test.c"),
    "param_test_mm_cid": _rseq("param_test_mm_cid", "param_test.c", "-DBUILDOPT_RSEQ_PERCPU_MM_CID"),
}
# run_param_test.sh's TEST_LIST, in its order.
PARAM_TEST_SETS = (("-T", "s"), ("-T", "l"), ("-T", "b"), ("-T", "b", "-M"), ("-T", "m"), ("-T", "m", "-M"),
                   ("-T", "i"), ("-T", "r"))
# The script then repeats all eight with each injection; here one test (spinlock)
# carries each injection kind: loop injection at points 1-9 (10000 loops) and the
# blocking injections at 25% (yield at 7, kill at 8, sleep 1 ms at 9).
PARAM_INJECTIONS = (*[("-T", "s", f"-{point}", "10000") for point in range(1, 10)],
                    ("-T", "s", "-7", "-1", "-m", "4", "-y"),
                    ("-T", "s", "-8", "-1", "-m", "4", "-k"),
                    ("-T", "s", "-9", "-1", "-m", "4", "-s", "1"))
PARAM_NOTE = (f"run_param_test.sh's option sets with -r {PARAM_REPS} (the script: 1000) and -t 6×NR_CPUS; "
              "the injection sets only on -T s")


def _rseq_cases() -> list[Case]:
    cases = [Case(RSEQ_PROGRAMS[name], threaded=True)
             for name in ("basic_test", "basic_percpu_ops_test", "basic_percpu_ops_mm_cid_test")]
    for name in ("param_test", "param_test_mm_cid"):
        for option_set in (*PARAM_TEST_SETS, *PARAM_INJECTIONS):
            cases.append(Case(RSEQ_PROGRAMS[name], (*option_set, "-r", str(PARAM_REPS), "-t", NR_CPUS),
                              threaded=True, note=PARAM_NOTE))
    return cases


# ---- membarrier --------------------------------------------------------------

def _membarrier_cases() -> list[Case]:
    return [Case(Program("membarrier", name, f"membarrier/{name}.c"), threaded=name.endswith("multi_thread"))
            for name in ("membarrier_test_single_thread", "membarrier_test_multi_thread")]


# ---- futex/functional ----------------------------------------------------------
_FUTEX_FLAGS = ("-Wall", "-I../include", "-I../..")
_FUTEX_LIBS = ("-lrt",)
# futex/functional/run.sh, in its order, duplicates dropped (it runs
# "-l -t 5000" and "-l -t 500000" twice); no -c (colour).
FUTEX_RUNS = (
    ("futex_requeue_pi", ()), ("futex_requeue_pi", ("-b",)), ("futex_requeue_pi", ("-b", "-l")),
    ("futex_requeue_pi", ("-b", "-o")), ("futex_requeue_pi", ("-l",)), ("futex_requeue_pi", ("-o",)),
    ("futex_requeue_pi", ("-b", "-l", "-t", "5000")), ("futex_requeue_pi", ("-l", "-t", "5000")),
    ("futex_requeue_pi", ("-b", "-l", "-t", "500000")), ("futex_requeue_pi", ("-l", "-t", "500000")),
    ("futex_requeue_pi", ("-b", "-t", "5000")), ("futex_requeue_pi", ("-t", "5000")),
    ("futex_requeue_pi", ("-b", "-t", "500000")), ("futex_requeue_pi", ("-t", "500000")),
    ("futex_requeue_pi", ("-b", "-o", "-t", "5000")), ("futex_requeue_pi", ("-b", "-o", "-t", "500000")),
    ("futex_requeue_pi", ("-b", "-l", "-t", "2000000000")), ("futex_requeue_pi", ("-l", "-t", "2000000000")),
    ("futex_requeue_pi_mismatched_ops", ()),
    ("futex_requeue_pi_signal_restart", ()),
    ("futex_wait_timeout", ()),
    ("futex_wait_wouldblock", ()),
    ("futex_wait_uninitialized_heap", ()),
    ("futex_wait_private_mapped_file", ()),
    ("futex_wait", ()),
    ("futex_requeue", ()),
    ("futex_waitv", ()),
)


def _futex_cases() -> list[Case]:
    return [Case(Program("futex", name, f"futex/functional/{name}.c", (), _FUTEX_FLAGS, _FUTEX_LIBS), args,
                 threaded=True) for name, args in FUTEX_RUNS]


# ---- x86 ---------------------------------------------------------------------
# x86/Makefile: -O2 -g -std=gnu99 -pthread -Wall, -no-pie, -lrt -ldl, 64-bit
# variants only (the guest is x86-64 only). Per-test extras as the Makefile's.
_X86_FLAGS = ("-std=gnu99", "-Wall", "-no-pie", "-DCAN_BUILD_64")
_X86_LIBS = ("-lrt", "-ldl")
_X86_EXTRA = {
    "fsgsbase_restore": (("x86/clang_helpers_64.S",), ()),
    "sysret_rip": (("x86/clang_helpers_64.S",), ()),
    "check_initial_reg_state": ((), ("-Wl,-ereal_start",)),
    "nx_stack": ((), ("-Wl,-z,noexecstack",)),
}
X86_TESTS = ("amx", "sigaltstack", "corrupt_xstate_header", "sysret_rip", "single_step_syscall", "syscall_nt",
             "check_initial_reg_state", "sigtrap_loop", "nx_stack", "ioperm", "iopl", "syscall_arg_fault",
             "syscall_numbering", "test_vsyscall", "fsgsbase", "fsgsbase_restore", "mov_ss_trap",
             "ptrace_syscall", "test_mremap_vdso", "sigreturn", "xstate")
# Threads or processes whose interleaving depends on the vCPU count.
_X86_THREADED = {"amx", "fsgsbase", "fsgsbase_restore", "ptrace_syscall", "syscall_numbering"}


def _x86_cases(available: set[str] | None) -> list[Case]:
    cases = []
    for name in X86_TESTS:
        if available is not None and f"x86/{name}.c" not in available:
            continue             # xstate.c arrived after 6.12
        extra_sources, extra_flags = _X86_EXTRA.get(name, ((), ()))
        program = Program("x86", f"{name}_64", f"x86/{name}.c", extra_sources, (*_X86_FLAGS, *extra_flags),
                          _X86_LIBS)
        cases.append(Case(program, threaded=name in _X86_THREADED))
    return cases


def all_cases(available: set[str] | None = None) -> list[Case]:
    """Every case, in report order; ``available`` (source paths present in the
    tree) drops tests this kernel version lacks."""
    return [*_rseq_cases(), *_membarrier_cases(), *_futex_cases(), *_x86_cases(available)]


def missing_tests(available: set[str]) -> list[str]:
    """Tests the brief lists that this tree does not have (named in the report)."""
    return [f"x86/{name}" for name in X86_TESTS if f"x86/{name}.c" not in available]


def select(cases: list[Case], patterns: list[str]) -> list[Case]:
    """Cases whose ``suite/name`` contains any of ``patterns`` (all when empty)."""
    if not patterns:
        return cases
    return [c for c in cases if any(p in c.name for p in patterns)]


__all__ = ["Case", "Program", "all_cases", "missing_tests", "select"]
