"""The machine: physical memory, vCPUs and the deterministic scheduler that runs them.

Each vCPU has its own cycle clock (the C hot path's counters). The machine
always runs the runnable vCPU with the smallest clock for one quantum, ties
broken by CPU number, so a run is a pure function of the program, options and
seed (DESIGN.md, determinism).
"""
from __future__ import annotations

import os
from collections.abc import Callable

from emu_x86 import TYPE_CHECKING
from emu_x86.emu import uclib
from emu_x86.emu.uclib import x86
from emu_x86.emu import block_price_store, firmware
from emu_x86.emu.isa.prefixes import MAX_INSTRUCTION_BYTES
from emu_x86.emu.isa.decoder import capstone_identity, detailed_decoder
from emu_x86.emu.isa.dispatch import HANDLERS as EMULATED_MNEMONICS
from emu_x86.emu.memory import PAGE_SIZE, PhysicalMemory
from emu_x86.emu.mmu.pagewalk import ACCESS_FETCH
from emu_x86.emu.timing.profile import DEFAULT_PROFILE, Profile, load_profile
from emu_x86.emu.timing.schedule import ONE_CYCLE
from emu_x86.emu.traps import TrapHandler
from emu_x86.emu.vcpu import END_ADDRESS, STOP_PREEMPT, VCpu, ffi, hotpath

if TYPE_CHECKING:  # pragma: no cover
    import threading

# IN, OUT, INS, OUTS: Unicorn runs them at CPL3 without the IOPL and I/O
# permission bitmap checks (SDM Vol. 1 §19.5), so the machine stops before
# them (emu_x86/emu/isa/system.py). By capstone mnemonic: its instruction ids
# would need capstone at import (emu_x86/emu/isa/decoder.py).
PORT_IO_MNEMONICS = frozenset(("in", "out", "insb", "insw", "insd", "outsb", "outsw", "outsd"))

DEFAULT_MEMORY_BYTES = 512 << 20
# The start set of every machine's boot (Machine.use_start_set): no program's
# identity (path, size and mtime joined by NULs, emucli/main.program_identity) is this.
BOOT_START_SET = "<machine boot>"
# Exploring policies (Machine._run_single_task): retired instructions with a
# single runnable task before a vCPU's preemption hook comes off, and the
# budget of a run that must never stop for it.
SINGLE_TASK_UNHOOK_INSTRUCTIONS = 200_000
NO_BUDGET_INSTRUCTIONS = (1 << 63) - 1
NO_LIMIT_CYCLES = (1 << 64) - 1    # a fast-syscall bound that is no bound (uint64_t)
DEFAULT_QUANTUM_CYCLES = 1_000_000
MAX_CPUS = 64
# The default policy's steps that need no kernel decision run in C
# (emu_x86/emu/runqueue_scan.c sched_run); False: every step in Python, as
# Machine.c_run_loop per machine (tests compare the two: identical runs).
C_RUN_LOOP = os.environ.get("EMU_C_RUN_LOOP", "1") != "0"
# Runs sched_run takes before it returns, so that Python's signal handlers
# (Ctrl-C, the --timeout alarm) run between them.
C_RUN_LOOP_MAX_RUNS = 256

# Decoded blocks, shared by every vCPU of every Machine in this process (the
# fuzz driver, bench and the forkserver's parent build many). What a block
# costs is a function of its bytes and the profile's instruction costs alone:
# capstone's decode, Profile.classify/instruction_cost and the emulated-mnemonic
# filter never look at the address, the vCPU or the CPU model. So each
# distinct block is disassembled once per process and instruction-cost table.
# Key: (instruction-cost key, code bytes); value: (retired instructions, their
# cycles, bytes capstone decoded). Cleared whole at the bound (a pure cache:
# what it holds never changes a price). ``SHARE_BLOCK_PRICES = False`` decodes
# every block on every call instead (tests/test_block_price_cache.py compares).
SHARE_BLOCK_PRICES = True
BLOCK_PRICE_CACHE_ENTRIES = 1 << 16
_decoded_blocks: dict[tuple[tuple, bytes], tuple[int, int, int, int | None]] = {}
# Per instruction-cost key: instruction bytes -> cycles (Profile.block_cycles's cost_cache).
_instruction_costs: dict[tuple, dict[bytes, float]] = {}
# The same prices for the C block hook (hotpath.h, the price cache): a vCPU's
# block-table miss looks the block's bytes up there before calling Python.
# Each distinct instruction-cost key gets a number from 1, never reused.
_price_profiles: dict[tuple, int] = {}
_whole_store_adopted: set[tuple] = set()      # price keys whose whole store is adopted (emu server)
hotpath.hotpath_price_cache_init(BLOCK_PRICE_CACHE_ENTRIES)


