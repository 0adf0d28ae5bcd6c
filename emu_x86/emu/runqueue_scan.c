/* See runqueue_scan.h. Compiled into emu.timing._hotpath (cffi). */
#include "hotpath.h"
#include "amx_fast.h"
#include "registers_fast.h"
#include "runqueue_scan.h"

static inline uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static inline uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

/* One pass over the vCPUs, as Machine._next_vcpu: the runnable vCPU with
 * the smallest (clock, CPU), the smallest clock among the other runnable
 * ones, and over the vCPUs that are not runnable the earliest next event
 * (wake), the earliest max(event, clock) (an idle vCPU that would go first)
 * and how many wait for acknowledgements. */
struct sched_scan {
    int best, second, idle, waiting;
    uint64_t best_cycles, second_cycles, idle_cycles, wake;
};

static void sched_scan(const struct sched_machine *m, struct sched_scan *scan)
{
    *scan = (struct sched_scan){.best = -1, .second = -1, .idle = -1, .wake = SCHED_NO_EVENT};
    for (int i = 0; i < m->count; i++) {
        uint64_t cycles = m->clocks[i]->cycles;
        if (!m->not_runnable[i]) {
            if (scan->best < 0 || cycles < scan->best_cycles) {
                scan->second = scan->best;
                scan->second_cycles = scan->best_cycles;
                scan->best = i;
                scan->best_cycles = cycles;
            } else if (scan->second < 0 || cycles < scan->second_cycles) {
                scan->second = i;
                scan->second_cycles = cycles;
            }
            continue;
        }
        scan->waiting += m->waiting_for_acks[i];
        uint64_t when = m->next_event[i];
        if (when == SCHED_NO_EVENT)
            continue;
        scan->wake = min_u64(scan->wake, when);
        uint64_t at = max_u64(when, cycles);
        if (scan->idle < 0 || at < scan->idle_cycles) {
            scan->idle = i;
            scan->idle_cycles = at;
        }
    }
}

/* Machine._resume_bound of vCPU ``i``, waiting for acknowledgements: no
 * earlier than its slowest target's clock, where the last one happens. */
static uint64_t resume_bound(const struct sched_machine *m, int i)
{
    uint64_t bound = m->clocks[i]->cycles;
    for (uint64_t targets = m->waiting_targets[i]; targets; targets &= targets - 1)
        bound = max_u64(bound, m->clocks[__builtin_ctzll(targets)]->cycles);
    return bound;
}

/* One scheduling step of Machine._run_loop under the default policy, or the
 * reason it needs Python: SCHED_RUN_PYTHON before anything changed, else
 * after the run. */
