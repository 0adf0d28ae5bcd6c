"""The exact linear address of a page fault (what CR2 receives).

Unicorn's TLB-fill hook only reports the page of the failing access, but
CR2 must hold the faulting linear address itself (SDM Vol. 3A §4.7) because
Linux passes it on as si_addr. So on a #PF the machine decodes the faulting
instruction and recomputes its memory operands' effective addresses from the
live registers; the operand that lies on the faulting page is the answer. An
access that starts on the previous page and runs into the faulting one
faults at the first byte of the faulting page.
"""
from __future__ import annotations

from emu_x86.emu.isa.decoder import X86_OP_MEM, X86_REG_FS, X86_REG_GS, X86_REG_RIP, detailed_decoder

PAGE_MASK = ~0xFFF

_GPR64 = ("rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp",
          "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
# 32-bit register names used as address registers (addr32 prefix) -> 64-bit.
_GPR32 = {"eax": "rax", "ebx": "rbx", "ecx": "rcx", "edx": "rdx", "esi": "rsi", "edi": "rdi",
          "ebp": "rbp", "esp": "rsp", **{f"r{i}d": f"r{i}" for i in range(8, 16)}}

_STRING_SOURCE = {"movsb", "movsw", "movsd", "movsq", "lodsb", "lodsw", "lodsd", "lodsq",
                  "cmpsb", "cmpsw", "cmpsd", "cmpsq", "outsb", "outsw", "outsd"}
_STRING_DESTINATION = {"movsb", "movsw", "movsd", "movsq", "stosb", "stosw", "stosd", "stosq",
                       "scasb", "scasw", "scasd", "scasq", "cmpsb", "cmpsw", "cmpsd", "cmpsq",
                       "insb", "insw", "insd"}
_STACK_PUSHERS = {"push", "call", "pushfq", "pushf", "enter"}
_STACK_POPPERS = {"pop", "ret", "popfq", "popf", "leave", "iretq"}


def candidate_addresses(code: bytes, rip: int, read_register) -> list[int]:
    """Effective addresses the instruction at ``rip`` accesses (best effort)."""
    try:
        insn = next(detailed_decoder().disasm(code, rip, 1))
    except StopIteration:
        return []
    addresses = []
    for operand in insn.operands:
        if operand.type != X86_OP_MEM:
            continue
        mem = operand.mem
        address = mem.disp
        if mem.base == X86_REG_RIP:
            address += insn.address + insn.size
        elif mem.base:
            address += _register_value(insn.reg_name(mem.base), read_register)
        if mem.index:
            address += _register_value(insn.reg_name(mem.index), read_register) * mem.scale
        if mem.segment == X86_REG_FS:
            address += read_register("fs_base")
        elif mem.segment == X86_REG_GS:
            address += read_register("gs_base")
        addresses.append(address & ((1 << 64) - 1))
    mnemonic = insn.mnemonic.split()[-1]   # drop rep/repne prefixes
    if mnemonic in _STRING_SOURCE:
        addresses.append(read_register("rsi"))
    if mnemonic in _STRING_DESTINATION:
        addresses.append(read_register("rdi"))
    rsp = read_register("rsp")
    if mnemonic in _STACK_PUSHERS:
        addresses.append((rsp - 8) & ((1 << 64) - 1))
    if mnemonic in _STACK_POPPERS:
        addresses.append(rsp)
    return addresses


def _register_value(name: str, read_register) -> int:
    if name in _GPR64:
        return read_register(name)
    if name in _GPR32:
        return read_register(_GPR32[name]) & 0xFFFFFFFF
    return 0


def exact_fault_address(fault_page_address: int, candidates: list[int], access_bytes: int = 64) -> int:
    """Pick the candidate on the faulting page; an access running into the
    page from below faults at the page's first byte."""
    page = fault_page_address & PAGE_MASK
    for address in candidates:
        if address & PAGE_MASK == page:
            return address
    for address in candidates:
        if address < page < address + access_bytes:
            return page
    return fault_page_address
