/* make calibrate's microbenchmarks (bench/calibrate/__main__.py).
 *
 * Usage: kernels NAME N [WORKING_SET_BYTES [REPEATS]]. Sets NAME up, runs
 * its loop once untimed (warm-up: caches, predictor, page faults), then N and
 * 2N iterations, each timed with clock_gettime(CLOCK_MONOTONIC), REPEATS
 * times (default 1), and prints "ns_N ns_2N", each the least seen (on a
 * shared host the least is the run nobody preempted). The difference is N iterations with set-up, warm-up and the
 * clock's own cost cancelled; the driver turns it into cycles per iteration
 * with the host's clock (measured by dep_add) or the profile's frequency.
 * Every loop is inline assembly so that the host and the emulator run the
 * same instructions whatever the compiler does.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift_state = 88172645463325252ull;
static uint64_t xorshift(void)
{
    uint64_t x = xorshift_state;
    x ^= x << 13; x ^= x >> 7; x ^= x << 17;
    return xorshift_state = x;
}

static void *region;            /* working set, data or pointer ring */
static size_t region_bytes;
static uint8_t *pattern;        /* branch outcomes */
static long sink;

/* 4 KiB pages on both sides: the emulator's kernel has no transparent huge
 * pages, so the host must not use them either. */
static void *alloc_region(size_t bytes)
{
    void *p = mmap(0, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) { perror("mmap"); exit(1); }
    madvise(p, bytes, MADV_NOHUGEPAGE);
    return p;
}

/* A random cyclic permutation of the region's 64-byte lines: each line's
 * first word points at the next line of the cycle (a latency-bound chase). */
static void setup_chase(size_t bytes)
{
    size_t lines = bytes / 64;
    region = alloc_region(bytes);
    region_bytes = bytes;
    uint32_t *order = malloc(lines * sizeof *order);
    for (size_t i = 0; i < lines; i++)
        order[i] = (uint32_t)i;
    for (size_t i = lines - 1; i > 0; i--) {
        size_t j = xorshift() % (i + 1);
        uint32_t t = order[i]; order[i] = order[j]; order[j] = t;
    }
    char *base = region;
    for (size_t i = 0; i < lines; i++)
        *(void **)(base + (size_t)order[i] * 64) = base + (size_t)order[(i + 1) % lines] * 64;
    free(order);
}

static void *chase_at;
static void run_chase(long n)
{
    void *p = chase_at;
    /* 4 dependent loads per iteration. */
    __asm__ volatile("1: mov (%0), %0\n mov (%0), %0\n mov (%0), %0\n mov (%0), %0\n dec %1\n jnz 1b"
                     : "+r"(p), "+r"(n) :: "memory");
    chase_at = p;
}

static void dep_add(long n)
{
    long a = 0;
    __asm__ volatile("1: add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n"
                     " add $1, %0\n add $1, %0\n add $1, %0\n add $1, %0\n dec %1\n jnz 1b"
                     : "+r"(a), "+r"(n));
    sink += a;
}

static void indep_add(long n)
{
    __asm__ volatile("1: add $1, %%rax\n add $1, %%rbx\n add $1, %%rdx\n add $1, %%rsi\n"
                     " add $1, %%rdi\n add $1, %%r8\n add $1, %%r9\n add $1, %%r10\n dec %0\n jnz 1b"
                     : "+r"(n) :: "rax", "rbx", "rdx", "rsi", "rdi", "r8", "r9", "r10");
}

static void dep_imul(long n)
{
    long a = 3;
    __asm__ volatile("1: imul %0, %0\n imul %0, %0\n imul %0, %0\n imul %0, %0\n dec %1\n jnz 1b"
                     : "+r"(a), "+r"(n));
    sink += a;
}

static void indep_imul(long n)
{
    __asm__ volatile("1: imul %%rax, %%rax\n imul %%rbx, %%rbx\n imul %%rdx, %%rdx\n imul %%rsi, %%rsi\n"
                     " imul %%rdi, %%rdi\n imul %%r8, %%r8\n dec %0\n jnz 1b"
                     : "+r"(n) :: "rax", "rbx", "rdx", "rsi", "rdi", "r8");
}

static void div64(long n)
{
    /* Two dependent 64-by-64 divisions: the quotient of one feeds the next. */
    __asm__ volatile("mov $1000000007, %%rax\n mov $3, %%rcx\n"
                     "1: xor %%edx, %%edx\n div %%rcx\n lea 1000000007(%%rax), %%rax\n"
                     " xor %%edx, %%edx\n div %%rcx\n lea 1000000007(%%rax), %%rax\n dec %0\n jnz 1b"
                     : "+r"(n) :: "rax", "rcx", "rdx");
}

static void lea_mix(long n)
{
    /* Independent address arithmetic, shifts and logic: ALU throughput. */
    __asm__ volatile("1: lea 8(%%rax), %%rbx\n shl $3, %%rdx\n and %%rsi, %%rdi\n lea (%%r8,%%r9), %%r10\n"
                     " or $1, %%r11\n xor %%r8, %%r9\n dec %0\n jnz 1b"
                     : "+r"(n) :: "rax", "rbx", "rdx", "rsi", "rdi", "r8", "r9", "r10", "r11");
}