def adopt_decodes(price_key: tuple, decodes, whole_store: bool = False) -> int:
    """Put ``(code, decode)`` pairs of the block price store into this
    process's decode caches -- the Python one and the C hook's -- before any
    machine runs (emu server's preload of the whole store, ``whole_store``,
    emu_x86/emucli/runserver.py; a program's start set, Machine.use_start_set),
    so a run finds its blocks without a store lookup or a call into Python.
    Both are pure caches: a run is the same with them full or empty
    (tests/test_block_price_cache.py). The number of blocks adopted."""
    if not SHARE_BLOCK_PRICES:
        return 0
    profile_number = _price_profiles.setdefault(price_key, len(_price_profiles) + 1)
    adopted = 0
    for code, decoded in decodes:
        if adopted >= BLOCK_PRICE_CACHE_ENTRIES or len(_decoded_blocks) >= BLOCK_PRICE_CACHE_ENTRIES:
            # A store larger than the caches: some of its blocks are not
            # here, so a run still adopts its program's start set
            # (use_start_set), or the blocks left out would each cost a
            # store lookup and a call into Python.
            whole_store = False
            break
        count, cost, covered, port_io_offset = decoded
        # As price_block inserts: whole blocks without port I/O only. Those
        # go to the C cache alone, which answers them without Python: a copy in
        # the Python dict too made emu server's heap twice as large, and its
        # forked workers paid for that in copy-on-write faults (a hello's
        # worker, 24 ms with 1,000 blocks adopted, took 54 ms with 65,536).
        if covered >= len(code) and port_io_offset is None:
            hotpath.hotpath_price_cache_insert(profile_number, code, len(code), count,
                                               *(cost if count else (0, 0, 0)))
        else:
            _decoded_blocks[(price_key, code)] = decoded
        adopted += 1
    if whole_store:
        _whole_store_adopted.add(price_key)
    return adopted


def _is_emulated(code: bytes, address: int) -> bool:
    """Whether ``code`` starts with an instruction the emulator runs itself
    from Unicorn's invalid-opcode hook (emu_x86/emu/isa/dispatch.py)."""
    from emu_x86.emu.isa import encoding     # the codec: needed only for blocks being decoded
    instruction = encoding.decode(code, address)
    return instruction is not None and instruction.mnemonic in EMULATED_MNEMONICS


class MachineStopped(Exception):
    pass


