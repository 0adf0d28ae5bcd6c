/* The per-block hot path, compiled with cffi when the package installs.
 *
 * Unicorn calls hotpath_on_block() before every translated block runs. It
 * charges the block's instruction count and cycle cost to the vCPU's clock
 * from a per-vCPU cache keyed by (guest virtual address, block size); a miss
 * calls back into Python once (hotpath_block_miss) to decode the block with
 * capstone and price it from the cost profile. When the clock reaches the
 * deadline the scheduler set, the block hook asks Unicorn to stop after this
 * block, which is how quanta and --max-cycles end.
 */
#pragma once
#include <stdint.h>

/* unicorn_tlb_flush_pending values. */
#define HOTPATH_FLUSH_NONE 0
#define HOTPATH_FLUSH_ALL 1
#define HOTPATH_FLUSH_PAGES 2
/* Pages a pending flush can list before it becomes a whole-TLB flush. */
#define HOTPATH_FLUSH_PAGES_MAX 16

/* Where QEMU keeps a vCPU's softmmu TLB: QEMU 5.0's CPUTLB in the
 * CPUNegativeOffsetState just before CPUX86State in Unicorn's X86CPU
 * (include/exec/cpu-defs.h). Found and validated by
 * emu/unicorn_internals.py (find_tlb_view) for the verified libunicorn only;
 * fast == NULL when it could not be. With it, the TLB model skips the
 * tlb_flush_page of an evicted data page that QEMU no longer holds
 * (emu/mmu/tlb.c, unicorn_forget). Read only, never written. */
/* CPUTLBEntry's first fields: the page address each kind of access compares
 * against, flags below the page bits, -1 when that access is not allowed
 * (emu/unicorn_internals.py TLB_ENTRY_ADDR_*, which the probe checks). */
#define UNICORN_TLB_ENTRY_ADDR_READ 0
#define UNICORN_TLB_ENTRY_ADDR_WRITE 8
#define UNICORN_TLB_ENTRY_ADDR_CODE 16
struct unicorn_tlb_view {
    const uint8_t *fast;        /* &tlb.f[0]: per MMU index {uintptr_t mask; CPUTLBEntry *table;} */
    const uint8_t *victim;      /* &tlb.d[0].vtable[0]: MMU index 0's victim TLB */
    /* &tlb.c.dirty: bit N is set once MMU index N got an entry since its last
     * full flush (tlb_set_page_with_attrs sets it, tlb_flush_by_mmuidx_async_work
     * clears it), so a clear bit means an empty index. */
    const uint16_t *dirty;
    uint32_t mmu_modes;         /* NB_MMU_MODES */
    uint32_t fast_stride;       /* sizeof(CPUTLBDescFast) */
    uint32_t desc_stride;       /* sizeof(CPUTLBDesc): one MMU index's victim TLB to the next */
    uint32_t victim_entries;    /* CPU_VTLB_SIZE */
    uint32_t entry_shift;       /* CPU_TLB_ENTRY_BITS: sizeof(CPUTLBEntry) == 1 << entry_shift */
};

/* Block prices are fixed point: 1 << HOTPATH_CYCLE_FRACTION_BITS is one
 * cycle (emu/timing/schedule.py ONE_CYCLE); the vCPU keeps the fraction. */
#define HOTPATH_CYCLE_FRACTION_BITS 8
/* hotpath_block_cost.flags: the block ends in a conditional branch, whose
 * outcome the next block's address tells (fed to the branch predictor). */
#define HOTPATH_BLOCK_CONDITIONAL_BRANCH 1

struct hotpath_block_cost {
    uint64_t address;       /* guest virtual address of the block; 0 = empty */
    uint32_t size_bytes;    /* Unicorn's block size: a different size is a different block */
    uint32_t instructions;
    uint32_t entry_fixed;   /* price when entered from another block (fixed point) */
    uint32_t repeat_fixed;  /* price when it follows itself: a loop's steady state, a rep iteration */
    uint32_t flags;         /* HOTPATH_BLOCK_* */
    uint32_t reserved;
};

/* The optional per-access cache model (--cache-model): emu/timing/cache.c. */
struct cache_model;

/* Entries of the fast system-call table (struct hotpath_vcpu). */
#define HOTPATH_FAST_SYSCALLS_MAX 4

