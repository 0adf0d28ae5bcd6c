"""Guest RAM (emu_x86/emu/memory.py): the host is asked for transparent huge
pages, so a TLB-miss-heavy guest does not also miss the host's TLB on 4 KiB
pages; whether the kernel took the request shows in /proc/self/smaps."""
from __future__ import annotations

from emu_x86.emu.memory import PhysicalMemory


def thp_eligible(address: int) -> int | None:
    """smaps' THPeligible for the mapping holding ``address``; None if not listed."""
    inside = False
    with open("/proc/self/smaps") as smaps:
        for line in smaps:
            fields = line.split()
            if "-" in fields[0] and not fields[0].endswith(":"):
                start, end = (int(part, 16) for part in fields[0].split("-"))
                inside = start <= address < end
            elif inside and fields[0] == "THPeligible:":
                return int(fields[1])
    return None


def host_thp_setting() -> str:
    with open("/sys/kernel/mm/transparent_hugepage/enabled") as setting:
        return setting.read().split("[", 1)[1].split("]", 1)[0]


def test_guest_ram_is_eligible_for_huge_pages_where_the_host_allows_them():
    memory = PhysicalMemory(64 << 20)
    setting = host_thp_setting()
    eligible = thp_eligible(memory.host_address)
    assert eligible is not None, "guest RAM's mapping is not in /proc/self/smaps"
    # "madvise" (this project's CI hosts) gives huge pages only to mappings
    # that ask; "always" to all; "never" to none.
    assert eligible == (0 if setting == "never" else 1), (setting, eligible)
    assert memory.huge_pages
    # The memory itself behaves as before.
    memory.write(0x1FFFF8, b"abcdefghijklmnop")          # across a 2 MiB boundary
    assert memory.read(0x1FFFF8, 16) == b"abcdefghijklmnop"
    assert memory.read_u64(0x200000) == int.from_bytes(b"ijklmnop", "little")
