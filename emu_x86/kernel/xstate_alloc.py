"""Where a task's large (AMX) xstate buffer comes from: the ``xstate_alloc=`` policies.

Linux today (arch/x86/kernel/fpu/xstate.c fpstate_realloc) vzalloc()s the
larger fpstate on the first #NM and vfree()s it when the task_struct is
released; each vfree leaves a lazily flushed range behind, and every
``lazy_max_pages`` of them cost a TLB-flush IPI to every CPU
(emu_x86/kernel/mm/vmalloc.py). The alternatives argued about on the lists are
policies here, chosen with ``--cmdline xstate_alloc=NAME``:

- ``vmalloc``: Linux's behaviour.
- ``vmalloc_cache``: a free list of vmalloc'ed buffers per size (the cache of
  common sizes proposed in the 2020 AMX thread): exiting tasks park their
  buffer, the next first use takes it, so churn does not vfree.
- ``separate``: the task keeps its standard fpstate; the AMX components go in
  their own vmalloc'ed buffer with a second XSAVES/XRSTORS, so only AMX tasks
  pay for the variable layout.
- ``eager``: every task gets the full buffer at creation (embedded in
  task_struct, as before XFD); a permitted process never takes #NM.
- ``pages_percpu``: the AMX state lives in an array of page frames (no
  vmalloc, so no purge IPIs); XSAVES/XRSTORS always target this CPU's
  contiguous area, copied in before the restore and out after the save.

Owned here: the policy's caches and per-CPU areas, and the live/peak byte
count of large buffers. emu_x86/kernel/fpu.py owns the fpstates themselves.
"""
from __future__ import annotations

from emu_x86 import TYPE_CHECKING
from emu_x86.emu.isa import xstate
from emu_x86.emu.isa.state import XFEATURE_MASK_XTILE
from emu_x86.emu.memory import PAGE_SIZE
from emu_x86.kernel.cmdline import CmdlineError
from emu_x86.kernel.fpu import (
    FPSTATE_EMBEDDED,
    FPSTATE_PAGES,
    FPSTATE_VMALLOC,
    XFEATURE_MASK_USER_DYNAMIC,
    FpState,
    fpstate_replace,
    init_xstate_header,
    xfd_update_state,
)
from emu_x86.kernel.mm.frames import OutOfMemory
from emu_x86.kernel.mm.vmalloc import VMALLOC_SIZE_MAX_BYTES, Vmalloc

if TYPE_CHECKING:  # pragma: no cover
    from emu_x86.emu.vcpu import VCpu
    from emu_x86.kernel.kernel import Kernel
    from emu_x86.kernel.task import Process, Task

DEFAULT_XSTATE_CACHE_ENTRIES = 64
XSTATE_HEADER_BYTES = xstate.HEADER_BYTES


class VmallocXstate:
    """xstate_alloc=vmalloc: vzalloc at first use, vfree at exit (Linux)."""
    name = "vmalloc"

    def __init__(self, kernel: "Kernel"):
        self.kernel = kernel
        self.live_bytes = 0

    # ---- hooks emu_x86/kernel/fpu.py and the kernel call ----------------------------------

    def boot(self) -> None:
        """After the vmalloc space exists, before the first task."""

    def task_created(self, vcpu: "VCpu", task: "Task") -> None:
        """A new task got its default fpstate (fpu_clone)."""

    def permission_granted(self, vcpu: "VCpu", process: "Process", features: int) -> None:
        """ARCH_REQ_XCOMP_PERM widened the process's permission."""

    def fpstate_realloc(self, vcpu: "VCpu", task: "Task", requested: int) -> bool:
        """Give ``task`` a buffer that also holds ``requested``; False when out of memory."""
        old = task.fpstate
        new = self.allocate(vcpu, old.xfeatures | requested)
        if new is None:
            return False
        new.user_xfeatures = old.user_xfeatures | requested
        new.xfd = old.xfd & ~requested
        previous = fpstate_replace(self.kernel, task, new)
        self.release(vcpu, previous)
        return True

    def release(self, vcpu: "VCpu", fpstate: FpState) -> None:
        """Task exit (or a replaced buffer): give the storage back."""
        if fpstate.storage == FPSTATE_VMALLOC:
            self._account(-fpstate.area.size_bytes)
            self.kernel.vmalloc.vfree(vcpu, fpstate.area)

    def percpu_area(self, cpu: int) -> FpState:
        raise RuntimeError(f"xstate_alloc={self.name} has no per-CPU xstate areas")

    # ---- helpers ------------------------------------------------------------------

    def allocate(self, vcpu: "VCpu", xfeatures: int) -> FpState | None:
        area = self.kernel.vmalloc.vzalloc(vcpu, xstate.compacted_size(xfeatures))
        if area is None:
            return None
        init_xstate_header(self.kernel.machine.memory, area.frames, xfeatures)
        self._account(area.size_bytes)
        return FpState(xfeatures=xfeatures, user_xfeatures=0, xfd=0, storage=FPSTATE_VMALLOC, area=area)

    def _account(self, delta_bytes: int) -> None:
        self.live_bytes += delta_bytes
        counters = self.kernel.counters
        counters["xstate_buffer_bytes_peak"] = max(counters["xstate_buffer_bytes_peak"], self.live_bytes)

    def stats(self) -> dict:
        counters = self.kernel.counters
        stats = {"xstate_alloc": self.name}
        for name in ("vmalloc_allocs", "vmalloc_frees", "vmalloc_failures", "vmalloc_lazy_pages",
                     "vmalloc_purges", "vmalloc_purge_cycles", "xstate_alloc_cycles", "xstate_cache_hits", "xstate_copy_bytes", "xstate_buffer_bytes_peak"):
            stats[name] = counters.get(name, 0)
        return stats


