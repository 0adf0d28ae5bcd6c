/* sched_setaffinity moves the calling thread; sched_getcpu (glibc reads the
 * rseq area), getcpu(2) and RDTSCP's IA32_TSC_AUX agree on the new CPU.
 * Expected output with 4 CPUs: "cpu 3 3 3, cpu 1 1 1, cpu 2 2 2, cpu 0 0 0"
 */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

int main(void)
{
    static const int order[4] = {3, 1, 2, 0};
    for (int i = 0; i < 4; i++) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(order[i], &set);
        if (sched_setaffinity(0, sizeof set, &set) != 0)
            return 1;
        unsigned cpu = 99, node = 99, aux = 99;
        syscall(SYS_getcpu, &cpu, &node, NULL);
        __rdtscp(&aux);
        printf("cpu %d %u %u%s", sched_getcpu(), cpu, aux, i < 3 ? ", " : "\n");
    }
    return 0;
}