struct hotpath_vcpu {
    /* Owned by the hot path (written per block). */
    uint64_t cycles;            /* this vCPU's clock */
    uint64_t instructions;      /* retired, counted per block entry */
    uint64_t block_misses;
    /* The cache slot of the block charged last, so a fault inside it can be
     * refunded for the instructions that did not execute
     * (VCpu._refund_unexecuted); NULL when there is none. */
    struct hotpath_block_cost *last_block;
    /* Owned by the scheduler (Python). */
    uint64_t deadline_cycles;   /* stop once cycles >= this */
    uint32_t deadline_reached;  /* set by the hot path, cleared by Python */
    uint32_t table_mask;        /* table has table_mask + 1 entries (power of two) */
    struct hotpath_block_cost *table;
    void *uc;                   /* the uc_engine* of this vCPU, for emu_stop */
    int vcpu_index;             /* passed back to Python on a miss */
    /* Set when the TLB model dropped an entry Unicorn's own TLB may hold
     * (emu/mmu/tlb.h); the block hook flushes Unicorn's TLB before the next
     * block, and VCpu.run before emu_start. HOTPATH_FLUSH_ALL: the whole TLB;
     * HOTPATH_FLUSH_PAGES: only the unicorn_tlb_flush_pages listed. */
    uint32_t unicorn_tlb_flush_pending;
    /* Pages (4 KiB, virtual) whose Unicorn entries must go, when the flush
     * pending is HOTPATH_FLUSH_PAGES. Used only when uc_cpu is set. */
    uint32_t unicorn_tlb_flush_page_count;
    uint64_t unicorn_tlb_flush_pages[HOTPATH_FLUSH_PAGES_MAX];
    /* Unicorn's CPUState for tlb_flush_page, set by Python only after it
     * validated the pointer (emu/unicorn_internals.py); NULL: every flush is
     * a whole-TLB flush through uc_ctl. */
    void *uc_cpu;
    uint64_t unicorn_tlb_full_flushes;  /* whole-TLB flushes done (diagnostics) */
    uint64_t unicorn_tlb_page_flushes;  /* single-page flushes done (diagnostics) */
    /* QEMU's TLB of this vCPU, set by Python with uc_cpu (fast == NULL:
     * unknown, every eviction of the current context is flushed). */
    struct unicorn_tlb_view uc_tlb;
    /* Evictions that needed no flush: a data-only page QEMU's TLB did not
     * hold (diagnostics). */
    uint64_t unicorn_tlb_flushes_skipped;
    /* The vCPU's struct mmu_vcpu (emu/mmu/tlb.h), for reading a missed
     * block's bytes as Machine.price_block does; and the process-wide price
     * cache's profile number for this machine, 0: do not use the cache. */
    void *mmu;
    uint32_t price_profile;
    uint64_t price_cache_hits;  /* misses priced from the cache (diagnostics) */
    /* Set by the SYSCALL hook (hotpath_on_syscall), taken and cleared by
     * VCpu.run when emu_start returns; the Python trap hooks clear it, so it
     * is set only when the SYSCALL was the last trap of the run. */
    uint32_t syscall_pending;
    /* The cycle clock the vDSO reads (Machine.set_cycle_clock_word,
     * VCpu.set_cycle_clock_block): a word of guest physical memory (host
     * address; NULL: none) that receives this vCPU's clock, after charging,
     * each time the block at virtual address cycle_clock_block starts -- the
     * vDSO block that loads it. That block is priced once into
     * cycle_clock_slot and kept out of the table, so its entries always take
     * the out-of-line path and no other block pays anything. vCPUs run one
     * at a time, so the word holds the clock of the vCPU executing. */
    uint64_t *cycle_clock_word;
    uint64_t cycle_clock_block;
    struct hotpath_block_cost cycle_clock_slot;
    /* The clock's fraction of a cycle (fixed point, below one cycle), and the
     * price charged for the last block without any misprediction penalty
     * (VCpu._refund_unexecuted takes it back). */
    uint32_t cycle_fraction;
    uint32_t last_charge_fixed;
    /* gshare branch predictor (emu/timing/hotpath.c predict_branch): 2-bit
     * counters indexed by the branch's block end address xor the global
     * history; NULL when the profile has no misprediction penalty. */
    uint8_t *predictor;
    uint32_t predictor_mask;        /* predictor has predictor_mask + 1 counters */
    uint32_t branch_history;
    uint32_t mispredict_penalty_fixed;
    uint64_t conditional_branches;
    uint64_t branch_mispredicts;
    /* --cache-model's caches (emu/timing/cache.h), NULL when off. */
    struct cache_model *cache;
    /* System calls answered without leaving emu_start (hotpath_on_syscall):
     * the kernel (Kernel.arm_fast_syscalls) lists the calls whose result is a
     * fixed value of the running task -- getpid, getppid, gettid -- and the
     * machine (Machine._run_loop) the bounds under which its loop would pick
     * this vCPU again right after the call with nothing to deliver: the
     * clock after the call's charge below fast_syscall_limit_cycles (the
     * other vCPUs' clocks and wake-ups, this vCPU's next interrupt,
     * --max-cycles). The hook then does what the trap would: charges
     * fast_syscall_cycles (the profile's syscall event), loads RCX/R11 as
     * SYSCALL does, RAX with the value, counts the call in fast_syscall_hits
     * (the kernel folds them into its statistics after the run) and moves the
     * deadline to where the loop would put it: min(clock + quantum, bound).
     * fast_syscall_count == 0: every SYSCALL stops the run. */
    uint32_t fast_syscall_count;
    uint32_t fast_syscall_nr[HOTPATH_FAST_SYSCALLS_MAX];
    uint64_t fast_syscall_value[HOTPATH_FAST_SYSCALLS_MAX];
    uint64_t fast_syscall_hits[HOTPATH_FAST_SYSCALLS_MAX];
    uint64_t fast_syscall_hits_total;
    uint64_t fast_syscall_cycles;
    uint64_t fast_syscall_limit_cycles;
    uint64_t fast_syscall_bound_cycles;
    uint64_t fast_syscall_quantum_cycles;
    /* Calls into Python during runs: the block-miss callback here, the
     * Python hooks (VCpu._on_interrupt, ...) in Python. The machine's C loop
     * (emu/runqueue_scan.c sched_run) hands a run that made any to Python. */
    uint64_t python_calls;
};

