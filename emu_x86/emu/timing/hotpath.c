#include <stdlib.h>
#include <string.h>
#include "hotpath.h"

typedef int (*uc_emu_stop_fn)(void *uc);
static uc_emu_stop_fn emu_stop;
typedef int (*uc_ctl_fn)(void *uc, int control, ...);
static uc_ctl_fn uc_ctl;
/* uc_ctl's code for UC_CTL_TLB_FLUSH (11) as a write with no arguments:
 * (UC_CTL_IO_WRITE << 30) | (nargs << 26) | control, as unicorn.h encodes it. */
#define UC_CTL_TLB_FLUSH_WRITE ((1 << 30) | 11)

/* Defined by cffi from the extern "Python" declaration in _build_hotpath.py. */
static void hotpath_block_miss(int vcpu_index, uint64_t address, uint32_t size_bytes);

void hotpath_set_emu_stop(uintptr_t uc_emu_stop_address)
{
    emu_stop = (uc_emu_stop_fn)uc_emu_stop_address;
}

void hotpath_set_uc_ctl(uintptr_t uc_ctl_address)
{
    uc_ctl = (uc_ctl_fn)uc_ctl_address;
}

/* QEMU's tlb_flush_page (libunicorn's tlb_flush_page_x86_64): drops one
 * page's entries in every MMU index, from the main and the victim TLB, and
 * its TBs from the jump cache. Not public API: Python passes it only with a
 * CPUState pointer it validated (emu/unicorn_internals.py). */
typedef void (*tlb_flush_page_fn)(void *cpu, uint64_t vaddr);
static tlb_flush_page_fn tlb_flush_page;

void hotpath_set_tlb_flush_page(uintptr_t tlb_flush_page_address)
{
    tlb_flush_page = (tlb_flush_page_fn)tlb_flush_page_address;
}

void hotpath_flush_unicorn_tlb(struct hotpath_vcpu *vcpu)
{
    vcpu->unicorn_tlb_flush_pending = HOTPATH_FLUSH_NONE;
    vcpu->unicorn_tlb_flush_page_count = 0;
    vcpu->unicorn_tlb_full_flushes++;
    uc_ctl(vcpu->uc, UC_CTL_TLB_FLUSH_WRITE);
}

/* Do the flush the TLB model asked for: the listed pages, or everything. */
void hotpath_flush_unicorn_tlb_pending(struct hotpath_vcpu *vcpu)
{
    if (vcpu->unicorn_tlb_flush_pending != HOTPATH_FLUSH_PAGES || !vcpu->uc_cpu || !tlb_flush_page) {
        hotpath_flush_unicorn_tlb(vcpu);
        return;
    }
    uint32_t count = vcpu->unicorn_tlb_flush_page_count;
    vcpu->unicorn_tlb_flush_pending = HOTPATH_FLUSH_NONE;
    vcpu->unicorn_tlb_flush_page_count = 0;
    vcpu->unicorn_tlb_page_flushes += count;
    for (uint32_t i = 0; i < count; i++)
        tlb_flush_page(vcpu->uc_cpu, vcpu->unicorn_tlb_flush_pages[i]);
}

static inline struct hotpath_block_cost *slot_for(struct hotpath_vcpu *vcpu, uint64_t address)
{
    /* Blocks start at arbitrary byte addresses; mix the bits so that code laid
     * out at page-aligned offsets does not collide in one slot. */
    uint64_t h = address * 0x9E3779B97F4A7C15ull;
    return &vcpu->table[(h >> 40) & vcpu->table_mask];
}

void hotpath_store_block(struct hotpath_vcpu *vcpu, uint64_t address, uint32_t size_bytes,
                         uint32_t instructions, uint32_t entry_fixed, uint32_t repeat_fixed, uint32_t flags)
{
    struct hotpath_block_cost *slot = slot_for(vcpu, address);
    slot->address = address;
    slot->size_bytes = size_bytes;
    slot->instructions = instructions;
    slot->entry_fixed = entry_fixed;
    slot->repeat_fixed = repeat_fixed;
    slot->flags = flags;
}

