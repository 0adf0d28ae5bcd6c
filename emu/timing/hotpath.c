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
    memset(vcpu->table, 0, sizeof(struct hotpath_block_cost) * ((size_t)vcpu->table_mask + 1));
}

void hotpath_on_block(void *uc, uint64_t address, uint32_t size_bytes, void *user_data)
{
    struct hotpath_vcpu *vcpu = (struct hotpath_vcpu *)user_data;
    /* Stopping from a block hook abandons the block before it runs (measured:
     * it is entered again on resume), so the deadline is checked before the
     * block is charged: a block is charged exactly when it executes. */
    if (__builtin_expect(vcpu->cycles >= vcpu->deadline_cycles, 0)) {
        if (!vcpu->deadline_reached) {
            vcpu->deadline_reached = 1;
            emu_stop(uc);
        }
        return;
    }
    if (__builtin_expect(vcpu->unicorn_tlb_flush_pending, 0))
        hotpath_flush_unicorn_tlb_pending(vcpu);
    struct hotpath_block_cost *slot = vcpu->last_block;
    /* Loops re-enter the block they just ran: try that before hashing. */
    if (!slot || slot->address != address || slot->size_bytes != size_bytes) {
        slot = slot_for(vcpu, address);
        if (__builtin_expect(slot->address != address || slot->size_bytes != size_bytes, 0)) {
            vcpu->block_misses++;
            hotpath_block_miss(vcpu->vcpu_index, address, size_bytes);
            slot = slot_for(vcpu, address);
        }
    }
    vcpu->cycles += slot->cycles;
    vcpu->instructions += slot->instructions;
    vcpu->last_block = slot;
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