class VmallocCacheXstate(VmallocXstate):
    """xstate_alloc=vmalloc_cache: exiting tasks park their vmalloc'ed buffer in a
    per-size free list (up to ``entries`` buffers); first use takes one back."""
    name = "vmalloc_cache"

    def __init__(self, kernel: "Kernel", entries: int):
        super().__init__(kernel)
        self.entries = entries
        self.cache: dict[int, list] = {}      # buffer size -> parked VmapAreas, most recent last

    def allocate(self, vcpu: "VCpu", xfeatures: int) -> FpState | None:
        size = xstate.compacted_size(xfeatures)
        parked = self.cache.get(size)
        if parked:
            area = parked.pop()
            # Reuse: only the header needs resetting (the init state is
            # XSTATE_BV = 0; XRSTORS never reads components marked init).
            init_xstate_header(self.kernel.machine.memory, area.frames, xfeatures)
            vcpu.charge_event("memcpy_per_byte", XSTATE_HEADER_BYTES)
            self.kernel.counters["xstate_cache_hits"] += 1
            self._account(area.size_bytes)
            return FpState(xfeatures=xfeatures, user_xfeatures=0, xfd=0, storage=FPSTATE_VMALLOC, area=area)
        return super().allocate(vcpu, xfeatures)

    def release(self, vcpu: "VCpu", fpstate: FpState) -> None:
        if fpstate.storage == FPSTATE_VMALLOC:
            parked = self.cache.setdefault(fpstate.area.size_bytes, [])
            if sum(len(areas) for areas in self.cache.values()) < self.entries:
                self._account(-fpstate.area.size_bytes)
                parked.append(fpstate.area)
                return
        super().release(vcpu, fpstate)


class SeparateAmxXstate(VmallocXstate):
    """xstate_alloc=separate: the standard fpstate stays as it is; the tile
    components get their own vmalloc'ed XSAVES area (fpstate.amx)."""
    name = "separate"

    def fpstate_realloc(self, vcpu: "VCpu", task: "Task", requested: int) -> bool:
        fpstate = task.fpstate
        amx_features = XFEATURE_MASK_XTILE & task.process.fpu_permission.state_perm
        amx = self.allocate(vcpu, amx_features)
        if amx is None:
            return False
        amx.user_xfeatures = amx_features
        fpstate.amx = amx
        fpstate.user_xfeatures |= amx_features
        fpstate.xfd &= ~requested
        self.kernel.counters["xstate_allocs"] += 1
        return True

    def release(self, vcpu: "VCpu", fpstate: FpState) -> None:
        if fpstate.amx is not None:
            super().release(vcpu, fpstate.amx)
            fpstate.amx = None


