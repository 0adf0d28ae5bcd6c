/* Per-CPU counters updated in rseq critical sections (glibc's registered
 * area, __rseq_offset): the load, add and the committing store run with the
 * CPU number checked first, and a preemption, migration or signal inside the
 * section restarts it at the abort handler (rseq_ip_fixup). The exploring
 * schedulers preempt inside the section (kernel/sched_explore.py), so aborts
 * happen, and the total stays exact under every schedule.
 * CPUS: 4
 * STDOUT: counter=8000 exact=yes
 * SCHEDULES: 10 random pct
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/rseq.h>

#define THREADS 4
#define ITERATIONS 2000
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

/* Add 1 to this CPU's counter; 0 on commit, -1 when aborted. */
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
        : "rax", "memory", "cc"
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
    printf("counter=%ld exact=%s\n", total, total == (long)THREADS * ITERATIONS ? "yes" : "no");
    return 0;
}