void hotpath_clear_blocks(struct hotpath_vcpu *vcpu)
{
    vcpu->last_block = 0;
    vcpu->cycle_clock_slot.address = 0;
    memset(vcpu->table, 0, sizeof(struct hotpath_block_cost) * ((size_t)vcpu->table_mask + 1));
}

int hotpath_prepare_run(struct hotpath_vcpu *vcpu, uint64_t deadline_cycles, int rip_register, uint64_t *rip)
{
    vcpu->deadline_cycles = deadline_cycles;
    vcpu->deadline_reached = 0;
    if (vcpu->cycles >= deadline_cycles)
        return HOTPATH_RUN_DEADLINE;
    ((struct mmu_vcpu *)vcpu->mmu)->fault_vector = 0;
    if (vcpu->unicorn_tlb_flush_pending)
        hotpath_flush_unicorn_tlb_pending(vcpu);
    return regs_read_scalar(vcpu->uc, rip_register, rip);
}

/* ---- the process-wide price cache (hotpath.h) ---------------------------- */

struct price_entry {
    uint64_t hash;
    uint32_t profile;           /* 0: empty */
    uint32_t size_bytes;
    uint32_t instructions;
    uint32_t entry_fixed, repeat_fixed, flags;
    uint8_t *code;              /* malloc'ed copy of the block's bytes; 0: empty slot */
};

/* Open addressing with linear probing, at most half full: a block's entry is
 * found however many others share its home slot. (Direct-mapped, as it was,
 * emu server's whole-store preload of 65,536 blocks into 65,536 slots lost
 * about a third of them to collisions, and a served hello's blocks went to
 * Python: 36 M more host instructions in its worker, callgrind.) The table
 * starts small and doubles, so a process that adopts a thousand blocks
 * touches 80 KiB of it, not 2.6 MiB (a fresh hello's first-touch faults). */
#define PRICE_CACHE_FIRST_SLOTS 2048u

static struct price_entry *price_cache;
static uint32_t price_cache_mask;       /* slots - 1 */
static uint32_t price_cache_used;
static uint32_t price_cache_limit;      /* entries at most (hotpath_price_cache_init) */

static void price_cache_free(void)
{
    if (!price_cache)
        return;
    for (uint32_t i = 0; i <= price_cache_mask; i++)
        free(price_cache[i].code);
    free(price_cache);
    price_cache = 0;
    price_cache_mask = 0;
    price_cache_used = 0;
}

void hotpath_price_cache_init(uint32_t entries)
{
    price_cache_free();
    price_cache_limit = 0;
    if (!entries || (entries & (entries - 1)))
        return;
    uint32_t slots = entries * 2 < PRICE_CACHE_FIRST_SLOTS ? entries * 2 : PRICE_CACHE_FIRST_SLOTS;
    price_cache = calloc(slots, sizeof *price_cache);
    if (!price_cache)
        return;
    price_cache_mask = slots - 1;
    price_cache_limit = entries;
}

uint32_t hotpath_price_cache_size(void)
{
    return price_cache_used;
}

/* FNV-1a over the bytes, then the size and profile mixed in. */
static uint64_t price_hash(uint32_t profile, const uint8_t *first, uint32_t first_bytes,
                           const uint8_t *second, uint32_t second_bytes)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (uint32_t i = 0; i < first_bytes; i++)
        h = (h ^ first[i]) * 0x100000001b3ull;
    for (uint32_t i = 0; i < second_bytes; i++)
        h = (h ^ second[i]) * 0x100000001b3ull;
    h ^= ((uint64_t)profile << 32) | (first_bytes + second_bytes);
    return h * 0x9E3779B97F4A7C15ull;
}

