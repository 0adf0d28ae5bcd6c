"""Kernel command-line parameters (``emu run --cmdline 'key=value ...'``).

One table of every parameter the kernel understands, named like the Linux
boot parameter it mirrors where there is one, with its parser. An unknown
key or a bad value is a usage error (one line, exit 2), never a traceback.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


class CmdlineError(ValueError):
    pass


def _positive_int(text: str) -> int:
    value = int(text, 0)
    if value <= 0:
        raise ValueError
    return value


def _non_negative_int(text: str) -> int:
    value = int(text, 0)
    if value < 0:
        raise ValueError
    return value


def _on_off(text: str) -> bool:
    if text in ("on", "1", "y", "yes", ""):
        return True
    if text in ("off", "0", "n", "no"):
        return False
    raise ValueError


def _choice(*choices: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in choices:
            raise ValueError
        return text
    parse.choices = choices
    return parse


@dataclass(frozen=True)
class Parameter:
    parse: Callable[[str], object]
    default: object
    help: str


# Dynamic ASIDs must leave PCIDs for the global ASIDs INVLPGB mode hands out
# (PCID = ASID + 1 < 4096; Linux keeps bit 11 for PTI's user PCID).
MAX_DYN_ASIDS = 256

PARAMETERS: dict[str, Parameter] = {
    "sched_quantum": Parameter(_positive_int, 4_000_000, "timer tick / time slice in cycles"),
    "lazy_tlb": Parameter(_choice("refcount", "shootdown", "hazard"), "refcount",
                          "how idle CPUs hold the mm they keep loaded"),
    "tlb_flush": Parameter(_choice("ipi", "invlpgb", "auto"), "ipi",
                           "remote TLB flush transport (invlpgb needs the zen4 profile)"),
    "nr_dyn_asids": Parameter(_positive_int, 6, "per-CPU dynamic ASIDs (TLB_NR_DYN_ASIDS)"),
    "tlb_single_page_flush_ceiling": Parameter(_non_negative_int, 33,
                                               "pages above which a range flush becomes a full flush"),
    "nopcid": Parameter(_on_off, False, "do not use PCIDs: every mm switch flushes"),
    "percpu_pgd": Parameter(_on_off, False, "a top-level page table per (CPU, ASID)"),
    "cpu_opv": Parameter(_choice("on", "off"), "off", "the cpu_opv system call (2018 proposal, 335)"),
    # Checked by kernel/xstate_alloc.py and kernel/bootparams.py (the AMX
    # xstate allocation policies); listed here so they are known keys.
    "xstate_alloc": Parameter(str, "vmalloc", "vmalloc|vmalloc_cache|separate|eager|pages_percpu"),
    "vmalloc": Parameter(str, "", "size of the vmalloc area (memparse: 12K, 64M)"),
    "lazy_max_pages": Parameter(str, "", "lazily freed vmalloc pages before a purge"),
    "xstate_cache": Parameter(str, "", "entries of the vmalloc_cache policy's cache"),
    "strict_sas_size": Parameter(str, "", "check every sigaltstack against the frame size"),
    "tlb_remote_flush": Parameter(_on_off, True,
                                  "debug: off skips remote shootdowns (stale TLBs become visible)"),
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
        except ValueError:
            choices = getattr(parameter.parse, "choices", None)
            hint = f" (one of {', '.join(choices)})" if choices else ""
            raise CmdlineError(f"bad value {text!r} for kernel parameter {key!r}{hint}") from None
    if values["nr_dyn_asids"] > MAX_DYN_ASIDS:
        raise CmdlineError(f"nr_dyn_asids must be at most {MAX_DYN_ASIDS}")
    return values
