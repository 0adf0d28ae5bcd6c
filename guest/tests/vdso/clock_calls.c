/* The vDSO (kernel/vdso/): glibc finds it through AT_SYSINFO_EHDR and its clock
 * calls make no system call. clock_gettime on the vDSO clocks, gettimeofday,
 * time and clock_getres are answered in user mode (the statistics count no
 * clock_gettime, gettimeofday, time or clock_getres syscall); the CPU-time
 * clocks and invalid ids go to the kernel, as Linux's vDSO falls back. The
 * clocks never go backwards and agree with each other.
 * STATS: syscall_counts.clock_gettime == 2
 * STATS: syscall_counts.gettimeofday == 0
 * STATS: syscall_counts.time == 0
 * STATS: syscall_counts.clock_getres == 0
 * CPUS: 1 2
 * STDOUT: vdso mapped: 1, ELF: 1
 * STDOUT: monotonic never backwards: 1
 * STDOUT: realtime, gettimeofday and time agree: 1
 * STDOUT: TAI after REALTIME: 1
 * STDOUT: resolution monotonic 1 ns, coarse > 1 ns: 1 1
 * STDOUT: cputime: 0, invalid clock: -1 EINVAL
 * STDOUT: getcpu: 0 node 0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/time.h>
#include <time.h>

static long long ns(struct timespec t) { return t.tv_sec * 1000000000LL + t.tv_nsec; }

int main(void)
{
    unsigned long ehdr = getauxval(AT_SYSINFO_EHDR);
    printf("vdso mapped: %d, ELF: %d\n", ehdr != 0, ehdr && !memcmp((void *)ehdr, "\177ELF", 4));
    struct timespec previous, now;
    clock_gettime(CLOCK_MONOTONIC, &previous);
    int ordered = 1;
    for (int i = 0; i < 100000; i++) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (ns(now) < ns(previous))
            ordered = 0;
        previous = now;
    }
    printf("monotonic never backwards: %d\n", ordered);
    struct timespec real, tai;
    struct timeval tv;
    clock_gettime(CLOCK_REALTIME, &real);
    gettimeofday(&tv, NULL);
    time_t seconds = time(NULL);
    clock_gettime(CLOCK_TAI, &tai);
    long long tv_ns = tv.tv_sec * 1000000000LL + tv.tv_usec * 1000LL;
    printf("realtime, gettimeofday and time agree: %d\n",
           tv_ns >= ns(real) / 1000 * 1000 && tv_ns - ns(real) < 1000000000LL && seconds >= real.tv_sec
           && seconds - real.tv_sec <= 1);
    printf("TAI after REALTIME: %d\n", ns(tai) >= ns(real));
    struct timespec res, coarse;
    clock_getres(CLOCK_MONOTONIC, &res);
    clock_getres(CLOCK_MONOTONIC_COARSE, &coarse);
    printf("resolution monotonic 1 ns, coarse > 1 ns: %d %d\n", res.tv_sec == 0 && res.tv_nsec == 1,
           coarse.tv_nsec > 1);
    int cputime = clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);      /* a syscall */
    int invalid = clock_gettime(1234, &now);                            /* a syscall */
    printf("cputime: %d, invalid clock: %d %s\n", cputime, invalid, errno == EINVAL ? "EINVAL" : "?");
    unsigned cpu = 99, node = 99;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(0, &one);
    sched_setaffinity(0, sizeof one, &one);
    getcpu(&cpu, &node);
    printf("getcpu: %u node %u\n", cpu, node);
    return 0;
}
