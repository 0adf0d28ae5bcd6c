/* Per-CPU counters updated inside rseq critical sections (glibc's registered
 * rseq area, found through __rseq_offset). A long critical section and a small
 * scheduler quantum make preemption inside it likely, so the kernel must
 * restart it at the abort handler; the totals stay exact either way.
 * Expected output:  total=240000 threads=6
 * Build: gcc -static -O2 -pthread
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>

#define THREADS 6
#define ITERATIONS 40000
#define MAX_CPUS 64

struct slot {
    long count;
    char pad[56];
};
static struct slot counters[MAX_CPUS];

static inline struct rseq *my_rseq(void)
{
    return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

/* Add 1 to this CPU's counter; returns 0 on commit, -1 when aborted. */
static int percpu_increment(void)
{
    struct rseq *rs = my_rseq();
    uint32_t cpu = __atomic_load_n(&rs->cpu_id_start, __ATOMIC_RELAXED);
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
        "movl $200, %%ecx\n\t"          /* widen the window: preemption lands here */
        "5: decl %%ecx\n\t"
        "jnz 5b\n\t"
        "addq $1, %%rax\n\t"
        "movq %%rax, (%[slot])\n\t"     /* the commit: last instruction of the section */
        "2:\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".long 0x53053053\n\t"          /* RSEQ_SIG on x86, just before the abort IP */
        "4:\n\t"
        "jmp %l[aborted]\n\t"
        ".popsection\n\t"
        :
        : [rs] "r"(rs), [cpu] "r"(cpu), [slot] "r"(&counters[cpu % MAX_CPUS].count),
          [rseq_cs] "i"(__builtin_offsetof(struct rseq, rseq_cs)),
          [cpu_id] "i"(__builtin_offsetof(struct rseq, cpu_id))
        : "rax", "rcx", "memory", "cc"
        : aborted);
    return 0;
aborted:
    return -1;
}

static void *worker(void *arg)
{
    for (int done = 0; done < ITERATIONS;)
        if (percpu_increment() == 0)
            done++;
    return arg;
}

int main(void)
{
    if (__rseq_size == 0) {
        puts("rseq not registered");
        return 1;
    }
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++)
        pthread_create(&threads[i], NULL, worker, NULL);
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    long total = 0;
    for (int i = 0; i < MAX_CPUS; i++)
        total += counters[i].count;
    printf("total=%ld threads=%d\n", total, THREADS);
    return 0;
}
