/* Instruction-granular preemption points: see preempt.h. */
#include "preempt.h"
#include "hotpath.h"

typedef int (*uc_emu_stop_fn)(void *uc);
static uc_emu_stop_fn emu_stop;

void sched_preempt_set_emu_stop(uintptr_t uc_emu_stop_address)
{
    emu_stop = (uc_emu_stop_fn)uc_emu_stop_address;
}

void sched_on_instruction(void *uc, uint64_t address, uint32_t size_bytes, void *user_data)
{
    struct sched_preempt *preempt = (struct sched_preempt *)user_data;
    (void)address;
    (void)size_bytes;
    if (!preempt->armed)
        return;
    if (preempt->budget_instructions == 0) {
        /* Stop before this instruction; asked once per run. */
        if (!preempt->reached) {
            preempt->reached = 1;
            preempt->stop_address = address;
            emu_stop(uc);
        }
        return;
    }
    preempt->budget_instructions--;
}

void sched_refund_block(struct hotpath_vcpu *vcpu, uint32_t executed_instructions, uint32_t executed_fixed)
{
    struct hotpath_block_cost *last = vcpu->last_block;
    if (!last)
        return;
    /* In fixed point (hotpath.h), so the fraction of a cycle is refunded too. */
    uint64_t total = (vcpu->cycles << HOTPATH_CYCLE_FRACTION_BITS) + vcpu->cycle_fraction
                     - vcpu->last_charge_fixed + executed_fixed;
    vcpu->cycles = total >> HOTPATH_CYCLE_FRACTION_BITS;
    vcpu->cycle_fraction = (uint32_t)total & ((1u << HOTPATH_CYCLE_FRACTION_BITS) - 1);
    vcpu->instructions = vcpu->instructions - last->instructions + executed_instructions;
    vcpu->last_block = 0;
}

uintptr_t sched_on_instruction_address(void)
{
    return (uintptr_t)&sched_on_instruction;
}
