/* rseq ABI (kernel/rseq.c, fs/binfmt_elf.c): AT_RSEQ_FEATURE_SIZE and
 * AT_RSEQ_ALIGN in the auxiliary vector, the area glibc registered (cpu_id,
 * node_id, mm_cid), the errors of a second registration, unregistration
 * (cpu_id back to RSEQ_CPU_ID_UNINITIALIZED), the length and alignment rules,
 * and mm_cid staying unique among running threads and below
 * min(threads, CPUs).
 * CPUS: 1 2 4
 * STDOUT: AT_RSEQ_FEATURE_SIZE 28, AT_RSEQ_ALIGN 32
 * STDOUT: glibc's __rseq_size 20; cpu_id matches getcpu: yes, node_id 0, mm_cid 0
 * STDOUT: again: EBUSY, other signature: EPERM, other area: EINVAL, other length: EINVAL
 * STDOUT: unregister: other length EINVAL, other signature EPERM, extra flag EINVAL, other area EINVAL, right 0
 * STDOUT: after unregistering: cpu_id_start 0 cpu_id -1
 * STDOUT: register: len 31 EINVAL, len 32 at 16-byte alignment EINVAL, flags 2 EINVAL, bad address EFAULT
 * STDOUT: len 64 at 16-byte alignment EINVAL, len 28 EINVAL (cpu_id set yes), len 64 with a stale rseq_cs 0 (cleared yes)
 * STDOUT: glibc's area again: 0
 * STDOUT: mm_cid below min(threads, CPUs): yes
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/rseq.h>
#include <sys/syscall.h>
#include <unistd.h>

#define SIG 0x53053053
#define THREADS 3

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case EBUSY: return "EBUSY";
    case EFAULT: return "EFAULT";
    default: return strerror(errno);
    }
}

static long sys_rseq(void *area, uint32_t len, int flags, uint32_t sig)
{
    return syscall(SYS_rseq, area, len, flags, sig);
}

/* struct rseq of Linux 6.3+ (the host's headers may predate node_id and mm_cid). */
struct rseq_abi {
    uint32_t cpu_id_start;
    uint32_t cpu_id;
    uint64_t rseq_cs;
    uint32_t flags;
    uint32_t node_id;
    uint32_t mm_cid;
} __attribute__((aligned(32)));

static struct rseq_abi *my_rseq(void)
{
    return (struct rseq_abi *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static _Alignas(64) char spare[256];
static atomic_int running, bad_cid, max_cid;

static void *spin(void *arg)
{
    (void)arg;
    atomic_fetch_add(&running, 1);
    for (int i = 0; i < 300; i++) {
        int cid = my_rseq()->mm_cid;
        int ncpu = sysconf(_SC_NPROCESSORS_ONLN);
        int limit = ncpu < THREADS + 1 ? ncpu : THREADS + 1;
        if (cid < 0 || cid >= limit)
            atomic_store(&bad_cid, 1);
        int seen = atomic_load(&max_cid);
        if (cid > seen)
            atomic_compare_exchange_strong(&max_cid, &seen, cid);
        sched_yield();
    }
    return NULL;
}

int main(void)
{
    printf("AT_RSEQ_FEATURE_SIZE %lu, AT_RSEQ_ALIGN %lu\n", getauxval(27), getauxval(28));
    struct rseq_abi *area = my_rseq();
    /* glibc registers 32 bytes (the original size) and reports the feature size it uses in __rseq_size. */
    const uint32_t len = 32;
    printf("glibc's __rseq_size %u; cpu_id matches getcpu: %s, node_id %u, mm_cid %u\n", __rseq_size,
           (int)area->cpu_id == sched_getcpu() ? "yes" : "no", area->node_id, area->mm_cid);
    printf("again: %s, ", err(sys_rseq(area, len, 0, SIG)));
    printf("other signature: %s, ", err(sys_rseq(area, len, 0, SIG + 1)));
    printf("other area: %s, ", err(sys_rseq(spare, 32, 0, SIG)));
    printf("other length: %s\n", err(sys_rseq(area, 64, 0, SIG)));
    printf("unregister: other length %s, other signature %s, extra flag %s, other area %s, ",
           err(sys_rseq(area, 64, RSEQ_FLAG_UNREGISTER, SIG)), err(sys_rseq(area, len, RSEQ_FLAG_UNREGISTER, SIG + 1)),
           err(sys_rseq(area, len, RSEQ_FLAG_UNREGISTER | 2, SIG)),
           err(sys_rseq(spare, len, RSEQ_FLAG_UNREGISTER, SIG)));
    printf("right %s\n", err(sys_rseq(area, len, RSEQ_FLAG_UNREGISTER, SIG)));
    printf("after unregistering: cpu_id_start %u cpu_id %d\n", area->cpu_id_start, (int)area->cpu_id);
    printf("register: len 31 %s, len 32 at 16-byte alignment %s, flags 2 %s, bad address %s\n",
           err(sys_rseq(spare, 31, 0, SIG)), err(sys_rseq(spare + 16, 32, 0, SIG)), err(sys_rseq(spare, 32, 2, SIG)),
           err(sys_rseq((void *)-4096L, 32, 0, SIG)));
    printf("len 64 at 16-byte alignment %s, ", err(sys_rseq(spare + 16, 64, 0, SIG)));
    long r = sys_rseq(spare + 32, 28, 0, SIG);
    printf("len 28 %s (cpu_id set %s), ", err(r), ((struct rseq_abi *)(spare + 32))->cpu_id < 4096 ? "yes" : "no");
    sys_rseq(spare + 32, 28, RSEQ_FLAG_UNREGISTER, SIG);
    ((struct rseq_abi *)(spare + 64))->rseq_cs = 0x1234;
    r = sys_rseq(spare + 64, 64, 0, SIG);
    printf("len 64 with a stale rseq_cs %s (cleared %s)\n", err(r), ((struct rseq_abi *)(spare + 64))->rseq_cs == 0 ? "yes" : "no");
    sys_rseq(spare + 64, 64, RSEQ_FLAG_UNREGISTER, SIG);
    printf("glibc's area again: %s\n", err(sys_rseq(area, len, 0, SIG)));

    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, spin, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    printf("mm_cid below min(threads, CPUs): %s\n", atomic_load(&bad_cid) ? "no" : "yes");
    return 0;
}
