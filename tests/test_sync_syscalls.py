"""Synchronisation and process-resource calls: who owns them, and the pieces
whose encodings the guest tests see only indirectly (the guest tests in
guest/tests/futex, ipc, sched, processes, threads, kernel compare whole
behaviour with the host)."""
import struct
from types import SimpleNamespace

from emu_x86.kernel import syscall_table
from emu_x86.kernel.ipc.shm import SHMID64_DS_BYTES, ShmSegment
from emu_x86.kernel.ldt import fill_ldt
from emu_x86.kernel.rseq import mm_cid_get


def test_each_call_lives_in_its_subsystem_module():
    owners = {
        202: "emu_x86.kernel.futex", 273: "emu_x86.kernel.futex", 274: "emu_x86.kernel.futex", 449: "emu_x86.kernel.futex",
        324: "emu_x86.kernel.membarrier", 334: "emu_x86.kernel.rseq",
        24: "emu_x86.kernel.sched_syscalls", 142: "emu_x86.kernel.sched_syscalls", 143: "emu_x86.kernel.sched_syscalls",
        144: "emu_x86.kernel.sched_syscalls", 145: "emu_x86.kernel.sched_syscalls", 146: "emu_x86.kernel.sched_syscalls",
        147: "emu_x86.kernel.sched_syscalls", 203: "emu_x86.kernel.sched_syscalls", 204: "emu_x86.kernel.sched_syscalls",
        309: "emu_x86.kernel.sched_syscalls",
        97: "emu_x86.kernel.resource", 160: "emu_x86.kernel.resource", 302: "emu_x86.kernel.resource",
        29: "emu_x86.kernel.ipc.shm", 30: "emu_x86.kernel.ipc.shm", 31: "emu_x86.kernel.ipc.shm", 67: "emu_x86.kernel.ipc.shm",
        310: "emu_x86.kernel.process_vm", 311: "emu_x86.kernel.process_vm", 154: "emu_x86.kernel.ldt",
    }
    for number, module in owners.items():
        assert syscall_table.OWNER[number] == module, number


def test_shmid64_ds_is_112_bytes_with_the_perm_padding():
    segment = ShmSegment(kernel=None, id=5, key=0x1234, size_bytes=10000, mode=0o600, seq=3, cpid=7, nattch=2)
    raw = segment.pack()
    assert len(raw) == SHMID64_DS_BYTES == 112
    # struct ipc64_perm: key, uid, gid, cuid, cgid, mode, seq, pad, 4 bytes of alignment, 2 longs.
    key, uid, _gid, _cuid, _cgid, mode, seq = struct.unpack_from("<iIIIIIH", raw)
    assert (key, uid, mode, seq) == (0x1234, 1000, 0o600, 3)
    (segsz,) = struct.unpack_from("<Q", raw, 48)
    cpid, _lpid, nattch = struct.unpack_from("<iiQ", raw, 80)
    assert (segsz, cpid, nattch) == (10000, 7, 2)


def test_fill_ldt_matches_linux_descriptors():
    # Values read back from modify_ldt on the host (guest/tests/kernel/modify_ldt.c).
    data = fill_ldt(0x12345678, 0xABCDE, seg_32bit=1, contents=0, read_exec_only=0, limit_in_pages=1,
                    seg_not_present=0, useable=1)
    assert struct.unpack("<Q", data)[0] == 0x12DAF3345678BCDE
    code = fill_ldt(0x12345678, 0xABCDE, seg_32bit=1, contents=2, read_exec_only=1, limit_in_pages=1,
                    seg_not_present=0, useable=0)
    assert struct.unpack("<Q", code)[0] == 0x12CAF9345678BCDE


def _kernel_with(cpus, current):
    return SimpleNamespace(machine=SimpleNamespace(vcpus=[None] * cpus), current=current)


def test_mm_cid_is_per_cpu_compact_and_reclaimed():
    mm = SimpleNamespace(pcpu_cid={}, mm_users=2)
    task = SimpleNamespace(mm=mm)
    other_mm_task = SimpleNamespace(mm=SimpleNamespace())
    current = [None, None, None, None]
    kernel = _kernel_with(4, current)
    assert mm_cid_get(kernel, task, 0) == 0
    current[0] = task
    assert mm_cid_get(kernel, task, 1) == 1         # CPU 0 still runs the mm: its id is taken
    assert mm_cid_get(kernel, task, 0) == 0         # the same CPU keeps its id
    current[0], current[1] = other_mm_task, task
    # A third CPU would need id 2 >= min(4 CPUs, 2 users): CPU 0 (running another mm) gives its id back.
    assert mm_cid_get(kernel, task, 2) == 0
    assert mm.pcpu_cid == {1: 1, 2: 0}