class EagerXstate(VmallocXstate):
    """xstate_alloc=eager: the full buffer for every task at creation, embedded
    in the task (slab memory, no vmalloc) -- the baseline XFD exists to avoid.
    XFD stays armed only for processes without the permission."""
    name = "eager"

    def task_created(self, vcpu: "VCpu", task: "Task") -> None:
        config = self.kernel.fpu_config
        if not config.user_features & XFEATURE_MASK_USER_DYNAMIC:
            return          # no AMX on this CPU: the default buffer is already the full one
        permitted = task.process.fpu_permission.state_perm & XFEATURE_MASK_XTILE
        full = config.user_features | config.supervisor_features
        fpstate = FpState(xfeatures=full, user_xfeatures=config.default_user_features | permitted,
                          xfd=config.user_features & XFEATURE_MASK_USER_DYNAMIC & ~permitted)
        task.fpstate = fpstate
        before = vcpu.cycles
        vcpu.charge_event("kmalloc")
        vcpu.charge_event("memcpy_per_byte", fpstate.size_bytes)     # zeroing the new buffer
        self.kernel.counters["xstate_alloc_cycles"] += vcpu.cycles - before
        self.kernel.counters["xstate_allocs"] += 1
        self._account(fpstate.size_bytes)

    def permission_granted(self, vcpu: "VCpu", process: "Process", features: int) -> None:
        for task in process.tasks:
            fpstate = task.fpstate
            if fpstate is not None and fpstate.xfeatures & features == features:
                fpstate.xfd &= ~features
                fpstate.user_xfeatures |= features
        current = self.kernel.current[vcpu.index]
        if current is not None:
            xfd_update_state(vcpu, current.fpstate)

    def release(self, vcpu: "VCpu", fpstate: FpState) -> None:
        if fpstate.storage == FPSTATE_EMBEDDED and fpstate.xfeatures & XFEATURE_MASK_XTILE:
            self._account(-fpstate.size_bytes)
            return
        super().release(vcpu, fpstate)


class PagesPercpuXstate(VmallocXstate):
    """xstate_alloc=pages_percpu: AMX tasks' xstate in an array of page frames;
    XSAVES/XRSTORS target this CPU's contiguous area (vmalloc'ed at boot),
    copied in before XRSTORS and out after XSAVES (emu_x86/kernel/fpu.py). The area's
    address is the same for every task on a CPU, so XSAVES's modified
    optimization may apply after another task's restore there."""
    name = "pages_percpu"

    def __init__(self, kernel: "Kernel"):
        super().__init__(kernel)
        self.areas: list[FpState] = []

    def boot(self) -> None:
        config = self.kernel.fpu_config
        full = config.user_features | config.supervisor_features
        for vcpu in self.kernel.machine.vcpus:
            area = self.kernel.vmalloc.vzalloc(vcpu, xstate.compacted_size(full))
            if area is None:
                raise CmdlineError("vmalloc area too small for the per-CPU xstate areas")
            init_xstate_header(self.kernel.machine.memory, area.frames, full)
            self.areas.append(FpState(xfeatures=full, user_xfeatures=config.user_features, xfd=0,
                                      storage=FPSTATE_VMALLOC, area=area))

    def percpu_area(self, cpu: int) -> FpState:
        return self.areas[cpu]

    def allocate(self, vcpu: "VCpu", xfeatures: int) -> FpState | None:
        size = xstate.compacted_size(xfeatures)
        frames = []
        try:
            for _ in range((size + PAGE_SIZE - 1) // PAGE_SIZE):
                frames.append(self.kernel.frames.alloc())
        except OutOfMemory:
            for frame in frames:
                self.kernel.frames.free(frame)
            return None
        vcpu.charge_event("page_alloc", len(frames))
        init_xstate_header(self.kernel.machine.memory, frames, xfeatures)
        self._account(size)
        return FpState(xfeatures=xfeatures, user_xfeatures=0, xfd=0, storage=FPSTATE_PAGES, pages=frames)

    def release(self, vcpu: "VCpu", fpstate: FpState) -> None:
        if fpstate.storage == FPSTATE_PAGES:
            self._account(-fpstate.size_bytes)
            for frame in fpstate.pages:
                self.kernel.frames.free(frame)
            fpstate.pages = []
            return
        super().release(vcpu, fpstate)


def xstate_alloc_from_cmdline(kernel: "Kernel", params: dict) -> tuple[Vmalloc, VmallocXstate]:
    """Build the vmalloc space and the xstate policy from the parsed boot
    parameters (emu_x86/kernel/cmdline.py) ``vmalloc=SIZE``, ``lazy_max_pages=N``,
    ``xstate_alloc=NAME`` and ``xstate_cache=N``."""
    size = VMALLOC_SIZE_MAX_BYTES if params["vmalloc"] is None else params["vmalloc"]
    lazy_max = params["lazy_max_pages"]
    policy = params["xstate_alloc"]
    entries = DEFAULT_XSTATE_CACHE_ENTRIES if params["xstate_cache"] is None else params["xstate_cache"]
    vmalloc = Vmalloc(kernel, size, lazy_max)
    allocator = {
        "vmalloc": lambda: VmallocXstate(kernel),
        "vmalloc_cache": lambda: VmallocCacheXstate(kernel, entries),
        "separate": lambda: SeparateAmxXstate(kernel),
        "eager": lambda: EagerXstate(kernel),
        "pages_percpu": lambda: PagesPercpuXstate(kernel),
    }[policy]()
    return vmalloc, allocator
