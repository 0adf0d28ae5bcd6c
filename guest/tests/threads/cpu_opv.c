/* cpu_opv (--cmdline cpu_opv=on): the ABI's error returns, compare semantics,
 * every operation, migration to the requested CPU, and per-CPU counters with
 * rseq as the fast path and cpu_opv as the always-succeeding slow path.
 * Expected output (emu run --cpus 2 or more --cmdline cpu_opv=on):
 *   nr_ops=10
 *   errors ok
 *   compare ok
 *   ops ok
 *   migrated ok
 *   total=16000 threads=4
 * Without cpu_opv=on it prints "cpu_opv: ENOSYS" and exits 3.
 * "measure" as argv[1] prints cycles per increment for the rseq fast path and
 * for cpu_opv on the current CPU and with a migration each call.
 * Build: gcc -static -O2 -pthread
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/rseq.h>
#include <x86intrin.h>

#include "cpu_opv.h"

#define THREADS 4
#define ITERATIONS 4000
#define SLOW_PATH_EVERY 8
#define MAX_CPUS 64

struct slot {
    int64_t count;
    char pad[56];
};
static struct slot counters[MAX_CPUS];
static const int64_t read_only_word = 7;
static int failures;

#define CHECK(cond, ...) do { if (!(cond)) { failures++; printf("FAIL: " __VA_ARGS__); putchar('\n'); } } while (0)

static long expect_error(long result, int error)
{
    return result == -1 && errno == error;
}

static struct cpu_op add_op(void *p, int64_t count, uint32_t len)
{
    struct cpu_op op = {.op = CPU_ADD_OP, .len = len};
    op.u.arithmetic_op.p = (uintptr_t)p;
    op.u.arithmetic_op.count = count;
    return op;
}

static struct cpu_op compare_op(int type, const void *a, const void *b, uint32_t len)
{
    struct cpu_op op = {.op = type, .len = len};
    op.u.compare_op.a = (uintptr_t)a;
    op.u.compare_op.b = (uintptr_t)b;
    return op;
}

static struct cpu_op memcpy_op(void *dst, const void *src, uint32_t len)
{
    struct cpu_op op = {.op = CPU_MEMCPY_OP, .len = len};
    op.u.memcpy_op.dst = (uintptr_t)dst;
    op.u.memcpy_op.src = (uintptr_t)src;
    return op;
}

static struct rseq *my_rseq(void)
{
    return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

static int current_cpu(void)
{
    return __atomic_load_n(&my_rseq()->cpu_id_start, __ATOMIC_RELAXED);
}

/* The fast path: add 1 to this CPU's counter in an rseq critical section.
 * 0 on commit, -1 when the kernel aborted it (preemption, migration, signal). */
static int rseq_increment(void)
{
    struct rseq *rs = my_rseq();
    uint32_t cpu = rs->cpu_id_start;
    __asm__ goto(
        ".pushsection __rseq_cs, \"aw\"\n\t"
        ".balign 32\n\t"
        "3:\n\t"
        ".long 0, 0\n\t"
        ".quad 1f, 2f - 1f, 4f\n\t"
        ".popsection\n\t"
        "leaq 3b(%%rip), %%rax\n\t"
        "movq %%rax, %c[rseq_cs](%[rs])\n\t"
        "1:\n\t"
        "cmpl %[cpu], %c[cpu_id](%[rs])\n\t"
        "jnz 4f\n\t"
        "movq (%[slot]), %%rax\n\t"
        "addq $1, %%rax\n\t"
        "movq %%rax, (%[slot])\n\t"
        "2:\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".long 0x53053053\n\t"
        "4:\n\t"
        "jmp %l[aborted]\n\t"
        ".popsection\n\t"
        :
        : [rs] "r"(rs), [cpu] "r"(cpu), [slot] "r"(&counters[cpu % MAX_CPUS].count),
          [rseq_cs] "i"(__builtin_offsetof(struct rseq, rseq_cs)),
          [cpu_id] "i"(__builtin_offsetof(struct rseq, cpu_id))
        : "rax", "memory", "cc"
        : aborted);
    return 0;
aborted:
    return -1;
}

/* The slow path (the proposal's cpu_op_cmpeqv_storev): on CPU `cpu`, store
 * expected+1 if the counter still holds `expected`. Retries until it commits. */