/* The slot holding the block (hash, profile, bytes), or the empty slot that
 * ends its probe sequence. The table is never full (at most half). */
static struct price_entry *price_slot(uint64_t hash, uint32_t profile, const uint8_t *first,
                                      uint32_t first_bytes, const uint8_t *second, uint32_t second_bytes)
{
    uint32_t size = first_bytes + second_bytes;
    for (uint32_t i = (uint32_t)(hash >> 32) & price_cache_mask;; i = (i + 1) & price_cache_mask) {
        struct price_entry *e = &price_cache[i];
        if (!e->code)
            return e;
        if (e->hash == hash && e->profile == profile && e->size_bytes == size
                && !memcmp(e->code, first, first_bytes)
                && (!second_bytes || !memcmp(e->code + first_bytes, second, second_bytes)))
            return e;
    }
}

/* Twice the slots, every entry moved to its place in them; 0 when there is
 * no memory for it (the table then stays as it is, and full inserts are
 * dropped: a pure cache). */
static int price_cache_grow(void)
{
    uint32_t slots = (price_cache_mask + 1) * 2;
    struct price_entry *grown = calloc(slots, sizeof *grown);
    if (!grown)
        return 0;
    for (uint32_t i = 0; i <= price_cache_mask; i++) {
        struct price_entry *e = &price_cache[i];
        if (!e->code)
            continue;
        uint32_t j = (uint32_t)(e->hash >> 32) & (slots - 1);
        while (grown[j].code)
            j = (j + 1) & (slots - 1);
        grown[j] = *e;
    }
    free(price_cache);
    price_cache = grown;
    price_cache_mask = slots - 1;
    return 1;
}

void hotpath_price_cache_insert(uint32_t profile, const char *code, uint32_t size_bytes,
                                uint32_t instructions, uint32_t entry_fixed, uint32_t repeat_fixed,
                                uint32_t flags)
{
    if (!price_cache || !profile || !size_bytes)
        return;
    uint64_t hash = price_hash(profile, (const uint8_t *)code, size_bytes, 0, 0);
    struct price_entry *e = price_slot(hash, profile, (const uint8_t *)code, size_bytes, 0, 0);
    if (e->code && e->instructions == instructions && e->entry_fixed == entry_fixed
            && e->repeat_fixed == repeat_fixed && e->flags == flags)
        return;     /* already so: leave its page unwritten (emu server's workers share it copy-on-write) */
    if (!e->code) {
        if (price_cache_used >= price_cache_limit)
            return;                      /* at the bound: a pure cache, the block goes to Python */
        if (2 * (price_cache_used + 1) > price_cache_mask + 1) {
            if (!price_cache_grow())
                return;
            e = price_slot(hash, profile, (const uint8_t *)code, size_bytes, 0, 0);
        }
        uint8_t *copy = malloc(size_bytes);
        if (!copy)
            return;
        memcpy(copy, code, size_bytes);
        e->code = copy;
        e->hash = hash;
        e->profile = profile;
        e->size_bytes = size_bytes;
        price_cache_used++;
    }
    e->instructions = instructions;
    e->entry_fixed = entry_fixed;
    e->repeat_fixed = repeat_fixed;
    e->flags = flags;
}

/* The bytes of [address, address + size) as Machine.read_virtual reads them
 * for Machine.price_block (VCpu.translate per page: #GP if not canonical, the
 * firmware window untranslated, else the fetch walk at CPL3), as up to two
 * host pointers; 0 when Python must do it (a fault, the firmware, three pages). */
