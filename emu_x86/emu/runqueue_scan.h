/* The default scheduler's per-run scans over the vCPUs' clocks
 * (Machine._run_loop), in C: with 64 vCPUs a run lasts about the IPI
 * latency (the lookahead), and two Python passes over 64 vCPUs per run cost
 * more than the guest code they schedule. C finds the earliest runnable
 * clock and lists the vCPUs that are not runnable (halted, or waiting for
 * acknowledgements); Python looks only at those (their next interrupt is
 * the APIC's, in Python). */
#include <stdint.h>

struct hotpath_vcpu;

/* Over every vCPU but skip_index (-1: none): the smallest clock of a
 * runnable one in *min_cycles and its index in *min_index (the lowest index
 * among equal clocks; -1 when none is runnable), and the indices of those
 * with not_runnable[i] set, in increasing order, in others[] (room for
 * count). Returns how many were listed. */
int runqueue_scan(struct hotpath_vcpu *const *vcpus, const uint8_t *not_runnable, int count, int skip_index,
                  uint64_t *min_cycles, int *min_index, int *others);