static int cpu_opv_increment(int cpu)
{
    for (;;) {
        int64_t expected = __atomic_load_n(&counters[cpu].count, __ATOMIC_RELAXED);
        int64_t desired = expected + 1;
        struct cpu_op ops[2] = {
            compare_op(CPU_COMPARE_EQ_OP, &counters[cpu].count, &expected, 8),
            memcpy_op(&counters[cpu].count, &desired, 8),
        };
        long result = cpu_opv(ops, 2, cpu, 0);
        if (result == 0)
            return 0;
        if (result != 1)       /* 1: the compare saw another update first; retry */
            return -1;
    }
}

static void *worker(void *arg)
{
    long *slow_calls = arg;
    for (int done = 0; done < ITERATIONS; done++) {
        if (done % SLOW_PATH_EVERY != 0 && rseq_increment() == 0)
            continue;
        if (cpu_opv_increment(current_cpu()) != 0)
            __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
        (*slow_calls)++;
    }
    return NULL;
}

static void check_errors(void)
{
    int64_t word = 0;
    struct cpu_op ops[CPU_OP_VEC_LEN_MAX + 1];
    for (int i = 0; i <= CPU_OP_VEC_LEN_MAX; i++)
        ops[i] = add_op(&word, 1, 8);
    int cpu = current_cpu();
    CHECK(expect_error(cpu_opv(ops, CPU_OP_VEC_LEN_MAX + 1, cpu, 0), EINVAL), "17 ops");
    CHECK(expect_error(cpu_opv(ops, -1, cpu, 0), EINVAL), "count -1");
    CHECK(expect_error(cpu_opv(ops, 1, cpu, 2), EINVAL), "unknown flag");
    CHECK(expect_error(cpu_opv(ops, 1, -1, 0), EINVAL), "cpu -1");
    CHECK(expect_error(cpu_opv(ops, 1, MAX_CPUS - 1, 0), EINVAL), "cpu beyond the machine");
    CHECK(expect_error(cpu_opv((struct cpu_op *)16, 1, cpu, 0), EFAULT), "unreadable vector");

    struct cpu_op bad = add_op(&word, 1, 3);
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EINVAL), "add of 3 bytes");
    bad = (struct cpu_op){.op = 42, .len = 8};
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EINVAL), "unknown op");
    static char big_a[2 * 4096], big_b[2 * 4096];
    bad = memcpy_op(big_a, big_b, CPU_OP_DATA_LEN_MAX + 1);
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EINVAL), "memcpy over 4096 bytes");
    struct cpu_op two_pages[2] = {memcpy_op(big_a, big_b, 4096), memcpy_op(big_a + 4096, big_b + 4096, 4096)};
    CHECK(expect_error(cpu_opv(two_pages, 2, cpu, 0), EINVAL), "vector over %d bytes", CPU_OP_VEC_DATA_LEN_MAX);
    bad = (struct cpu_op){.op = CPU_LSHIFT_OP, .len = 8};
    bad.u.shift_op.p = (uintptr_t)&word;
    bad.u.shift_op.bits = 64;
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EINVAL), "shift by 64");

    bad = add_op((void *)16, 1, 8);
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EFAULT), "add to an unmapped address");
    bad.u.arithmetic_op.expect_fault_p = 1;
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EAGAIN), "expected fault gives EAGAIN");
    bad = add_op((void *)&read_only_word, 1, 8);
    CHECK(expect_error(cpu_opv(&bad, 1, cpu, 0), EFAULT), "add to a read-only page");
    CHECK(read_only_word == 7, "read-only word changed");
    CHECK(word == 0, "a failed vector ran an op");

    /* A CPU outside the caller's affinity: EINVAL, and the caller stays put. */
    cpu_set_t only_here, all;
    CPU_ZERO(&only_here);
    CPU_SET(cpu, &only_here);
    sched_getaffinity(0, sizeof all, &all);
    sched_setaffinity(0, sizeof only_here, &only_here);
    struct cpu_op add = add_op(&word, 1, 8);
    CHECK(expect_error(cpu_opv(&add, 1, cpu == 0 ? 1 : 0, 0), EINVAL), "cpu outside the affinity");
    CHECK(current_cpu() == cpu, "moved although refused");
    sched_setaffinity(0, sizeof all, &all);
    if (!failures)
        puts("errors ok");
}