static int block_bytes(struct mmu_vcpu *mmu, uint64_t address, uint32_t size,
                       const uint8_t *piece[2], uint32_t piece_bytes[2])
{
    uint32_t done = 0;
    int pieces = 0;
    while (done < size) {
        uint64_t vaddr = address + done;
        uint32_t chunk = 4096 - (uint32_t)(vaddr & 4095);
        if (chunk > size - done)
            chunk = size - done;
        uint64_t top = vaddr >> 47;
        if (pieces == 2 || (top != 0 && top != (1ull << 17) - 1))
            return 0;
        if (vaddr - mmu->firmware_vaddr < mmu->firmware_size)
            return 0;
        struct walk_result result;
        if (mmu_walk_mode(mmu, vaddr, MMU_ACCESS_FETCH, 1, &result))
            return 0;
        uint64_t paddr = result.paddr | (vaddr & 4095);
        if (paddr + chunk > mmu->phys_size)
            return 0;
        piece[pieces] = mmu->phys + paddr;
        piece_bytes[pieces++] = chunk;
        done += chunk;
    }
    if (pieces == 1) {
        piece[1] = 0;
        piece_bytes[1] = 0;
    }
    return pieces;
}

static int price_from_cache(struct hotpath_vcpu *vcpu, uint64_t address, uint32_t size_bytes,
                            const struct price_entry **found)
{
    const uint8_t *piece[2];
    uint32_t piece_bytes[2];
    if (!price_cache || !vcpu->price_profile || !vcpu->mmu || !size_bytes
            || !block_bytes((struct mmu_vcpu *)vcpu->mmu, address, size_bytes, piece, piece_bytes))
        return 0;
    uint64_t hash = price_hash(vcpu->price_profile, piece[0], piece_bytes[0], piece[1], piece_bytes[1]);
    const struct price_entry *e = price_slot(hash, vcpu->price_profile, piece[0], piece_bytes[0], piece[1],
                                             piece_bytes[1]);
    if (!e->code)
        return 0;
    *found = e;
    return 1;
}

/* gshare (McFarling 1993): the conditional branch ending the previous block
 * was taken unless this block starts where that one ends. A 2-bit counter
 * indexed by the branch's address xor the global history predicts it; a
 * wrong prediction costs the profile's penalty (refetch from the redirected
 * address). Returns the penalty to charge, fixed point. */
static inline uint32_t predict_branch(struct hotpath_vcpu *vcpu, uint64_t branch_end, uint64_t address)
{
    uint32_t taken = address != branch_end;
    uint32_t index = ((uint32_t)branch_end ^ (uint32_t)(branch_end >> 15) ^ (vcpu->branch_history * 0x9E37u))
                     & vcpu->predictor_mask;
    uint8_t counter = vcpu->predictor[index];
    uint32_t predicted_taken = counter >> 1;
    vcpu->predictor[index] = taken ? (counter < 3 ? counter + 1 : 3) : (counter ? counter - 1 : 0);
    vcpu->branch_history = (vcpu->branch_history << 1) | taken;
    vcpu->conditional_branches++;
    if (predicted_taken == taken)
        return 0;
    vcpu->branch_mispredicts++;
    return vcpu->mispredict_penalty_fixed;
}

/* Charge a block's price (and the previous block's branch outcome) to the
 * clock: whole cycles to cycles, the rest kept in cycle_fraction. */
static inline void charge_block(struct hotpath_vcpu *vcpu, uint32_t prev_flags, uint64_t prev_end,
                                const struct hotpath_block_cost *slot, uint64_t address, uint32_t price)
{
    vcpu->last_charge_fixed = price;
    if ((prev_flags & HOTPATH_BLOCK_CONDITIONAL_BRANCH) && vcpu->predictor)
        price += predict_branch(vcpu, prev_end, address);
    uint64_t total = (uint64_t)vcpu->cycle_fraction + price;
    vcpu->cycles += total >> HOTPATH_CYCLE_FRACTION_BITS;
    vcpu->cycle_fraction = (uint32_t)total & ((1u << HOTPATH_CYCLE_FRACTION_BITS) - 1);
    vcpu->instructions += slot->instructions;
}

