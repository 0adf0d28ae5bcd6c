/* Instruction-granular preemption points for schedule exploration
 * (emu/sched_policy.py, `emu run --sched random|pct`).
 *
 * The block hook (hotpath.c) can only end a run between translated blocks,
 * and a block holds a whole load/modify/store sequence, so two vCPUs never
 * overlap inside one. Under an exploring policy each vCPU also gets a C
 * UC_HOOK_CODE hook: Unicorn calls it before every instruction and checks for
 * a stop request right after it (measured, unicorn 2.1.4: the instruction the
 * hook stopped at has not run and RIP points at it), so a run can end after
 * any number of instructions. The default policy never installs the hook. */
#pragma once
#include <stdint.h>

struct sched_preempt {
    /* Owned by the scheduler (Python), set before each run. */
    uint64_t budget_instructions;   /* instructions this run may still start */
    uint32_t armed;                 /* 0: the hook does nothing */
    /* Set by the hook when the budget ran out (and it asked Unicorn to stop),
     * cleared by Python before the next run; stop_address is then the
     * address of the instruction it stopped before (RIP, without a register
     * read). */
    uint32_t reached;
    uint64_t stop_address;
};

/* VCpu._refund_unexecuted's arithmetic for a run stopped inside the block
 * the hot path charged in full at entry: take back that block's charge and
 * its instructions, keep those of the executed_instructions that ran
 * (executed_fixed, fixed point), and forget the block (last_block = NULL). */
struct hotpath_vcpu;
void sched_refund_block(struct hotpath_vcpu *vcpu, uint32_t executed_instructions, uint32_t executed_fixed);

void sched_preempt_set_emu_stop(uintptr_t uc_emu_stop_address);
void sched_on_instruction(void *uc, uint64_t address, uint32_t size_bytes, void *user_data);
uintptr_t sched_on_instruction_address(void);
