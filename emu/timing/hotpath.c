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
                         uint32_t instructions, uint64_t cycles)
{
    struct hotpath_block_cost *slot = slot_for(vcpu, address);
    slot->address = address;
    slot->size_bytes = size_bytes;
    slot->instructions = instructions;
    slot->cycles = cycles;
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
    uint64_t cycles;
    uint8_t *code;              /* malloc'ed copy of the block's bytes */
};

static struct price_entry *price_cache;
static uint32_t price_cache_mask;
static uint32_t price_cache_used;

static void price_cache_free(void)
{
    if (!price_cache)
        return;
    for (uint32_t i = 0; i <= price_cache_mask; i++)
        free(price_cache[i].code);
    free(price_cache);
    price_cache = 0;
    price_cache_used = 0;
}

void hotpath_price_cache_init(uint32_t entries)
{
    price_cache_free();
    if (!entries || (entries & (entries - 1)))
        return;
    price_cache = calloc(entries, sizeof *price_cache);
    price_cache_mask = price_cache ? entries - 1 : 0;
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

void hotpath_price_cache_insert(uint32_t profile, const char *code, uint32_t size_bytes,
                                uint32_t instructions, uint64_t cycles)
{
    if (!price_cache || !profile || !size_bytes)
        return;
    uint8_t *copy = malloc(size_bytes);
    if (!copy)
        return;
    memcpy(copy, code, size_bytes);
    uint64_t hash = price_hash(profile, copy, size_bytes, 0, 0);
    struct price_entry *e = &price_cache[(hash >> 32) & price_cache_mask];
    if (e->code)
        free(e->code);
    else
        price_cache_used++;
    e->hash = hash;
    e->profile = profile;
    e->size_bytes = size_bytes;
    e->instructions = instructions;
    e->cycles = cycles;
    e->code = copy;
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
                            uint32_t *instructions, uint64_t *cycles)
{
    const uint8_t *piece[2];
    uint32_t piece_bytes[2];
    if (!price_cache || !vcpu->price_profile || !vcpu->mmu || !size_bytes
            || !block_bytes((struct mmu_vcpu *)vcpu->mmu, address, size_bytes, piece, piece_bytes))
        return 0;
    uint64_t hash = price_hash(vcpu->price_profile, piece[0], piece_bytes[0], piece[1], piece_bytes[1]);
    struct price_entry *e = &price_cache[(hash >> 32) & price_cache_mask];
    if (!e->code || e->hash != hash || e->profile != vcpu->price_profile || e->size_bytes != size_bytes
            || memcmp(e->code, piece[0], piece_bytes[0])
            || memcmp(e->code + piece_bytes[0], piece[1], piece_bytes[1]))
        return 0;
    *instructions = e->instructions;
    *cycles = e->cycles;
    return 1;
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
    struct hotpath_block_cost *slot = clock_block ? &vcpu->cycle_clock_slot : slot_for(vcpu, address);
    if (slot->address != address || slot->size_bytes != size_bytes) {
        uint32_t instructions;
        uint64_t cycles;
        vcpu->block_misses++;
        if (price_from_cache(vcpu, address, size_bytes, &instructions, &cycles)) {
            vcpu->price_cache_hits++;
            hotpath_store_block(vcpu, address, size_bytes, instructions, cycles);
        } else {
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
    vcpu->cycles += slot->cycles;
    vcpu->instructions += slot->instructions;
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
    struct hotpath_block_cost *slot = vcpu->last_block;
    /* Loops re-enter the block they just ran: try that before hashing. */
    if (!slot || slot->address != address || slot->size_bytes != size_bytes) {
        slot = slot_for(vcpu, address);
        if (__builtin_expect(slot->address != address || slot->size_bytes != size_bytes, 0)) {
            on_block_rare(uc, address, size_bytes, vcpu);
            return;
        }
        vcpu->last_block = slot;
    }
    vcpu->cycles += slot->cycles;
    vcpu->instructions += slot->instructions;
}

uintptr_t hotpath_on_block_address(void)
{
    return (uintptr_t)&hotpath_on_block;
}

void hotpath_on_syscall(void *uc, void *user_data)
{
    struct hotpath_vcpu *vcpu = (struct hotpath_vcpu *)user_data;
    vcpu->syscall_pending = 1;
    emu_stop(uc);
}

uintptr_t hotpath_on_syscall_address(void)
{
    return (uintptr_t)&hotpath_on_syscall;
}