/* Everything but "the block that just ran runs again" or "a cached block":
 * the deadline, a pending Unicorn TLB flush, a cache miss. Kept out of line
 * so that the common path of hotpath_on_block needs no stack frame: Unicorn
 * calls the hook before every block, and in a tight loop the hook's
 * prologue and epilogue were a quarter of its instructions (callgrind). */
static void __attribute__((noinline, cold)) on_block_rare(void *uc, uint64_t address, uint32_t size_bytes,
                                                          struct hotpath_vcpu *vcpu)
{
    /* Stopping from a block hook abandons the block before it runs (measured:
     * it is entered again on resume), so the deadline is checked before the
     * block is charged: a block is charged exactly when it executes. */
    if (vcpu->cycles >= vcpu->deadline_cycles) {
        if (!vcpu->deadline_reached) {
            vcpu->deadline_reached = 1;
            emu_stop(uc);
        }
        return;
    }
    if (vcpu->unicorn_tlb_flush_pending)
        hotpath_flush_unicorn_tlb_pending(vcpu);
    int clock_block = address == vcpu->cycle_clock_block && vcpu->cycle_clock_word;
    /* The previous block, read before a miss may store over its slot. */
    struct hotpath_block_cost *prev = vcpu->last_block;
    uint32_t prev_flags = prev ? prev->flags : 0;
    uint64_t prev_end = prev ? prev->address + prev->size_bytes : 0;
    int repeat = prev && prev->address == address && prev->size_bytes == size_bytes;
    struct hotpath_block_cost *slot = clock_block ? &vcpu->cycle_clock_slot : slot_for(vcpu, address);
    if (slot->address != address || slot->size_bytes != size_bytes) {
        const struct price_entry *found;
        vcpu->block_misses++;
        if (price_from_cache(vcpu, address, size_bytes, &found)) {
            vcpu->price_cache_hits++;
            hotpath_store_block(vcpu, address, size_bytes, found->instructions, found->entry_fixed,
                                found->repeat_fixed, found->flags);
        } else {
            vcpu->python_calls++;
            hotpath_block_miss(vcpu->vcpu_index, address, size_bytes);
        }
        slot = slot_for(vcpu, address);
        if (clock_block && slot->address == address && slot->size_bytes == size_bytes) {
            /* The block that reads the cycle clock word stays out of the
             * table, so each of its entries comes here and refreshes the word:
             * no other block pays for the clock. */
            vcpu->cycle_clock_slot = *slot;
            slot->address = 0;
            slot = &vcpu->cycle_clock_slot;
        }
    }
    charge_block(vcpu, prev_flags, prev_end, slot, address, repeat ? slot->repeat_fixed : slot->entry_fixed);
    vcpu->last_block = slot;
    if (clock_block)
        *vcpu->cycle_clock_word = vcpu->cycles;
}

void hotpath_on_block(void *uc, uint64_t address, uint32_t size_bytes, void *user_data)
{
    struct hotpath_vcpu *vcpu = (struct hotpath_vcpu *)user_data;
    if (__builtin_expect(vcpu->cycles >= vcpu->deadline_cycles || vcpu->unicorn_tlb_flush_pending, 0)) {
        on_block_rare(uc, address, size_bytes, vcpu);
        return;
    }
    struct hotpath_block_cost *prev = vcpu->last_block;
    struct hotpath_block_cost *slot = prev;
    uint32_t price;
    /* Loops re-enter the block they just ran: try that before hashing, and
     * charge its steady state (schedule.py: the repeat price). */
    if (slot && slot->address == address && slot->size_bytes == size_bytes
        && slot != &vcpu->cycle_clock_slot) {   /* the vDSO clock block always refreshes its word */
        price = slot->repeat_fixed;
    } else {
        slot = slot_for(vcpu, address);
        if (__builtin_expect(slot->address != address || slot->size_bytes != size_bytes, 0)) {
            on_block_rare(uc, address, size_bytes, vcpu);
            return;
        }
        vcpu->last_block = slot;
        price = slot->entry_fixed;
    }
    if (prev)
        charge_block(vcpu, prev->flags, prev->address + prev->size_bytes, slot, address, price);
    else
        charge_block(vcpu, 0, 0, slot, address, price);
}

