/* Instruction-granular preemption points: see preempt.h. */
#include "preempt.h"

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
            emu_stop(uc);
        }
        return;
    }
    preempt->budget_instructions--;
}

uintptr_t sched_on_instruction_address(void)
{
    return (uintptr_t)&sched_on_instruction;
}