class Machine:
    """Fields: ``memory`` (shared physical memory), ``vcpus``, ``trap_handler``
    (the kernel, set by ``attach``), ``reserved_physical_bytes`` (frames below
    this belong to the firmware; the kernel allocates above it)."""

    def __init__(self, cpus: int = 1, memory_bytes: int = DEFAULT_MEMORY_BYTES,
                 quantum_cycles: int = DEFAULT_QUANTUM_CYCLES, max_cycles: int | None = None,
                 profile: Profile | str = DEFAULT_PROFILE, cache_model: bool = False, sched_policy=None):
        if not 1 <= cpus <= MAX_CPUS:
            raise ValueError(f"--cpus must be between 1 and {MAX_CPUS}")
        self.profile = profile if isinstance(profile, Profile) else load_profile(profile)
        # --cache-model: every vCPU charges data accesses through the C cache
        # hierarchy (emu_x86/emu/timing/cache.c); needs the profile's [memory] section.
        if cache_model and not self.profile.memory:
            raise ValueError(f"--cache-model needs a profile with a [memory] section "
                             f"({self.profile.name!r} has none; try --profile zen3)")
        self.cache_model = cache_model
        self.memory = PhysicalMemory(memory_bytes)
        self.memory.write(0, firmware.firmware_image())
        self.reserved_physical_bytes = firmware.FIRMWARE_SIZE_BYTES
        self.quantum_cycles = quantum_cycles
        self.max_cycles = max_cycles
        self.trap_handler: TrapHandler | None = None
        self.cpu_count = cpus
        # The profile's identity as far as block prices go (profiles are
        # immutable once loaded): equal costs share decoded blocks.
        self._price_key = self.profile.price_key
        self._block_prices: dict[tuple[int, bytes], tuple[int, int, int | None]] = {}
        # The on-disk decode store for this price key, opened at the first decode.
        self._price_store: block_price_store.BlockPriceStore | None = None
        self._price_store_unopened = True
        self._start_set_program: str | None = None     # use_start_set
        # code -> decode of the start set's blocks and those the run adds to it
        self._start_set_decodes: dict[bytes, tuple] = {}
        # (address, size) of each priced block holding a port I/O instruction
        # -> that instruction's address (the vCPU raises its #GP: VCpu.run).
        self.port_io_blocks: dict[tuple[int, int], int] = {}
        # An exploring scheduler (emu_x86/emu/sched_policy.py) or None for the
        # default one; set before the vCPUs exist, which install the
        # per-instruction preemption hook only under an exploring policy.
        self.sched_policy = sched_policy
        # VCpu.runnable of each vCPU, negated, and their clocks, for the C scan
        # of the default scheduler (emu_x86/emu/runqueue_scan.h): kept by VCpu.halted's
        # setter and by every change of waiting_for_acks here.
        self.not_runnable = ffi.new("uint8_t[]", max(cpus, 1))
        # Also for the C loop (sched_run): whether each vCPU waits for
        # acknowledgements and from which CPUs (VCpu.update_runnable_flag), its APIC's next event
        # (LocalApic._publish), its VCpu.amx_fast_path, whether its next run
        # must start in Python (VCpu._untranslatable_at), and the kernel's
        # fast-call count for its task (_run_loop).
        self.waiting_flags = ffi.new("uint8_t[]", max(cpus, 1))
        self.waiting_targets = ffi.new("uint64_t[]", max(cpus, 1))
        self.apic_next_event = ffi.new("uint64_t[]", max(cpus, 1))
        self.amx_fast_enabled = ffi.new("uint8_t[]", max(cpus, 1))
        self.run_in_python = ffi.new("uint8_t[]", max(cpus, 1))
        self._arm_counts = ffi.new("uint8_t[]", max(cpus, 1))
        self._arm_unknown = bytes([hotpath.SCHED_ARM_UNKNOWN]) * max(cpus, 1)
        self.c_run_loop = C_RUN_LOOP
        # Each vCPU boots through the firmware's entry stubs (VCpu._boot), which
        # are priced like any block: from a start set of their own, so a run
        # never opens the store's database for them. That set records the
        # boot's blocks alone: a machine whose program has no set of its own
        # (tests, the guest-test runner) adds none of the program's to it.
        self.use_start_set(BOOT_START_SET)
        self.vcpus = [VCpu(self, index) for index in range(cpus)]
        self._start_set_program = None
        self._clocks = ffi.new("struct hotpath_vcpu *[]", [vcpu.clock for vcpu in self.vcpus])
        self._amx_fast = ffi.new("struct amx_fastpath *[]", [vcpu._amx_fast for vcpu in self.vcpus])
        sched = self._sched = ffi.new("struct sched_machine *")
        sched.clocks, sched.not_runnable, sched.waiting_for_acks = self._clocks, self.not_runnable, self.waiting_flags
        sched.waiting_targets = self.waiting_targets
        sched.next_event, sched.amx, sched.amx_enabled = self.apic_next_event, self._amx_fast, self.amx_fast_enabled
        sched.python_next, sched.arm_count, sched.count = self.run_in_python, self._arm_counts, cpus
        sched.rip_register, sched.end_address = x86.UC_X86_REG_RIP, END_ADDRESS
        sched.max_runs = C_RUN_LOOP_MAX_RUNS
        self._price_profile = (_price_profiles.setdefault(self._price_key, len(_price_profiles) + 1)
                               if SHARE_BLOCK_PRICES else 0)
        for vcpu in self.vcpus:
            vcpu.clock.price_profile = self._price_profile
        self.stopped = False
        self.cycle_limit_reached = False
        # The event sink (emu_x86/emu/trace.py Tracer) while tracing, else None: only
        # rare paths (traps, IPIs, flushes) test it, never per instruction.
        self.events = None
        # Asked between scheduling steps while set (the gdb stub, for gdb's
        # Ctrl-C): a true answer stops the machine as a breakpoint would.
        self.stop_requested: Callable[[], bool] | None = None
        # Under an exploring policy: the machine's retired instructions when
        # its current single-task spell began (None: several tasks runnable).
        self._single_task_since: int | None = None

    def attach(self, trap_handler: TrapHandler) -> None:
        self.trap_handler = trap_handler

    def set_cycle_clock_word(self, paddr: int | None) -> None:
        """Keep the 8 bytes of physical memory at ``paddr`` equal to the running
        vCPU's cycle clock whenever the block each vCPU was told about
        (``VCpu.set_cycle_clock_block``) starts: the hot path stores the clock
        there after charging that block, before it runs (a memory-mapped
        counter, as a paravirtual clock page is kept by a hypervisor, read
        where it is read). None stops it. The kernel's vDSO reads it from the
        [vvar] page (emu_x86/kernel/vdso/)."""
        if paddr is not None and not self.memory.contains(paddr, 8):
            raise ValueError(f"cycle clock word {paddr:#x} outside physical memory")
        for vcpu in self.vcpus:
            vcpu.set_cycle_clock_word(paddr)

    def kick(self) -> None:
        """Make every vCPU's Unicorn return from emu_start soon. Safe from
        another thread (uc_emu_stop is what Unicorn's own timeout thread
        calls): wall-clock limits use it so that a Python SIGALRM handler gets
        to run even while guest code stays inside translated blocks and C hooks."""
        for vcpu in self.vcpus:
            vcpu.kick()

    def kick_after(self, seconds: float, done: threading.Event, every: float = 0.1) -> None:
        """From a daemon thread: once ``seconds`` have passed, ``kick`` every
        ``every`` seconds until ``done`` is set (the wall-clock limits of
        ``emu run --timeout`` and of the fuzz driver)."""
        def kick_until_done() -> None:
            if done.wait(seconds):
                return
            while not done.is_set():
                self.kick()
                done.wait(every)
        import threading    # only with a wall-clock limit: not on every run's start-up path
        threading.Thread(target=kick_until_done, daemon=True).start()

    def close(self) -> None:
        """Release the vCPUs' host resources (a process that builds many machines,
        like the fuzz driver, calls this after each run)."""
        for vcpu in self.vcpus:
            vcpu.close()
        self.trap_handler = None

    # ---- cost of code ---------------------------------------------------

    def use_start_set(self, program: str) -> int:
        """Adopt the blocks the last run of ``program`` priced (the block price
        store's start set, emu_x86/emu/block_price_store.py) into the decode
        caches before the run, and note the blocks this run adds to it. A pure
        cache: the run is the same with it or without. The blocks adopted."""
        if not SHARE_BLOCK_PRICES or self._price_key in _whole_store_adopted:
            return 0        # emu server's worker: every stored block is in the caches already
        store = self._open_price_store()
        if store is None:
            return 0
        pairs = store.start_set(program)
        self._start_set_program = program
        self._start_set_decodes.update(pairs)
        return adopt_decodes(self._price_key, pairs)

    def _open_price_store(self):
        if self._price_store is None and self._price_store_unopened:
            self._price_store_unopened = False
            self._price_store = block_price_store.store_for(self._price_key, capstone_identity())
        return self._price_store

    def price_block(self, vcpu: VCpu, address: int, size_bytes: int) -> tuple[int, int, int, int]:
        """(instructions, entry, repeat, flags) of the translated block at
        ``address``: hotpath.h's fixed-point prices (1/256 cycles) of its first
        execution and of one right after itself, and its HOTPATH_BLOCK_* flags.

        Called once per new block from the C hot path; the cost comes from the
        profile (emu_x86/emu/timing/profile.py, schedule.py).
        """
        if size_bytes == 0:
            return 0, 0, 0, 0
        if (address & (PAGE_SIZE - 1)) + size_bytes <= PAGE_SIZE:
            # Within one page (nearly every block): read_virtual's one translation.
            code = self.memory.read(vcpu.translate(address, ACCESS_FETCH), size_bytes)
        else:
            code = self.read_virtual(vcpu, address, size_bytes)
        # Only what Unicorn executes itself. A block ends at an instruction it
        # raises invalid-opcode for: one the emulator implements (AMX, XSAVE
        # family, XGETBV, RDPID, ...; charged by charge_instruction when it
        # runs) or a real #UD (refunded when it faults). Capstone decodes a
        # few of the former (left out by mnemonic) and stops at the rest. It
        # also stops at some encodings Unicorn does run (a prefixed hint NOP
        # such as 48 64 0f 1c eb): those bytes count as one instruction, or a
        # loop of them would never advance the clock to its deadline.
        # Memoised per machine by address and bytes (vCPUs running the same
        # code share it), so the tail fetch below walks the page tables once
        # per block and machine; the decode itself comes from the process-wide
        # cache (_decode_block).
        key = (address, code)
        price = self._block_prices.get(key)
        if price is None:
            decoded = self._decode_block(code, address)
            if self._start_set_program is not None and code not in self._start_set_decodes:
                self._start_set_decodes[code] = decoded
                self._price_store.add_to_start_set(self._start_set_program, code, decoded)
            count, cost, covered, port_io_offset = decoded
            # Unicorn's size for a block ending in an invalid opcode may stop
            # short of that instruction's last byte: decode it from memory
            # (the bytes past the block are not part of the decode cache's key).
            if covered < size_bytes:
                if not _is_emulated(vcpu.fetch_code(address + covered, MAX_INSTRUCTION_BYTES),
                                    address + covered):
                    count += 1
                    if count == 1:
                        one = self.profile.block_cycles(()) * ONE_CYCLE
                        cost = (one, one, 0)
            elif self._price_profile and port_io_offset is None:
                # A function of the bytes and costs alone: the C hook prices
                # this block from now on, on every vCPU of every machine.
                # Never a block with port I/O: each entry must reach Python.
                hotpath.hotpath_price_cache_insert(self._price_profile, code, size_bytes, count,
                                                   *(cost if count else (0, 0, 0)))
            price = self._block_prices[key] = ((count, *cost) if count else (0, 0, 0, 0)) + (port_io_offset,)
        if price[4] is not None:
            self.port_io_blocks[(address, size_bytes)] = address + price[4]
        elif self.port_io_blocks:
            self.port_io_blocks.pop((address, size_bytes), None)
        return price[:4]

    def _decode_block(self, code: bytes, address: int) -> tuple[int, tuple, int, int | None]:
        """(retired instructions, their (entry, repeat, flags) price, bytes decoded, offset of the
        first port I/O instruction or None) of ``code``, from the process-wide
        cache when the same bytes were priced before."""
        key = (self._price_key, code)
        if SHARE_BLOCK_PRICES:
            decoded = _decoded_blocks.get(key) or self._start_set_decodes.get(code)
            if decoded is not None:
                return decoded
            # The start set's blocks went to the C price cache; one it does
            # not answer (past its bound, or a block the C hook leaves to
            # Python: over three pages, in the firmware window, with port
            # I/O) comes here, and is answered from the set rather than the
            # store (so a run whose blocks are all in its set never opens
            # SQLite). Then the on-disk store of earlier runs
            # (emu_x86/emu/block_price_store.py).
            store = self._open_price_store()
            if store is not None:
                decoded = store.get(code)
                if decoded is not None:
                    if len(_decoded_blocks) >= BLOCK_PRICE_CACHE_ENTRIES:
                        _decoded_blocks.clear()
                    _decoded_blocks[key] = decoded
                    return decoded
            costs = _instruction_costs.get(self._price_key)
            if costs is None or len(costs) >= BLOCK_PRICE_CACHE_ENTRIES:
                costs = _instruction_costs[self._price_key] = {}
        else:
            costs = None
        instructions = list(detailed_decoder().disasm(code, address))
        retired = [insn for insn in instructions if insn.mnemonic not in EMULATED_MNEMONICS]
        covered = sum(insn.size for insn in instructions)
        port_io_offset = next((insn.address - address for insn in instructions
                               if insn.mnemonic.split()[-1] in PORT_IO_MNEMONICS), None)
        decoded = (len(retired), self.profile.block_price(retired, costs) if retired else (0, 0, 0), covered,
                   port_io_offset)
        if SHARE_BLOCK_PRICES:
            if len(_decoded_blocks) >= BLOCK_PRICE_CACHE_ENTRIES:
                _decoded_blocks.clear()
            _decoded_blocks[key] = decoded
            if self._price_store is not None and block_price_store.valid(decoded):
                self._price_store.put(code, decoded)
        return decoded

    def read_virtual(self, vcpu: VCpu, address: int, size: int, access: int = ACCESS_FETCH) -> bytes:
        """Read guest-virtual bytes through ``vcpu``'s page tables (raises PF)."""
        out = bytearray()
        while size > 0:
            chunk = min(size, PAGE_SIZE - (address & (PAGE_SIZE - 1)))
            paddr = vcpu.translate(address, access)
            out += self.memory.read(paddr, chunk)
            address += chunk
            size -= chunk
        return bytes(out)

    # ---- running --------------------------------------------------------

    def stop(self) -> None:
        """End the run after the current quantum (the kernel calls this on exit_group)."""
        self.stopped = True

    def run(self) -> None:
        """Run vCPUs until the kernel stops the machine or the cycle limit is reached.

        Each step picks the vCPU whose next activity is earliest -- its clock
        if it can run, else its earliest pending interrupt -- ties broken by
        CPU number; delivers the interrupts due on it; then runs it until the
        end of its quantum, its next pending interrupt, or ``lookahead``
        cycles past the slowest other runnable vCPU, whichever comes first.
        """
        if self.trap_handler is None:
            raise RuntimeError("no trap handler attached")
        # The translator-abort guard's handler stays installed for the whole
        # loop instead of per run (emu_x86/emu/timing/abort_guard.c).
        hotpath.hotpath_abort_guard_install()
        try:
            self._run_loop()
        finally:
            hotpath.hotpath_abort_guard_remove()

    def _run_loop(self) -> None:
        lookahead = max(1, self.profile.event_cycles("ipi_latency"))
        policy = self.sched_policy
        # System calls the kernel answers in C (hotpath_on_syscall), traces off.
        arm_fast_syscalls = getattr(self.trap_handler, "arm_fast_syscalls", None) if self.events is None else None
        self._syscall_cycles = self.profile.event_cycles("syscall")
        sched = self._c_loop(lookahead, arm_fast_syscalls)
        kernel_ran = True
        if sched is not None:
            for vcpu in self.vcpus:
                # VCpu.run clears it before a run; sched_run's runs rely on
                # it being clear already (VCpu.finish_run).
                vcpu.pending = None
        while not self.stopped:
            if self.stop_requested is not None and self.stop_requested():
                self.stopped = True
                return
            if sched is not None and self.events is None and self.stop_requested is None:
                # The steps that need no kernel decision, in C (sched_run):
                # the same vCPUs, deadlines and runs as the steps below.
                if kernel_ran:
                    # What the kernel armed may have changed (Kernel.arm_fast_syscalls).
                    ffi.memmove(self._arm_counts, self._arm_unknown, len(self._arm_unknown))
                    kernel_ran = False
                outcome = hotpath.sched_run(sched)
                if outcome == hotpath.SCHED_RUN_YIELD:
                    continue
                if outcome == hotpath.SCHED_RUN_ARM:
                    vcpu = self.vcpus[sched.vcpu]
                    self._arm_counts[vcpu.index] = vcpu.clock.fast_syscall_count if arm_fast_syscalls(vcpu) else 0
                    continue
                kernel_ran = True
                if outcome == hotpath.SCHED_RUN_FINISH:
                    vcpu = self.vcpus[sched.vcpu]
                    vcpu.finish_run(sched.rip, sched.status)
                    self._fold_fast_syscalls(vcpu)
                    continue
                if outcome == hotpath.SCHED_RUN_FAILED:
                    raise uclib.UcError(sched.status)
                # SCHED_RUN_PYTHON: this step is Python's, below.
            # Under a policy with a single runnable task there is nothing to
            # interleave: the default order, no budget, no policy step.
            single = policy is None or policy.single_task()
            vcpu, start = self._next_vcpu() if single else self._explore_next_vcpu(lookahead)
            if vcpu is None:
                self.trap_handler.handle_all_idle(self)
                if not self.stopped and self._next_vcpu()[0] is None:
                    raise MachineStopped("every vCPU is halted and nothing can wake one")
                continue
            if self.max_cycles is not None and start >= self.max_cycles:
                self.cycle_limit_reached = True
                return
            if vcpu.cycles < start:
                vcpu.clock.cycles = start       # idle until the interrupt arrived
            delivered = self._deliver_interrupts(vcpu)
            if not vcpu.runnable or self.stopped:
                continue
            if delivered and policy is not None and policy.single_task() != single:
                continue        # an interrupt woke or put to sleep a task: choose again
            now = vcpu.cycles
            deadline = now + self.quantum_cycles
            next_interrupt = vcpu.apic.next_event_cycles()
            if next_interrupt is not None:
                deadline = min(deadline, max(next_interrupt, now + 1))
            # The other vCPUs (runnable = not halted and not waiting for
            # acknowledgements, as VCpu.runnable), in one C pass
            # (runqueue_scan.c sched_bounds, over the published arrays):
            # - a runnable one, or one waiting for acknowledgements, bounds
            #   this run at lookahead past its clock; a waiting one resumes no
            #   earlier than its slowest target's clock (the last ack happens
            #   there), so it bounds the others from that time, like a running one;
            # - an idle or waiting vCPU that an interrupt will wake acts on
            #   shared kernel state at that moment: nobody runs past it before it has.
            bounds = self._sched
            hotpath.sched_bounds(bounds, vcpu.index)
            slowest = bounds.slowest if bounds.has_slowest else None
            wake = None if bounds.wake == hotpath.SCHED_NO_EVENT else bounds.wake
            if slowest is not None:
                deadline = min(deadline, slowest + lookahead)
            if wake is not None:
                deadline = min(deadline, max(wake, now + 1))
            if self.max_cycles is not None:
                deadline = min(deadline, self.max_cycles)
            # The earliest vCPU always makes progress (an IPI sent to a vCPU
            # already past its arrival time is taken at its next boundary).
            if policy is None:
                if arm_fast_syscalls is not None:
                    self._arm_fast_syscalls(vcpu, arm_fast_syscalls, now, lookahead, slowest, wake, next_interrupt)
                vcpu.run(max(deadline, now + 1))
                self._fold_fast_syscalls(vcpu)
                continue
            if single:
                self._run_single_task(vcpu, max(deadline, now + 1))
                continue
            self._single_task_since = None
            if not vcpu.preempt_hooked:
                vcpu.set_preemption_hook(True)
                policy.hook_changes += 1
            budget = policy.budget_instructions(vcpu)
            vcpu.preempt.budget_instructions = NO_BUDGET_INSTRUCTIONS if budget is None else budget
            retired_before = vcpu.clock.instructions
            preempted = vcpu.run(max(deadline, now + 1)) == STOP_PREEMPT
            policy.run_ended(vcpu, preempted, vcpu.clock.instructions - retired_before)
            if preempted and not self.stopped:
                # A preemption point between two instructions: the kernel may
                # switch tasks here, as on an interrupt (emu_x86/kernel/sched_explore.py).
                self.trap_handler.handle_preemption_point(vcpu)

    def _c_loop(self, lookahead: int, arm_fast_syscalls):
        """The C loop's struct (emu_x86/emu/runqueue_scan.h) set for this run,
        or None when its steps must all be Python's: an exploring policy, a
        trace, a trap handler whose handle_deadline does something, or a
        cycle limit past what its uint64 holds."""
        if (not self.c_run_loop or self.sched_policy is not None or self.events is not None
                or not self._deadline_needs_no_call()
                or (self.max_cycles is not None and not 0 <= self.max_cycles < hotpath.SCHED_NO_EVENT)):
            return None
        sched = self._sched
        sched.quantum_cycles, sched.lookahead_cycles = self.quantum_cycles, lookahead
        sched.max_cycles = hotpath.SCHED_NO_EVENT if self.max_cycles is None else self.max_cycles
        sched.syscall_cycles, sched.fast_syscalls = self._syscall_cycles, arm_fast_syscalls is not None
        return sched

    def _deadline_needs_no_call(self) -> bool:
        """Whether the trap handler's handle_deadline is one it declares to
        do nothing (the kernel's ``handle_deadline_noop``): the C loop ends a
        run at its deadline without calling it."""
        handler = self.trap_handler
        noop = getattr(type(handler), "handle_deadline_noop", None)
        return noop is not None and getattr(handler.handle_deadline, "__func__", None) is noop

    def _fold_fast_syscalls(self, vcpu: VCpu) -> None:
        """After a run: the calls its SYSCALL hook answered go into the
        kernel's statistics, and the hook is disarmed."""
        clock = vcpu.clock
        if clock.fast_syscall_count:
            if clock.fast_syscall_hits_total:
                self.trap_handler.fold_fast_syscalls(vcpu)
            clock.fast_syscall_count = 0

    def _arm_fast_syscalls(self, vcpu: VCpu, arm, now: int, lookahead: int, slowest, wake,
                           next_interrupt) -> None:
        """Let ``vcpu``'s SYSCALL hook answer the kernel's fixed-value calls
        in C (hotpath.h, fast_syscall_*) for as long as, after the call, this
        loop would pick the same vCPU again with nothing to deliver -- its
        clock below every other runnable vCPU's, every wake-up and its own
        next interrupt -- and give it the deadline min(clock + quantum,
        bound) with ``bound`` the other terms of the deadline above, which
        the call does not change. So the run is the one the loop would make,
        cycle for cycle, without the trip through Python. Not armed when no
        call could pass the limit (vCPUs in step with each other)."""
        if self.stop_requested is not None:
            return
        limit = bound = NO_LIMIT_CYCLES
        if slowest is not None:
            limit, bound = slowest, slowest + lookahead
        for term in (wake, next_interrupt, self.max_cycles):
            if term is not None:
                limit, bound = min(limit, term), min(bound, term)
        if limit <= now + self._syscall_cycles or not arm(vcpu):
            return
        clock = vcpu.clock
        clock.fast_syscall_limit_cycles = limit
        clock.fast_syscall_bound_cycles = bound
        clock.fast_syscall_quantum_cycles = self.quantum_cycles

    def _run_single_task(self, vcpu: VCpu, deadline: int) -> None:
        """An exploring policy's run while one task is runnable on the whole
        machine: as the default runs it (no budget, no preemption point).
        Once that has lasted SINGLE_TASK_UNHOOK_INSTRUCTIONS, the vCPU's
        preemption hook comes off (the next run with company puts it back):
        the hook's per-instruction call is most of a hooked run's cost, and
        both changes retranslate the vCPU's code, so a short single-task
        spell keeps it on. A pure function of the run so far: replay stays exact."""
        budget = NO_BUDGET_INSTRUCTIONS
        if vcpu.preempt_hooked:
            retired = sum(other.clock.instructions for other in self.vcpus)
            if self._single_task_since is None:
                self._single_task_since = retired
            left = SINGLE_TASK_UNHOOK_INSTRUCTIONS - (retired - self._single_task_since)
            if left <= 0:
                vcpu.set_preemption_hook(False)
                self.sched_policy.hook_changes += 1
            else:
                # The hook counts anyway: it ends this run where the spell
                # reaches the bound, so a long run is not spent hooked.
                budget = left
        elif self._single_task_since is None:
            self._single_task_since = 0
        vcpu.preempt.budget_instructions = budget
        self.sched_policy.single_task_runs += 1
        vcpu.run(deadline)

    def _explore_next_vcpu(self, lookahead: int) -> tuple[VCpu | None, int]:
        """The exploring policy's pick of the next vCPU to run: among the
        runnable vCPUs that the default loop's bounds would let make progress
        now (``_exploration_candidates``). When an interrupt is the earliest
        activity, its vCPU goes first as in ``_next_vcpu``: which vCPU takes
        it is a matter of time, not of order."""
        earliest, when = self._next_vcpu()
        if earliest is None or earliest.halted or earliest.waiting_for_acks:
            return earliest, when
        candidates = self._exploration_candidates(lookahead)
        if not candidates:
            return earliest, when
        chosen = self.sched_policy.choose_vcpu(candidates)
        return chosen, chosen.clock.cycles

    def _exploration_candidates(self, lookahead: int) -> list[VCpu]:
        """Runnable vCPUs whose clock is below every bound ``_run_loop`` would
        put on their run: ``lookahead`` past each other runnable (or
        acknowledgement-waiting) vCPU and the next wake-up of an idle or
        waiting one. Running any of them keeps the invariant the default order
        keeps: no vCPU gets more than the IPI latency ahead of another, so no
        IPI arrives in a receiver's past and no wake-up is passed."""
        runnable, limits = [], []
        wake = None
        for vcpu in self.vcpus:
            waiting = vcpu.waiting_for_acks
            if not vcpu.halted and not waiting:
                runnable.append(vcpu)
                limits.append(vcpu.clock.cycles)
                continue
            if waiting:
                limits.append(self._resume_bound(vcpu))
            when = vcpu.apic.next_event_cycles()
            if when is not None and (wake is None or when < wake):
                wake = when
        # The smallest limit of the *other* vCPUs: the second smallest of all
        # for the vCPU that holds the smallest (equal values tie harmlessly).
        lowest = sorted(limits)[:2]
        candidates = []
        for vcpu in runnable:
            clock = vcpu.clock.cycles
            if len(lowest) > 1:
                slowest = lowest[1] if clock == lowest[0] else lowest[0]
                if clock >= slowest + lookahead:
                    continue
            if wake is not None and clock >= wake:
                continue
            if self.max_cycles is not None and clock >= self.max_cycles:
                continue
            candidates.append(vcpu)
        return candidates

    def _resume_bound(self, vcpu: VCpu) -> int:
        if not vcpu.waiting_for_acks:
            return vcpu.cycles
        return max(vcpu.cycles, max(self.vcpus[target].cycles for target in vcpu.waiting_for_acks))

    def _next_vcpu(self) -> tuple[VCpu | None, int]:
        """The vCPU whose next activity is earliest -- its clock if runnable,
        else its next interrupt (idle, or spinning for acknowledgements with
        interrupts enabled: csd_lock_wait) -- and that time. Ties: an idle
        vCPU's wake-up before a runnable vCPU, then CPU order; that is the
        smallest (time, runnable, CPU number). In C (runqueue_scan.c
        sched_pick) over the APICs' published next events."""
        index = hotpath.sched_pick(self._sched)
        if index < 0:
            return None, 0
        return self.vcpus[index], self._sched.pick_start

    def _deliver_interrupts(self, vcpu: VCpu) -> bool:
        """Deliver the interrupts due on ``vcpu``; whether there were any."""
        delivered = False
        for interrupt in vcpu.apic.take_due(vcpu.cycles):
            delivered = True
            vcpu.charge_event("ipi_receive")
            if interrupt.source_cpu >= 0:
                vcpu.apic.ipis_received += 1
            vcpu.apic.in_service.append(interrupt.vector)
            if self.events is not None:
                self.events.emit(vcpu, "interrupt", vector=interrupt.vector, source_cpu=interrupt.source_cpu,
                                 arrival_cycle=interrupt.arrival_cycles)
            self.trap_handler.handle_interrupt(vcpu, interrupt.vector)
        return delivered

    # ---- inter-processor interrupts ---------------------------------------

    def send_ipi(self, sender: VCpu, targets, vector: int) -> None:
        """A fixed IPI from ``sender`` to each CPU in ``targets`` (an ICR write)."""
        sender.charge_event("ipi_send")
        arrival = sender.cycles + self.profile.event_cycles("ipi_latency")
        if self.events is not None:
            self.events.emit(sender, "ipi_send", targets=list(targets), vector=vector, arrival_cycle=arrival)
        for target in targets:
            self.vcpus[target].apic.post(arrival, vector, sender.index)
            sender.apic.ipis_sent += 1

    def wait_for_acks(self, sender: VCpu, targets, on_complete=None) -> None:
        """The sender spins until every target acknowledges (smp_call_function_many
        with wait): it stops running until the last ``acknowledge`` and then
        resumes at that time, so its clock advances by the real wait. While it
        spins it still takes interrupts (two CPUs waiting for each other's
        flush both make progress, as with csd_lock_wait). ``on_complete()``
        runs once every target has acknowledged (at once if there are none)."""
        new_targets = {target for target in targets if target != sender.index}
        if sender.waiting_for_acks:
            # A second wait started in the same kernel entry (mremap's two
            # flushes): wait for both sets, then run both completions in order.
            sender.waiting_for_acks |= new_targets
            sender.update_runnable_flag()
            earlier = sender.on_acks_complete
            if on_complete is not None:
                sender.on_acks_complete = (on_complete if earlier is None
                                           else lambda: (earlier(), on_complete()))
            return
        sender.waiting_for_acks = new_targets
        sender.update_runnable_flag()
        sender.ack_time_cycles = sender.cycles
        sender.on_acks_complete = on_complete
        if self.events is not None and sender.waiting_for_acks:
            self.events.emit(sender, "ipi_wait", targets=sorted(sender.waiting_for_acks))
        if not sender.waiting_for_acks:
            self._complete_wait(sender)

    def acknowledge(self, target: VCpu, sender_index: int) -> None:
        """``target`` finished the work ``sender_index`` waits for (at its current clock)."""
        sender = self.vcpus[sender_index]
        if target.index not in sender.waiting_for_acks:
            return
        sender.waiting_for_acks.discard(target.index)
        sender.update_runnable_flag()
        sender.ack_time_cycles = max(sender.ack_time_cycles, target.cycles)
        if not sender.waiting_for_acks:
            sender.clock.cycles = max(sender.cycles, sender.ack_time_cycles)
            if self.events is not None:
                self.events.emit(sender, "ipi_wait_done", last_ack_cpu=target.index)
            self._complete_wait(sender)

    @staticmethod
    def _complete_wait(sender: VCpu) -> None:
        on_complete, sender.on_acks_complete = sender.on_acks_complete, None
        if on_complete is not None:
            on_complete()

    @property
    def c_loop_runs(self) -> int:
        """vCPU runs the C loop started (sched_run; diagnostics, not in the stats)."""
        return self._sched.runs

    @property
    def elapsed_cycles(self) -> int:
        """Machine time: the furthest any vCPU's clock has advanced."""
        return max(vcpu.cycles for vcpu in self.vcpus)