static int sched_step(struct sched_machine *m)
{
    struct sched_scan scan;
    sched_scan(m, &scan);
    int best = scan.best, idle = scan.idle, waiting = scan.waiting;
    uint64_t best_cycles = scan.best_cycles, idle_cycles = scan.idle_cycles, wake = scan.wake;
    /* Python's cases: nothing runnable; an idle vCPU's wake-up first (it wins
     * ties with a runnable clock); the cycle limit; a run Python must start;
     * an interrupt due on the chosen vCPU (_deliver_interrupts). */
    if (best < 0 || (idle >= 0 && idle_cycles <= best_cycles))
        return SCHED_RUN_PYTHON;
    if (m->max_cycles != SCHED_NO_EVENT && best_cycles >= m->max_cycles)
        return SCHED_RUN_PYTHON;
    uint64_t next_interrupt = m->next_event[best];
    if (m->python_next[best] || (next_interrupt != SCHED_NO_EVENT && next_interrupt <= best_cycles))
        return SCHED_RUN_PYTHON;

    /* The slowest other vCPU: the smallest other runnable clock, and for one
     * waiting for acknowledgements its resume bound -- no earlier than its
     * slowest target's clock, where the last acknowledgement happens
     * (Machine._resume_bound). */
    int has_slowest = scan.second >= 0;
    uint64_t slowest = scan.second_cycles;
    for (int i = 0; waiting && i < m->count; i++) {
        if (!m->not_runnable[i] || !m->waiting_for_acks[i])
            continue;
        waiting--;
        uint64_t bound = resume_bound(m, i);
        if (!has_slowest || bound < slowest) {
            slowest = bound;
            has_slowest = 1;
        }
    }

    /* _run_loop's deadline. */
    struct hotpath_vcpu *vcpu = m->clocks[best];
    uint64_t now = best_cycles;
    uint64_t deadline = now + m->quantum_cycles;
    if (next_interrupt != SCHED_NO_EVENT)
        deadline = min_u64(deadline, max_u64(next_interrupt, now + 1));
    if (has_slowest)
        deadline = min_u64(deadline, slowest + m->lookahead_cycles);
    if (wake != SCHED_NO_EVENT)
        deadline = min_u64(deadline, max_u64(wake, now + 1));
    if (m->max_cycles != SCHED_NO_EVENT)
        deadline = min_u64(deadline, m->max_cycles);

    /* Machine._arm_fast_syscalls. */
    if (m->fast_syscalls) {
        uint64_t limit = SCHED_NO_EVENT, bound = SCHED_NO_EVENT;
        if (has_slowest) {
            limit = slowest;
            bound = slowest + m->lookahead_cycles;
        }
        uint64_t terms[3] = {wake, next_interrupt, m->max_cycles};
        for (int t = 0; t < 3; t++) {
            if (terms[t] != SCHED_NO_EVENT) {
                limit = min_u64(limit, terms[t]);
                bound = min_u64(bound, terms[t]);
            }
        }
        if (limit > now + m->syscall_cycles) {
            uint8_t armed = m->arm_count[best];
            if (armed == SCHED_ARM_UNKNOWN) {
                m->vcpu = best;
                return SCHED_RUN_ARM;
            }
            if (armed) {
                vcpu->fast_syscall_count = armed;
                vcpu->fast_syscall_limit_cycles = limit;
                vcpu->fast_syscall_bound_cycles = bound;
                vcpu->fast_syscall_quantum_cycles = m->quantum_cycles;
            }
        }
    }

    /* VCpu.run and VCpu._start_unicorn (tracing is off, the policy the default). */
    uint64_t rip;
    m->vcpu = best;
    int status = hotpath_prepare_run(vcpu, max_u64(deadline, now + 1), m->rip_register, &rip);
    if (status != 0) {
        m->status = status;
        return SCHED_RUN_FAILED;     /* never HOTPATH_RUN_DEADLINE: the deadline is past the clock */
    }
    m->amx[best]->enabled = m->amx_enabled[best];
    uint64_t python_calls = vcpu->python_calls;
    status = hotpath_emu_start_guarded(vcpu->uc, rip, m->end_address);
    m->runs++;
    /* At its deadline, with no Python hook, trap or fast call on the way:
     * VCpu.run's ending is handle_deadline, which does nothing (the kernel:
     * handle_deadline_noop), and _run_loop's is to disarm the fast calls. */
    if (status != 0 || vcpu->syscall_pending || !vcpu->deadline_reached || vcpu->python_calls != python_calls
        || (vcpu->fast_syscall_count && vcpu->fast_syscall_hits_total)) {
        m->status = status;
        m->rip = rip;
        return SCHED_RUN_FINISH;
    }
    vcpu->fast_syscall_count = 0;
    return -1;
}

int sched_run(struct sched_machine *m)
{
    for (uint32_t runs = 0; runs < m->max_runs; runs++) {
        int outcome = sched_step(m);
        if (outcome >= 0)
            return outcome;
    }
    return SCHED_RUN_YIELD;
}

int sched_pick(struct sched_machine *m)
{
    struct sched_scan scan;
    sched_scan(m, &scan);
    int best = scan.best, idle = scan.idle;
    uint64_t best_cycles = scan.best_cycles, idle_cycles = scan.idle_cycles;
    /* (time, runnable, CPU): an idle vCPU's wake-up wins a tie with a clock. */
    if (idle >= 0 && (best < 0 || idle_cycles <= best_cycles)) {
        m->pick_start = idle_cycles;
        m->pick_runnable = 0;
        return idle;
    }
    m->pick_start = best_cycles;
    m->pick_runnable = 1;
    return best;
}

void sched_bounds(struct sched_machine *m, int skip)
{
    int has_slowest = 0;
    uint64_t slowest = 0, wake = SCHED_NO_EVENT;
    for (int i = 0; i < m->count; i++) {
        if (i == skip)
            continue;
        uint64_t cycles = m->clocks[i]->cycles;
        if (!m->not_runnable[i]) {
            if (!has_slowest || cycles < slowest) {
                slowest = cycles;
                has_slowest = 1;
            }
            continue;
        }
        if (m->waiting_for_acks[i]) {
            uint64_t bound = resume_bound(m, i);
            if (!has_slowest || bound < slowest) {
                slowest = bound;
                has_slowest = 1;
            }
        }
        wake = min_u64(wake, m->next_event[i]);
    }
    m->has_slowest = has_slowest;
    m->slowest = slowest;
    m->wake = wake;
}
