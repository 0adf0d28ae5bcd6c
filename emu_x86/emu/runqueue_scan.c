/* See runqueue_scan.h. Compiled into emu.timing._hotpath (cffi). */
#include "hotpath.h"
#include "runqueue_scan.h"

int runqueue_scan(struct hotpath_vcpu *const *vcpus, const uint8_t *not_runnable, int count, int skip_index,
                  uint64_t *min_cycles, int *min_index, int *others)
{
    int best = -1, listed = 0;
    uint64_t best_cycles = 0;

    for (int i = 0; i < count; i++) {
        if (i == skip_index)
            continue;
        if (not_runnable[i]) {
            others[listed++] = i;
            continue;
        }
        /* Strictly earlier only: among equal clocks the lowest index wins,
         * as Machine._next_vcpu breaks ties by CPU number. */
        if (best < 0 || vcpus[i]->cycles < best_cycles) {
            best = i;
            best_cycles = vcpus[i]->cycles;
        }
    }
    *min_cycles = best_cycles;
    *min_index = best;
    return listed;
}