void hotpath_set_emu_stop(uintptr_t uc_emu_stop_address);
void hotpath_set_uc_ctl(uintptr_t uc_ctl_address);
void hotpath_set_tlb_flush_page(uintptr_t tlb_flush_page_address);
void hotpath_flush_unicorn_tlb(struct hotpath_vcpu *vcpu);
void hotpath_flush_unicorn_tlb_pending(struct hotpath_vcpu *vcpu);
void hotpath_on_block(void *uc, uint64_t address, uint32_t size_bytes, void *user_data);
uintptr_t hotpath_on_block_address(void);
void hotpath_store_block(struct hotpath_vcpu *vcpu, uint64_t address, uint32_t size_bytes,
                         uint32_t instructions, uint32_t entry_fixed, uint32_t repeat_fixed, uint32_t flags);
void hotpath_clear_blocks(struct hotpath_vcpu *vcpu);
/* VCpu.run's set-up before emu_start, in one call: the deadline (clearing
 * deadline_reached), then -- unless the clock already reached it
 * (HOTPATH_RUN_DEADLINE) -- the fill hook's fault cleared, a pending flush of
 * Unicorn's TLB done, and register `rip_register` read into *rip (a uc_err:
 * emu/registers_fast.c regs_read_scalar). */
#define HOTPATH_RUN_DEADLINE -1
int hotpath_prepare_run(struct hotpath_vcpu *vcpu, uint64_t deadline_cycles, int rip_register, uint64_t *rip);

/* Block prices shared by every vCPU of every machine in the process, keyed
 * by the block's bytes and a profile number (Python numbers each distinct
 * table of instruction costs from 1): Machine.price_block's result is a
 * function of those alone when capstone decodes the whole block (no
 * invalid-opcode tail, whose bytes lie past the block), and Python inserts
 * only such results. A block-table miss first reads the block's bytes
 * through the vCPU's page tables -- the canonical check, firmware window,
 * fetch walks at CPL3 and bounds check of VCpu.translate and
 * Machine.read_virtual, so the same Accessed bits are set -- and looks them
 * up here; anything else (a fault, a miss, a block over two pages) goes to
 * Python as before. A pure cache: it never changes a price; an insert past
 * its bound of entries is dropped (hotpath.c: open addressing, grown as it
 * fills). */
void hotpath_price_cache_init(uint32_t entries);     /* the bound, a power of two; drops every entry */
void hotpath_price_cache_insert(uint32_t profile, const char *code, uint32_t size_bytes,
                                uint32_t instructions, uint32_t entry_fixed, uint32_t repeat_fixed,
                                uint32_t flags);
uint32_t hotpath_price_cache_size(void);            /* entries in use (tests) */

/* The UC_HOOK_INSN hook for SYSCALL (user_data: the vCPU's struct
 * hotpath_vcpu): record the trap and stop, as the Python hook did, without a
 * Python callback per system call. */
void hotpath_on_syscall(void *uc, void *user_data);
uintptr_t hotpath_on_syscall_address(void);

/* emu/timing/abort_guard.c: uc_emu_start that survives an abort() inside
 * Unicorn's translator (returns HOTPATH_TRANSLATION_ABORTED). */
#define HOTPATH_TRANSLATION_ABORTED 1000
void hotpath_set_emu_start(uintptr_t uc_emu_start_address);
int hotpath_emu_start_guarded(void *uc, uint64_t begin, uint64_t until);
/* Keep the guard's SIGABRT handler installed between runs (Machine.run), so a
 * run makes no system call; remove restores the action it replaced. */
void hotpath_abort_guard_install(void);
void hotpath_abort_guard_remove(void);
