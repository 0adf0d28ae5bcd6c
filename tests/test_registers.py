"""emu_x86/emu/registers.py: one-call register batches read and write exactly what the
Unicorn binding's per-register reg_read/reg_write do, for every register of a
task switch (GPRs, flags, segment bases, x87 control words, XMM, FP0-FP7)."""
import random

import unicorn
import unicorn.x86_const as x86

from emu_x86.emu.registers import RegisterBatch, RegisterFile, context_handle
from emu_x86.emu.vcpu import REGISTER_IDS, USER_REGISTER_NAMES


def _random_values(rng):
    values = {}
    for name in USER_REGISTER_NAMES:
        if name.startswith("xmm"):
            values[name] = rng.getrandbits(128)
        elif name.startswith("fp") and name[2:].isdigit():
            values[name] = (rng.getrandbits(64), rng.getrandbits(16))
        elif name == "mxcsr":
            values[name] = rng.getrandbits(16) & 0xFFBF
        elif name in ("fpcw", "fpsw", "fptag"):
            values[name] = rng.getrandbits(16)
        elif name == "rflags":
            values[name] = 0x202 | (rng.getrandbits(1) << 0) | (rng.getrandbits(1) << 6)
        elif name in ("fs_base", "gs_base", "rip"):
            values[name] = rng.getrandbits(47)
        else:
            values[name] = rng.getrandbits(64)
    return values


def _pair():
    return [unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64) for _ in range(2)]


def test_batch_write_then_read_matches_the_binding_register_by_register():
    rng = random.Random(7)
    for _ in range(20):
        values = _random_values(rng)
        batched, single = _pair()
        RegisterBatch(batched, USER_REGISTER_NAMES, [REGISTER_IDS[n] for n in USER_REGISTER_NAMES]).write(values)
        for name, value in values.items():
            single.reg_write(REGISTER_IDS[name], value)
        expected = {name: single.reg_read(REGISTER_IDS[name]) for name in USER_REGISTER_NAMES}
        got = RegisterBatch(batched, USER_REGISTER_NAMES, [REGISTER_IDS[n] for n in USER_REGISTER_NAMES]).read()
        assert got == expected
        assert list(got) == list(USER_REGISTER_NAMES)
        # And the binding reads back what the batch wrote.
        assert {name: batched.reg_read(REGISTER_IDS[name]) for name in USER_REGISTER_NAMES} == expected


def test_register_file_single_and_subset_access_matches_the_binding():
    rng = random.Random(11)
    values = _random_values(rng)
    batched, single = _pair()
    registers = RegisterFile(batched, REGISTER_IDS)
    for name, value in values.items():
        registers.write(name, value)
        single.reg_write(REGISTER_IDS[name], value)
    for name in USER_REGISTER_NAMES:
        assert registers.read(name) == single.reg_read(REGISTER_IDS[name]), name
    subset = {"xmm3": 1 << 127 | 5, "rax": -1, "fp2": (1 << 63, 0x3FFF), "fpsw": 0x3800}
    registers.write_many(subset)
    for name, value in subset.items():
        single.reg_write(REGISTER_IDS[name], value)
    assert registers.read_many(tuple(subset)) == {name: single.reg_read(REGISTER_IDS[name]) for name in subset}
    assert registers.read("rax") == (1 << 64) - 1     # truncated like c_uint64(-1)


def test_batch_write_of_rip_moves_execution_like_reg_write():
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    uc.mem_map(0x1000, 0x1000)
    uc.mem_write(0x1000, b"\x90" * 16 + b"\x48\xff\xc0" + b"\x90" * 16)   # nops; inc rax; nops
    registers = RegisterFile(uc, REGISTER_IDS)
    registers.write_many({"rax": 41, "rip": 0x1010})
    uc.emu_start(registers.read("rip"), 0x1013)
    assert uc.reg_read(x86.UC_X86_REG_RAX) == 42


def _user_batch(uc):
    return RegisterBatch(uc, USER_REGISTER_NAMES, [REGISTER_IDS[n] for n in USER_REGISTER_NAMES])


def test_a_snapshot_holds_what_read_returns_and_restores_like_context_restore_then_write():
    from emu_x86.emu.vcpu import TASK_REGISTER_NAMES
    rng = random.Random(13)
    items = len(TASK_REGISTER_NAMES)
    for _ in range(10):
        values = _random_values(rng)
        source, snapshotted, written = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64), *_pair()
        _user_batch(source).write(values)
        snapshot = _user_batch(source).snapshot(items)
        full = _user_batch(source).read()
        assert list(snapshot) == list(TASK_REGISTER_NAMES)
        assert dict(snapshot) == {name: full[name] for name in TASK_REGISTER_NAMES}
        assert _user_batch(source).values_of(snapshot) == full
        # The kernel edits items while the task is off its CPU (syscall result, rseq abort).
        snapshot["rax"], snapshot["rip"] = 0xFFFF_FFFF_FFFF_FFF2, 0x401000
        full.update(rax=0xFFFF_FFFF_FFFF_FFF2, rip=0x401000)
        clean = snapshotted.context_save()
        snapshotted.reg_write(x86.UC_X86_REG_RAX, 5)     # overwritten by the context restore
        _user_batch(snapshotted).restore_snapshot(snapshot, context_handle(clean))
        written.context_restore(written.context_save())
        _user_batch(written).write(full)
        assert _user_batch(snapshotted).read() == _user_batch(written).read() == full


def test_a_snapshot_restored_without_its_fpregs_leaves_them_to_the_context():
    """load_user_registers(fpregs_follow=True): only the task items are written;
    x87/SSE keep what the clean context holds until the XRSTORS loads them."""
    from emu_x86.emu.vcpu import TASK_REGISTER_NAMES
    values = _random_values(random.Random(17))
    source, target = _pair()
    _user_batch(source).write(values)
    snapshot = _user_batch(source).snapshot(len(TASK_REGISTER_NAMES))
    clean = target.context_save()
    before = _user_batch(target).read()
    _user_batch(target).restore_snapshot(snapshot, context_handle(clean), len(TASK_REGISTER_NAMES))
    after = _user_batch(target).read()
    for name in USER_REGISTER_NAMES:
        assert after[name] == (values[name] if name in TASK_REGISTER_NAMES else before[name]), name


def test_read_values_is_read_in_order_for_scalar_sets():
    uc = unicorn.Uc(unicorn.UC_ARCH_X86, unicorn.UC_MODE_64)
    names = ("rax", "rdi", "rsi", "rdx", "r10", "r8", "r9")
    for offset, name in enumerate(names):
        uc.reg_write(REGISTER_IDS[name], 0x1000 + offset)
    batch = RegisterBatch(uc, names, [REGISTER_IDS[n] for n in names])
    assert batch.read_values() == tuple(batch.read().values()) == tuple(range(0x1000, 0x1007))