uintptr_t hotpath_on_block_address(void)
{
    return (uintptr_t)&hotpath_on_block;
}

/* Unicorn's register numbers (unicorn/x86.h) the fast path touches. */
#define UC_X86_REG_EFLAGS_ID 25
#define UC_X86_REG_RAX_ID 35
#define UC_X86_REG_RCX_ID 38
#define UC_X86_REG_RIP_ID 41
#define UC_X86_REG_R11_ID 109
#define RFLAGS_TF_BIT (1u << 8)

/* A call the kernel armed (struct hotpath_vcpu fast_syscall_*): answered
 * here; 0 when the run must stop for Python instead. */
static int fast_syscall(void *uc, struct hotpath_vcpu *vcpu)
{
    uint64_t nr, rip, rflags;
    if (vcpu->cycles + vcpu->fast_syscall_cycles >= vcpu->fast_syscall_limit_cycles)
        return 0;
    if (regs_read_scalar(uc, UC_X86_REG_RAX_ID, &nr))
        return 0;
    uint32_t i = 0;
    /* do_syscall_64 takes the number as an int: the upper half is ignored. */
    while (i < vcpu->fast_syscall_count && vcpu->fast_syscall_nr[i] != (uint32_t)nr)
        i++;
    if (i == vcpu->fast_syscall_count)
        return 0;
    /* Inside Unicorn's SYSCALL hook RIP is still the instruction's own address
     * (helper_syscall adds the length after the hooks). QEMU ends a
     * translation block after SYSCALL, so the return RIP is the end of the
     * block the block hook last saw; anything else goes to Python. A
     * single-step trap (TF) goes to Python too, which knows QEMU's late #DB. */
    const struct hotpath_block_cost *block = vcpu->last_block;
    if (block == NULL || regs_read_scalar(uc, UC_X86_REG_RIP_ID, &rip)
        || regs_read_scalar(uc, UC_X86_REG_EFLAGS_ID, &rflags) || (rflags & RFLAGS_TF_BIT))
        return 0;
    uint64_t return_rip = block->address + block->size_bytes;
    if (rip < block->address || return_rip < rip + 2 || return_rip > rip + 15)
        return 0;
    /* SYSCALL loads RCX with the return RIP and R11 with RFLAGS (SDM Vol. 2B
     * SYSCALL); Linux's SYSRET path returns with both (Kernel.handle_syscall). */
    if (regs_write_scalar(uc, UC_X86_REG_RCX_ID, return_rip) || regs_write_scalar(uc, UC_X86_REG_R11_ID, rflags)
        || regs_write_scalar(uc, UC_X86_REG_RAX_ID, vcpu->fast_syscall_value[i]))
        return 0;
    vcpu->cycles += vcpu->fast_syscall_cycles;
    vcpu->fast_syscall_hits[i]++;
    vcpu->fast_syscall_hits_total++;
    uint64_t deadline = vcpu->cycles + vcpu->fast_syscall_quantum_cycles;
    if (deadline > vcpu->fast_syscall_bound_cycles)
        deadline = vcpu->fast_syscall_bound_cycles;
    vcpu->deadline_cycles = deadline;
    return 1;
}

void hotpath_on_syscall(void *uc, void *user_data)
{
    struct hotpath_vcpu *vcpu = (struct hotpath_vcpu *)user_data;
    if (vcpu->fast_syscall_count && fast_syscall(uc, vcpu))
        return;
    vcpu->syscall_pending = 1;
    emu_stop(uc);
}

uintptr_t hotpath_on_syscall_address(void)
{
    return (uintptr_t)&hotpath_on_syscall;
}
