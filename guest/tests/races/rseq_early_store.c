/* An rseq critical section with a visible store before its commit: besides
 * the per-CPU count it commits with its last instruction, the section also
 * bumps a shared "operations" counter earlier on. A preemption between that
 * store and the commit aborts the section (rseq_ip_fixup sends it to the
 * abort handler) and the retry does the early store again, so "operations"
 * runs ahead of the committed total. Only the commit may be visible; the fix
 * is to move the extra store after the section (or make it the commit).
 * Under the default scheduler nothing preempts the section.
 * CPUS: 4
 * STDOUT: operations=8000 committed=8000
 * EXPECT-RACE: 30 random pct
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
static long operations;         /* the store that must not come before the commit */

static inline struct rseq *my_rseq(void)
{
    return (struct rseq *)((char *)__builtin_thread_pointer() + __rseq_offset);
}

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
        "lock incq %[ops]\n\t"          /* BUG: visible before the commit */
        "movq (%[slot]), %%rax\n\t"
        "addq $1, %%rax\n\t"
        "movq %%rax, (%[slot])\n\t"     /* the commit */
        "2:\n\t"
        ".pushsection __rseq_failure, \"ax\"\n\t"
        ".long 0x53053053\n\t"
        "4:\n\t"
        "jmp %l[aborted]\n\t"
        ".popsection\n\t"
        :
        : [rs] "r"(rs), [cpu] "r"(cpu), [slot] "r"(&counters[cpu % MAX_CPUS].count), [ops] "m"(operations),
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
    long committed = 0;
    for (int i = 0; i < MAX_CPUS; i++)
        committed += counters[i].count;
    printf("operations=%ld committed=%ld\n", operations, committed);
    return 0;
}