static void check_compare(void)
{
    int64_t x = 5, same = 5, other = 6, z = 0;
    int cpu = current_cpu();
    struct cpu_op eq[3] = {
        compare_op(CPU_COMPARE_EQ_OP, &x, &same, 8),
        compare_op(CPU_COMPARE_EQ_OP, &x, &other, 8),
        add_op(&z, 1, 8),
    };
    long result = cpu_opv(eq, 3, cpu, 0);
    CHECK(result == 2 && z == 0, "EQ mismatch at op 2 returned %ld, z=%lld", result, (long long)z);
    struct cpu_op ne[3] = {
        compare_op(CPU_COMPARE_NE_OP, &x, &other, 8),
        compare_op(CPU_COMPARE_NE_OP, &x, &same, 8),
        add_op(&z, 1, 8),
    };
    result = cpu_opv(ne, 3, cpu, 0);
    CHECK(result == 2 && z == 0, "NE equality at op 2 returned %ld, z=%lld", result, (long long)z);
    char text_a[100], text_b[100];
    memset(text_a, 'a', sizeof text_a);
    memcpy(text_b, text_a, sizeof text_b);
    text_b[99] = 'b';
    struct cpu_op bytes[1] = {compare_op(CPU_COMPARE_EQ_OP, text_a, text_b, 100)};
    result = cpu_opv(bytes, 1, cpu, 0);
    CHECK(result == 1, "100-byte compare returned %ld", result);
    bytes[0].len = 99;
    result = cpu_opv(bytes, 1, cpu, 0);
    CHECK(result == 0, "99 equal bytes returned %ld", result);
    if (!failures)
        puts("compare ok");
}

static void check_ops(void)
{
    static char source[300], destination[300];
    for (int i = 0; i < 300; i++)
        source[i] = (char)i;
    uint8_t byte = 250;
    uint16_t half = 0x00F0;
    uint32_t word32 = 0x0F0F0F0F;
    uint64_t word64 = 1, shifted = 0x80, expected_zero = 0;
    struct cpu_op ops[9] = {
        compare_op(CPU_COMPARE_EQ_OP, &expected_zero, &expected_zero, 8),
        memcpy_op(destination + 1, source, 299),           /* crosses no page but is unaligned */
        add_op(&byte, 10, 1),                               /* wraps at 8 bits: 4 */
        {.op = CPU_OR_OP, .len = 2}, {.op = CPU_AND_OP, .len = 4}, {.op = CPU_XOR_OP, .len = 8},
        {.op = CPU_LSHIFT_OP, .len = 8}, {.op = CPU_RSHIFT_OP, .len = 8}, {.op = CPU_MB_OP},
    };
    ops[3].u.bitwise_op.p = (uintptr_t)&half, ops[3].u.bitwise_op.mask = 0x0F0F;
    ops[4].u.bitwise_op.p = (uintptr_t)&word32, ops[4].u.bitwise_op.mask = 0x00FF00FF;
    ops[5].u.bitwise_op.p = (uintptr_t)&word64, ops[5].u.bitwise_op.mask = 3;
    ops[6].u.shift_op.p = (uintptr_t)&shifted, ops[6].u.shift_op.bits = 4;
    ops[7].u.shift_op.p = (uintptr_t)&shifted, ops[7].u.shift_op.bits = 8;
    long result = cpu_opv(ops, 9, current_cpu(), 0);
    CHECK(result == 0, "9-op vector returned %ld", result);
    CHECK(memcmp(destination + 1, source, 299) == 0 && destination[0] == 0, "memcpy");
    CHECK(byte == 4, "8-bit add gave %u", byte);
    CHECK(half == 0x0FFF, "or gave %#x", half);
    CHECK(word32 == 0x000F000F, "and gave %#x", word32);
    CHECK(word64 == 2, "xor gave %llu", (unsigned long long)word64);
    CHECK(shifted == 0x8, "shifts gave %#llx", (unsigned long long)shifted);
    CHECK(cpu_opv(ops, 0, current_cpu(), 0) == 0, "empty vector");
    if (!failures)
        puts("ops ok");
}

