"""Kernel command-line parameters (``emu run --cmdline 'key=value ...'``).

One table of every parameter the kernel understands, named like the Linux
boot parameter (or sysctl) it mirrors where there is one, with its parser and
default. ``parse_kernel_cmdline`` checks the whole command line before the
kernel boots; the kernel then reads typed values from ``Kernel.params``. An
unknown key or a bad value is a usage error: one line ``KEY=VALUE: reason``
(``CmdlineError``; ``emu run`` exits 2), never a traceback.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.mm.vmalloc import VMALLOC_SIZE_MAX_BYTES


class CmdlineError(ValueError):
    pass


class BadValue(ValueError):
    """Raised by a parser with the reason; parse_kernel_cmdline names the key."""


# ---- value parsers (each takes the text after '=') -------------------------------------

def _integer(text: str) -> int:
    try:
        return int(text, 0)
    except ValueError:
        raise BadValue("not an integer") from None


def positive_int(text: str) -> int:
    value = _integer(text)
    if value <= 0:
        raise BadValue("must be positive")
    return value


def non_negative_int(text: str) -> int:
    value = _integer(text)
    if value < 0:
        raise BadValue("must not be negative")
    return value


def memparse(text: str) -> int:
    """A size with an optional K/M/G/T suffix (lib/cmdline.c memparse)."""
    shifts = {"k": 10, "m": 20, "g": 30, "t": 40}
    body, shift = text, 0
    if text and text[-1].lower() in shifts:
        body, shift = text[:-1], shifts[text[-1].lower()]
    try:
        value = int(body, 0)
    except ValueError:
        raise BadValue("not a size (a number with an optional K, M, G or T)") from None
    if value <= 0:
        raise BadValue("must be positive")
    return value << shift


def vmalloc_size(text: str) -> int:
    """vmalloc=SIZE: at most the 32 TiB vmalloc range, at least a page and its guard page."""
    size = memparse(text)
    if size > VMALLOC_SIZE_MAX_BYTES:
        raise BadValue("larger than the 32T vmalloc range")
    if size < 2 * PAGE_SIZE:
        raise BadValue("smaller than one page and its guard")
    return size


def kstrtobool(text: str) -> bool:
    """1/y/yes/on/true and 0/n/no/off/false (lib/kstrtox.c kstrtobool); a bare flag is true."""
    lowered = text.lower()
    if lowered in ("", "1", "y", "yes", "on", "true"):
        return True
    if lowered in ("0", "n", "no", "off", "false"):
        return False
    raise BadValue("not a boolean (use 1/0, y/n, on/off)")


def choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise BadValue(f"unknown value (one of: {', '.join(choices)})")
        return text
    return parse


def integer_in(allowed: range) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _integer(text)
        if value not in allowed:
            raise BadValue(f"not a valid value ({allowed.start} to {allowed.stop - 1})")
        return value
    return parse


@dataclass(frozen=True)
class Parameter:
    """A kernel command-line parameter: how to parse it, its default and its help text."""

    parse: Callable[[str], object]
    default: object
    help: str


# Dynamic ASIDs must leave PCIDs for the global ASIDs INVLPGB mode hands out
# (PCID = ASID + 1 < 4096; Linux keeps bit 11 for PTI's user PCID).
MAX_DYN_ASIDS = 256
XSTATE_ALLOC_POLICIES = ("vmalloc", "vmalloc_cache", "separate", "eager", "pages_percpu")

PARAMETERS: dict[str, Parameter] = {
    "sched_quantum": Parameter(positive_int, 4_000_000, "timer tick / time slice in cycles"),
    "lazy_tlb": Parameter(choice("refcount", "shootdown", "hazard"), "refcount",
                          "how idle CPUs hold the mm they keep loaded"),
    "tlb_flush": Parameter(choice("ipi", "invlpgb", "auto"), "ipi",
                           "remote TLB flush transport (invlpgb needs a profile with INVLPGB: zen3, zen4, zen5)"),
    "nr_dyn_asids": Parameter(integer_in(range(1, MAX_DYN_ASIDS + 1)), 6,
                              "per-CPU dynamic ASIDs (TLB_NR_DYN_ASIDS)"),
    "tlb_single_page_flush_ceiling": Parameter(non_negative_int, 33,
                                               "pages above which a range flush becomes a full flush"),
    "nopcid": Parameter(kstrtobool, False, "do not use PCIDs: every mm switch flushes"),
    "percpu_pgd": Parameter(kstrtobool, False, "a top-level page table per (CPU, ASID)"),
    "cpu_opv": Parameter(choice("on", "off"), "off", "the cpu_opv system call (2018 proposal, 335)"),
    "vdso": Parameter(kstrtobool, True, "map the vDSO into every program (vdso=0: clock calls are syscalls)"),
    "tlb_remote_flush": Parameter(kstrtobool, True,
                                  "debug: off skips remote shootdowns (stale TLBs become visible)"),
    # The AMX xstate buffers and the vmalloc space (emu_x86/kernel/xstate_alloc.py,
    # emu_x86/kernel/mm/vmalloc.py); None: the built-in default.
    "xstate_alloc": Parameter(choice(*XSTATE_ALLOC_POLICIES), "vmalloc",
                              "where a task's large (AMX) fpstate buffer comes from"),
    "vmalloc": Parameter(vmalloc_size, None, "size of the vmalloc area (memparse: 12K, 64M)"),
    "lazy_max_pages": Parameter(non_negative_int, None, "lazily freed vmalloc pages before a purge"),
    "xstate_cache": Parameter(non_negative_int, None, "entries of the vmalloc_cache policy's cache"),
    "strict_sas_size": Parameter(kstrtobool, False, "check every sigaltstack against the frame size"),
    # The overcommit policy of emu_x86/kernel/mm/frames.py (sysctl vm.overcommit_*).
    "sysctl.vm.overcommit_memory": Parameter(integer_in(range(0, 3)), 0,
                                             "0 guess, 1 always, 2 never (vm.overcommit_memory)"),
    "sysctl.vm.overcommit_ratio": Parameter(integer_in(range(0, 1 << 20)), 50,
                                            "percent of RAM committable in mode 2"),
}


def parse_kernel_cmdline(raw: dict[str, str]) -> dict[str, object]:
    """Validate ``key=value`` pairs; the result has every known key (defaults filled)."""
    values = {name: parameter.default for name, parameter in PARAMETERS.items()}
    for key, text in raw.items():
        parameter = PARAMETERS.get(key)
        if parameter is None:
            raise CmdlineError(f"unknown kernel parameter {key!r} (known: {', '.join(sorted(PARAMETERS))})")
        try:
            values[key] = parameter.parse(text)
        except BadValue as reason:
            raise CmdlineError(f"{key}={text}: {reason}") from None
    return values
