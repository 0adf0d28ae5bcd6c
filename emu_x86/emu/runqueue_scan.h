/* The default scheduler's per-run work over the vCPUs (Machine._run_loop),
 * in C: with 64 vCPUs a run lasts about the IPI latency (the lookahead), and
 * Python passes over 64 vCPUs per run cost more than the guest code they
 * schedule.
 *
 * sched_pick and sched_bounds are the Python scheduling step's passes over
 * the vCPUs (Machine._next_vcpu, the other vCPUs' terms of a deadline).
 *
 * sched_run takes whole scheduling steps itself while none needs the kernel:
 * it picks the vCPU as Machine._next_vcpu does (each APIC publishes its next
 * event in an array: apic.py LocalApic._publish), computes the deadline as
 * _run_loop does, arms the fast system calls as _arm_fast_syscalls does,
 * and runs the vCPU (VCpu.run's hotpath_prepare_run and emu_start). It
 * returns to Python as soon as a step needs a decision or a run ended in a
 * way other than at its deadline with nothing for Python to do, so that the
 * schedule -- which vCPU runs when, each deadline -- is the one the Python
 * loop makes, and the kernel's state is never looked at from C. */
#include <stdint.h>

struct hotpath_vcpu;
struct amx_fastpath;

/* A published APIC next event or max_cycles meaning "none" (apic.py NO_EVENT). */
#define SCHED_NO_EVENT 0xFFFFFFFFFFFFFFFFull
/* arm_count[i] until Python has asked the kernel (Kernel.arm_fast_syscalls). */
#define SCHED_ARM_UNKNOWN 0xFF

/* sched_run's outcomes. */
#define SCHED_RUN_PYTHON 0   /* the next step needs Python (an interrupt, a wake-up, a limit, ...) */
#define SCHED_RUN_FINISH 1   /* vCPU `vcpu` ran from `rip` and emu_start returned `status`; the
                              * end of that run is Python's (VCpu.finish_run): a trap, a hook, fast calls */
#define SCHED_RUN_ARM 2      /* vCPU `vcpu` runs next and may answer system calls in C: Python
                              * fills arm_count[vcpu] from the kernel, then calls again */
#define SCHED_RUN_YIELD 3    /* max_runs runs done: Python looks at signals, then calls again */
#define SCHED_RUN_FAILED 4   /* hotpath_prepare_run failed for `vcpu` with uc_err `status` */

struct sched_machine {
    /* Per vCPU, kept by Python. */
    struct hotpath_vcpu *const *clocks;
    const uint8_t *not_runnable;        /* !VCpu.runnable (VCpu.update_runnable_flag) */
    const uint8_t *waiting_for_acks;    /* VCpu.waiting_for_acks is not empty */
    const uint64_t *waiting_targets;    /* VCpu.waiting_for_acks as a mask of CPU numbers (MAX_CPUS 64) */
    const uint64_t *next_event;         /* LocalApic.next_event_cycles(), clamped; SCHED_NO_EVENT: none */
    struct amx_fastpath *const *amx;    /* VCpu._amx_fast */
    const uint8_t *amx_enabled;         /* VCpu.amx_fast_path */
    const uint8_t *python_next;         /* the next run starts in Python (VCpu._untranslatable_at) */
    uint8_t *arm_count;                 /* the kernel's fast-call count for the vCPU's task, or
                                         * SCHED_ARM_UNKNOWN; Python resets them after any kernel work */
    /* The machine's constants. */
    int count;
    int rip_register;
    uint32_t fast_syscalls;             /* the kernel arms fast system calls (Machine._run_loop) */
    uint32_t max_runs;
    uint64_t quantum_cycles;
    uint64_t lookahead_cycles;
    uint64_t max_cycles;                /* SCHED_NO_EVENT: none */
    uint64_t syscall_cycles;
    uint64_t end_address;               /* emu_start's until (vcpu.py _END_ADDRESS) */
    /* Results. */
    int vcpu;
    int status;
    uint64_t rip;
    uint64_t runs;                      /* runs taken here in all (diagnostics; not in stats) */
    /* sched_pick's and sched_bounds's results. */
    uint64_t pick_start;
    int pick_runnable;
    int has_slowest;
    uint64_t slowest;
    uint64_t wake;                      /* SCHED_NO_EVENT: none */
};

int sched_run(struct sched_machine *machine);

/* Machine._next_vcpu for the Python step: the vCPU whose next activity is
 * earliest -- a runnable one's clock, a not-runnable one's next event (no
 * earlier than its clock) -- idle wake-ups first at equal times, then CPU
 * order; -1 when there is none. pick_start: that time; pick_runnable. */
int sched_pick(struct sched_machine *machine);

/* The other vCPUs' terms of the deadline of a run of `skip` (Machine._run_loop):
 * slowest (has_slowest) -- the smallest clock of another runnable vCPU or
 * resume bound of another waiting for acknowledgements -- and wake, the
 * earliest next event of another vCPU that is not runnable. */
void sched_bounds(struct sched_machine *machine, int skip);