static int spinning, stop_spinning;

static void *spin(void *arg)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(*(int *)arg, &set);
    sched_setaffinity(0, sizeof set, &set);
    __atomic_store_n(&spinning, 1, __ATOMIC_RELEASE);
    while (!__atomic_load_n(&stop_spinning, __ATOMIC_ACQUIRE))
        ;
    return NULL;
}

static void check_migration(int cpus)
{
    for (int step = 0; step < 2 * cpus; step++) {
        int target = (current_cpu() + 1) % cpus;
        int64_t before = counters[target].count;
        struct cpu_op add = add_op(&counters[target].count, 1, 8);
        long result = cpu_opv(&add, 1, target, 0);
        unsigned aux;
        __rdtscp(&aux);
        CHECK(result == 0 && counters[target].count == before + 1, "add on cpu %d returned %ld", target, result);
        CHECK(current_cpu() == target && sched_getcpu() == target && (int)aux == target,
              "after cpu_opv on %d the caller runs on %d", target, (int)aux);
        counters[target].count--;
    }
    /* A busy target: the caller is pushed ahead of a spinning thread pinned there. */
    int target = (current_cpu() + 1) % cpus;
    pthread_t spinner;
    pthread_create(&spinner, NULL, spin, &target);
    while (!__atomic_load_n(&spinning, __ATOMIC_ACQUIRE))
        ;
    struct cpu_op add = add_op(&counters[target].count, 1, 8);
    long result = cpu_opv(&add, 1, target, 0);
    CHECK(result == 0 && current_cpu() == target, "cpu_opv onto busy cpu %d: %ld, now on %d", target, result,
          current_cpu());
    counters[target].count--;
    __atomic_store_n(&stop_spinning, 1, __ATOMIC_RELEASE);
    pthread_join(spinner, NULL);
    if (!failures)
        puts("migrated ok");
}

static void measure(void)
{
    enum { N = 200 };
    int cpu = current_cpu();
    uint64_t start = __rdtsc();
    for (int i = 0; i < N; i++)
        while (rseq_increment() != 0)
            ;
    uint64_t rseq_cycles = __rdtsc() - start;
    start = __rdtsc();
    for (int i = 0; i < N; i++)
        cpu_opv_increment(cpu);
    uint64_t local_cycles = __rdtsc() - start;
    start = __rdtsc();
    for (int i = 0; i < N; i++)
        cpu_opv_increment(i % 2 == 0 ? (cpu + 1) % 2 : cpu);
    uint64_t migrating_cycles = __rdtsc() - start;
    printf("cycles per increment: rseq=%llu cpu_opv_local=%llu cpu_opv_migrating=%llu\n",
           (unsigned long long)(rseq_cycles / N), (unsigned long long)(local_cycles / N),
           (unsigned long long)(migrating_cycles / N));
}

int main(int argc, char **argv)
{
    if (cpu_opv(NULL, 0, 0, CPU_OP_NR_FLAG) < 0 && errno == ENOSYS) {
        puts("cpu_opv: ENOSYS");
        return 3;
    }
    if (__rseq_size == 0) {
        puts("rseq not registered");
        return 1;
    }
    printf("nr_ops=%ld\n", cpu_opv(NULL, 0, 0, CPU_OP_NR_FLAG));
    if (argc > 1 && strcmp(argv[1], "measure") == 0) {
        measure();
        return 0;
    }
    cpu_set_t set;
    sched_getaffinity(0, sizeof set, &set);
    int cpus = CPU_COUNT(&set);
    check_errors();
    check_compare();
    check_ops();
    check_migration(cpus);
    memset(counters, 0, sizeof counters);
    pthread_t threads[THREADS];
    long slow_calls[THREADS] = {0};
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, &slow_calls[i]);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    int64_t total = 0;
    for (int i = 0; i < MAX_CPUS; i++)
        total += counters[i].count;
    long slow_total = 0;
    for (int i = 0; i < THREADS; i++)
        slow_total += slow_calls[i];
    CHECK(slow_total >= THREADS * ITERATIONS / SLOW_PATH_EVERY, "slow path used %ld times", slow_total);
    printf("total=%lld threads=%d\n", (long long)total, THREADS);
    return failures ? 1 : 0;
}
