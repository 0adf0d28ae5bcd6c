"""What ``emu run --gdb`` shows of the guest: every task as a gdb thread, and
gdb's ``monitor`` commands (qRcmd), over the kernel (emu_x86/emu/gdbstub.py's
GuestThreads view; the stub itself knows only the machine).

    monitor tlb [CPU]     the TLB model's valid entries on CPU (default 0): VA, PA, PCID, G/W/U/X/D
    monitor asids         each CPU's ASID slots (ctx_id, tlb_gen), loaded mm, lazy state, mm tlb_gen
    monitor xstate [TID]  XCR0, XFD, XFD_ERR, XINUSE on the task's CPU (or its saved fpstate), the
                          fpstate's size and where it lives, the tile summary
    monitor stats         the --stats JSON so far
    monitor help          this list
"""
from __future__ import annotations

import json


class KernelThreads:
    def __init__(self, machine, kernel):
        self.machine = machine
        self.kernel = kernel

    # ---- threads --------------------------------------------------------------------

    def _tasks(self):
        for process in self.kernel.processes.values():
            for task in process.tasks:
                if task.state != "exited":
                    yield task

    def _task(self, tid: int):
        for task in self._tasks():
            if task.tid == tid:
                return task
        raise KeyError(f"no task {tid}")

    def threads(self) -> list[int]:
        return sorted(task.tid for task in self._tasks())

    def cpu_of(self, tid: int) -> int | None:
        for cpu, task in enumerate(self.kernel.current):
            if task is not None and task.tid == tid:
                return cpu
        return None

    def task_on(self, cpu: int) -> int | None:
        task = self.kernel.current[cpu]
        return task.tid if task is not None else None

    def saved_registers(self, tid: int) -> dict:
        return self._task(tid).registers

    def describe(self, tid: int) -> str:
        try:
            task = self._task(tid)
        except KeyError:
            return f"task {tid}, exited"
        cpu = self.cpu_of(tid)
        if cpu is not None:
            return f"task {tid}, on vCPU {cpu}, running, cycle {self.machine.vcpus[cpu].cycles}"
        why = ""
        if task.futex_waits:
            why = " in futex"
        elif task.waiter is not None or task.wait_request is not None:
            why = " in a syscall"
        last = f", last on vCPU {task.last_cpu}" if task.last_cpu is not None else ""
        return f"task {tid}, {task.state}{why}{last}"

    # ---- monitor --------------------------------------------------------------------

    def monitor(self, command: str) -> str:
        words = command.split()
        if not words or words[0] == "help":
            return __doc__.split("\n\n", 1)[1].split('"""')[0]
        handler = {"tlb": self._tlb, "asids": self._asids, "xstate": self._xstate, "stats": self._stats}.get(words[0])
        if handler is None:
            return f"unknown monitor command {words[0]!r} (monitor help lists them)\n"
        return handler(words[1:])

    def _cpu(self, words: list[str]) -> int:
        cpu = int(words[0], 0) if words else 0
        if not 0 <= cpu < len(self.machine.vcpus):
            raise ValueError(f"no CPU {cpu} (CPUs 0-{len(self.machine.vcpus) - 1})")
        return cpu

    def _tlb(self, words: list[str]) -> str:
        cpu = self._cpu(words)
        vcpu = self.machine.vcpus[cpu]
        rows = []
        for array, count in ((vcpu._tlb_small, len(vcpu._tlb_small)), (vcpu._tlb_large, len(vcpu._tlb_large))):
            for index in range(count):
                entry = array[index]
                if entry.last_use == 0:
                    continue
                bits = "".join(letter if getattr(entry, name) else "-" for letter, name in
                               (("G", "global"), ("W", "writable"), ("U", "user"), ("X", "executable"),
                                ("D", "dirty")))
                size = {12: "4K", 21: "2M", 30: "1G"}.get(entry.page_shift, str(entry.page_shift))
                rows.append((entry.last_use, f"  {entry.vpn << 12:#018x} -> {entry.paddr:#012x}  pcid {entry.pcid:4d}"
                                             f"  {size:>2}  {bits}"))
        current = self.kernel.current[cpu]
        head = (f"vCPU {cpu}: CR3 {vcpu.cr3:#x}, PCID {vcpu.cr3 & 0xFFF}, "
                f"task {current.tid if current else '-'}, {len(rows)} valid TLB entries (oldest fill first)\n"
                f"  {'virtual':18}    {'physical':12}  {'pcid':>9}  sz  GWUXD\n")
        return head + "".join(line + "\n" for _stamp, line in sorted(rows))

    def _asids(self, words: list[str]) -> str:
        lines = []
        tlb = self.kernel.tlb
        for cpu, state in enumerate(tlb.cpu_state):
            mm = state.loaded_mm
            mm_text = (f"mm ctx_id {mm.ctx_id} (tlb_gen {mm.tlb_gen})" if mm is not None else "no mm")
            lazy = "lazy" if state.is_lazy else "active"
            current = self.kernel.current[cpu]
            lines.append(f"CPU {cpu}: loaded {mm_text}, ASID {state.loaded_mm_asid}, {lazy}, "
                         f"task {current.tid if current else '-'}, next_asid {state.next_asid}")
            for asid, ctx in enumerate(state.ctxs):
                if ctx.ctx_id:
                    marker = " *" if asid == state.loaded_mm_asid else ""
                    lines.append(f"  ASID {asid}: ctx_id {ctx.ctx_id}, tlb_gen {ctx.tlb_gen}{marker}")
        return "\n".join(lines) + "\n"

    def _xstate(self, words: list[str]) -> str:
        if words:
            task = self._task(int(words[0], 0))
        else:
            task = next((t for t in self.kernel.current if t is not None), None) or next(self._tasks())
        cpu = self.cpu_of(task.tid)
        fpstate = task.fpstate
        lines = [f"task {task.tid}: " + (f"on vCPU {cpu}" if cpu is not None else
                                         f"off CPU (last on vCPU {task.last_cpu})")]
        if cpu is not None:
            vcpu = self.machine.vcpus[cpu]
            xstate = vcpu.xstate
            lines.append(f"  XCR0 {xstate.xcr0:#x}  XFD {xstate.xfd:#x}  XFD_ERR {xstate.xfd_err:#x}  "
                         f"XINUSE {vcpu.xinuse():#x}")
            tiles = xstate.tiles_configured() if callable(getattr(xstate, "tiles_configured", None)) else False
            lines.append(f"  tiles: palette {xstate.palette}, configured {bool(tiles)}, "
                         f"in use {bool(xstate.tiles_in_use)}")
        if fpstate is not None:
            where = fpstate.storage
            if fpstate.kernel_address:
                where += f" at {fpstate.kernel_address:#x}"
            lines.append(f"  fpstate: xfeatures {fpstate.xfeatures:#x} (user {fpstate.user_xfeatures:#x}), "
                         f"{fpstate.size_bytes} bytes, {where}, xfd {fpstate.xfd:#x}, "
                         f"last_cpu {fpstate.last_cpu}")
            if fpstate.amx is not None:
                lines.append(f"  AMX buffer: {fpstate.amx.size_bytes} bytes, {fpstate.amx.storage}")
        return "\n".join(lines) + "\n"

    def _stats(self, words: list[str]) -> str:
        from emu_x86.emucli.main import collect_stats
        return json.dumps(collect_stats(self.machine, self.kernel), indent=1) + "\n"