static void mulsd_addsd(long n)
{
    __asm__ volatile("xorpd %%xmm0, %%xmm0\n"
                     "1: mulsd %%xmm1, %%xmm0\n addsd %%xmm2, %%xmm0\n mulsd %%xmm1, %%xmm0\n addsd %%xmm2, %%xmm0\n"
                     " mulsd %%xmm1, %%xmm0\n addsd %%xmm2, %%xmm0\n mulsd %%xmm1, %%xmm0\n addsd %%xmm2, %%xmm0\n"
                     " dec %0\n jnz 1b"
                     : "+r"(n) :: "xmm0", "xmm1", "xmm2");
}

static void addsd_throughput(long n)
{
    __asm__ volatile("1: addsd %%xmm8, %%xmm0\n addsd %%xmm8, %%xmm1\n addsd %%xmm8, %%xmm2\n addsd %%xmm8, %%xmm3\n"
                     " addsd %%xmm8, %%xmm4\n addsd %%xmm8, %%xmm5\n addsd %%xmm8, %%xmm6\n addsd %%xmm8, %%xmm7\n"
                     " dec %0\n jnz 1b"
                     : "+r"(n) :: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8");
}

static void divsd_chain(long n)
{
    double one = 1.0000001;
    __asm__ volatile("movsd %1, %%xmm1\n movsd %1, %%xmm0\n"
                     "1: divsd %%xmm1, %%xmm0\n divsd %%xmm1, %%xmm0\n divsd %%xmm1, %%xmm0\n divsd %%xmm1, %%xmm0\n"
                     " dec %0\n jnz 1b"
                     : "+r"(n) : "m"(one) : "xmm0", "xmm1");
}

static void sqrtsd_chain(long n)
{
    double two = 2.0;
    __asm__ volatile("movsd %1, %%xmm0\n"
                     "1: sqrtsd %%xmm0, %%xmm0\n sqrtsd %%xmm0, %%xmm0\n sqrtsd %%xmm0, %%xmm0\n sqrtsd %%xmm0, %%xmm0\n"
                     " dec %0\n jnz 1b"
                     : "+r"(n) : "m"(two) : "xmm0");
}

static long small_buffer[64] __attribute__((aligned(64)));

static void load_throughput(long n)
{
    __asm__ volatile("1: mov (%1), %%rax\n mov 8(%1), %%rbx\n mov 16(%1), %%rdx\n mov 24(%1), %%rsi\n"
                     " mov 32(%1), %%rdi\n mov 40(%1), %%r8\n dec %0\n jnz 1b"
                     : "+r"(n) : "r"(small_buffer) : "rax", "rbx", "rdx", "rsi", "rdi", "r8", "memory");
}

static void store_throughput(long n)
{
    __asm__ volatile("1: mov %%rax, (%1)\n mov %%rax, 64(%1)\n mov %%rax, 128(%1)\n mov %%rax, 192(%1)\n"
                     " dec %0\n jnz 1b"
                     : "+r"(n) : "r"(small_buffer) : "rax", "memory");
}

static void memory_increment(long n)
{
    /* A read-modify-write of one word: the chain runs through store forwarding. */
    __asm__ volatile("1: addq $1, (%1)\n dec %0\n jnz 1b" : "+r"(n) : "r"(small_buffer) : "memory");
}

static void alu_load_store_mix(long n)
{
    __asm__ volatile("1: mov (%1), %%rax\n add %%rax, %%rbx\n mov %%rbx, 8(%1)\n imul %%rdx, %%rsi\n"
                     " add 16(%1), %%rdi\n xor %%r8, %%r9\n dec %0\n jnz 1b"
                     : "+r"(n) : "r"(small_buffer) : "rax", "rbx", "rdx", "rsi", "rdi", "r8", "r9", "memory");
}

static void calls(long n)
{
    __asm__ volatile("jmp 2f\n 3: ret\n"
                     "2: call 3b\n call 3b\n call 3b\n call 3b\n dec %0\n jnz 2b"
                     : "+r"(n) :: "memory");
}

#define PATTERN_BYTES 65536
static void branches(long n)
{
    /* One data-dependent branch per iteration over the pattern. */
    long hits = 0, i = 0;
    __asm__ volatile("1: movzbl (%3,%2), %%eax\n test $1, %%al\n jz 2f\n add $1, %1\n"
                     "2: add $1, %2\n and $65535, %2\n dec %0\n jnz 1b"
                     : "+r"(n), "+r"(hits), "+r"(i) : "r"(pattern) : "rax", "memory");
    sink += hits;
}

static void rep_movsq_4k(long n)
{
    char *buffer = region;
    for (long k = 0; k < n; k++) {
        char *to = buffer, *from = buffer + 8192;
        long count = 512;
        __asm__ volatile("rep movsq" : "+D"(to), "+S"(from), "+c"(count) :: "memory");
    }
}

static void rep_stosb_4k(long n)
{
    char *buffer = region;
    for (long k = 0; k < n; k++) {
        char *to = buffer;
        long count = 4096;
        __asm__ volatile("rep stosb" : "+D"(to), "+c"(count) : "a"(0) : "memory");
    }
}

static void rep_movsb_64k(long n)
{
    char *buffer = region;
    for (long k = 0; k < n; k++) {
        char *to = buffer, *from = buffer + 65536;
        long count = 65536;
        __asm__ volatile("rep movsb" : "+D"(to), "+S"(from), "+c"(count) :: "memory");
    }
}

static void syscall_loop(long n)
{
    for (long k = 0; k < n; k++) {
        long ret;
        __asm__ volatile("syscall" : "=a"(ret) : "a"(110) : "rcx", "r11", "memory");   /* getppid */
        sink += ret;
    }
}

static long sequential_offset;
static void sequential_sum(long n)
{
    /* 8 words (one line) per iteration, wrapping over the region. */
    long sum = 0;
    long offset = sequential_offset;
    char *base = region;
    long mask = (long)region_bytes - 1;
    __asm__ volatile("1: add (%3,%2), %1\n add 8(%3,%2), %1\n add 16(%3,%2), %1\n add 24(%3,%2), %1\n"
                     " add 32(%3,%2), %1\n add 40(%3,%2), %1\n add 48(%3,%2), %1\n add 56(%3,%2), %1\n"
                     " add $64, %2\n and %4, %2\n dec %0\n jnz 1b"
                     : "+r"(n), "+r"(sum), "+r"(offset) : "r"(base), "r"(mask) : "memory");
    sequential_offset = offset;
    sink += sum;
}

struct kernel { const char *name; void (*run)(long); };
static const struct kernel kernels[] = {
    {"dep_add", dep_add}, {"indep_add", indep_add}, {"dep_imul", dep_imul}, {"indep_imul", indep_imul},
    {"div64", div64}, {"lea_mix", lea_mix}, {"mulsd_addsd", mulsd_addsd}, {"addsd_throughput", addsd_throughput},
    {"divsd_chain", divsd_chain}, {"sqrtsd_chain", sqrtsd_chain}, {"load_throughput", load_throughput},
    {"store_throughput", store_throughput}, {"memory_increment", memory_increment},
    {"alu_load_store_mix", alu_load_store_mix}, {"calls", calls},
    {"branch_taken", branches}, {"branch_period4", branches}, {"branch_random", branches},
    {"rep_movsq_4k", rep_movsq_4k}, {"rep_stosb_4k", rep_stosb_4k}, {"rep_movsb_64k", rep_movsb_64k},
    {"syscall_getppid", syscall_loop}, {"chase", run_chase}, {"sequential_sum", sequential_sum},
};

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s NAME N [WORKING_SET_BYTES]\n", argv[0]);
        return 2;
    }
    const char *name = argv[1];
    long n = atol(argv[2]);
    size_t working_set = argc > 3 ? strtoull(argv[3], 0, 0) : 0;
    const struct kernel *k = 0;
    for (size_t i = 0; i < sizeof kernels / sizeof *kernels; i++)
        if (!strcmp(kernels[i].name, name))
            k = &kernels[i];
    if (!k) {
        fprintf(stderr, "unknown kernel %s\n", name);
        return 2;
    }
    pattern = malloc(PATTERN_BYTES);
    for (long i = 0; i < PATTERN_BYTES; i++)
        pattern[i] = !strcmp(name, "branch_random") ? (uint8_t)(xorshift() >> 33) & 1
                     : !strcmp(name, "branch_period4") ? (i & 3) != 3 : 1;
    long warm = n;
    if (!strcmp(name, "chase")) {
        setup_chase(working_set);
        chase_at = region;
        warm = (long)(working_set / 64 / 4) + 1;     /* one lap of the ring */
        if (working_set > (64u << 20))
            warm = 1000;                            /* far past any cache anyway */
    } else if (!strcmp(name, "sequential_sum")) {
        region = alloc_region(working_set);
        region_bytes = working_set;
        memset(region, 1, working_set);
        warm = (long)(working_set / 64);
    } else if (!strncmp(name, "rep_", 4)) {
        region = alloc_region(1 << 20);
        memset(region, 1, 1 << 20);
    }
    long repeats = argc > 4 ? atol(argv[4]) : 1;
    k->run(warm);
    uint64_t best_n = UINT64_MAX, best_2n = UINT64_MAX;
    for (long r = 0; r < repeats; r++) {
        uint64_t t0 = now_ns();
        k->run(n);
        uint64_t t1 = now_ns();
        k->run(2 * n);
        uint64_t t2 = now_ns();
        if (t1 - t0 < best_n)
            best_n = t1 - t0;
        if (t2 - t1 < best_2n)
            best_2n = t2 - t1;
    }
    printf("%llu %llu\n", (unsigned long long)best_n, (unsigned long long)best_2n);
    return (int)(sink & 0);
}
