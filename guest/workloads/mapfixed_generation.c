/* mapfixed_generation -- correctness check for TLB shootdowns.
 *
 * Stresses: a writer thread (pinned to the first allowed CPU) replaces one
 * page again and again with mmap(MAP_FIXED) and writes the next generation
 * number into the fresh page; reader threads pinned to the other CPUs keep
 * reading that page. The writer publishes through a sequence counter (odd =
 * replacement in progress, even 2*g = generation g is in the page; release
 * stores). A reader that sees an even count (acquire), reads the page, and
 * sees the same count again must have read exactly g: the kernel finished the
 * shootdown of the old translation before mmap returned. The writer replaces
 * the page only after every reader has checked the current generation at
 * least once, so every generation is checked on every reader's CPU. A stale TLB entry
 * shows the old frame. Page allocators hand the frame just freed out first,
 * which would put it back under the same address with the new generation and
 * hide the bug, so right after each replacement the writer first touches a
 * fresh scratch page (which takes that frame) and writes a poison value
 * (-generation) there: a stale reader reads the poison or an older
 * generation.
 *
 * Usage: mapfixed_generation [READERS [GENERATIONS]]
 *   READERS      reader threads (default, or 0: allowed CPUs - 1, at least 1)
 *   GENERATIONS  page replacements (default 500)
 * Output: "ok" and exit 0 when no reader ever saw a stale page; otherwise the
 * first stale observation ("stale: reader R read generation V after
 * generation G was published") and exit 1.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>

#define PAGE_SIZE 4096

static int allowed_cpus[CPU_SETSIZE], nr_allowed;
static int nr_readers, generations;
static volatile long *page;              /* the page replaced by the writer */
static volatile char *scratch;           /* one never-touched page per generation */
static long sequence;                    /* 2*g: generation g published; odd: replacing */
static int done;
static int stale_found;
static pthread_mutex_t report_lock = PTHREAD_MUTEX_INITIALIZER;
static char first_stale[160];
static pthread_barrier_t start_barrier;
static long *checked;                    /* checked[r]: last generation reader r verified */

/* Spin politely; yield now and then so the run also makes progress when
 * threads share a CPU. */
static void relax(unsigned *spins)
{
    if (++*spins % 64 == 0)
        sched_yield();
    else
        __builtin_ia32_pause();
}

static void pin_to(int slot)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(allowed_cpus[slot % nr_allowed], &set);
    sched_setaffinity(0, sizeof set, &set);
}

static void *reader(void *arg)
{
    long id = (long)arg;
    pin_to((int)id + 1);
    pthread_barrier_wait(&start_barrier);
    unsigned spins = 0;
    while (!__atomic_load_n(&done, __ATOMIC_ACQUIRE)) {
        long before = __atomic_load_n(&sequence, __ATOMIC_ACQUIRE);
        if (before & 1) {
            relax(&spins);
            continue;
        }
        long seen = page[0];
        __atomic_thread_fence(__ATOMIC_ACQUIRE);
        long after = __atomic_load_n(&sequence, __ATOMIC_RELAXED);
        if (after != before)
            continue;                    /* replaced while reading: no verdict */
        if (seen != before / 2) {
            pthread_mutex_lock(&report_lock);
            if (!stale_found) {
                stale_found = 1;
                snprintf(first_stale, sizeof first_stale,
                         "stale: reader %ld read generation %ld after generation %ld was published",
                         id, seen, before / 2);
            }
            pthread_mutex_unlock(&report_lock);
        }
        if (checked[id] == before / 2)
            relax(&spins);
        else
            __atomic_store_n(&checked[id], before / 2, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void *writer(void *arg)
{
    (void)arg;
    pin_to(0);
    pthread_barrier_wait(&start_barrier);
    unsigned spins = 0;
    for (long generation = 1; generation <= generations; generation++) {
        for (int r = 0; r < nr_readers; r++)
            while (__atomic_load_n(&checked[r], __ATOMIC_ACQUIRE) < generation - 1)
                relax(&spins);
        __atomic_store_n(&sequence, 2 * generation - 1, __ATOMIC_RELEASE);
        void *fresh = mmap((void *)page, PAGE_SIZE, PROT_READ | PROT_WRITE,
                           MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
        if (fresh != (void *)page) {
            perror("mmap MAP_FIXED");
            exit(1);
        }
        *(volatile long *)(scratch + (size_t)(generation - 1) * PAGE_SIZE) = -generation;
        page[0] = generation;
        __atomic_store_n(&sequence, 2 * generation, __ATOMIC_RELEASE);
    }
    __atomic_store_n(&done, 1, __ATOMIC_RELEASE);
    return NULL;
}

int main(int argc, char **argv)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) != 0) {
        perror("sched_getaffinity");
        return 1;
    }
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, &set))
            allowed_cpus[nr_allowed++] = cpu;
    nr_readers = argc > 1 ? atoi(argv[1]) : 0;
    if (nr_readers == 0)
        nr_readers = nr_allowed > 1 ? nr_allowed - 1 : 1;
    generations = argc > 2 ? atoi(argv[2]) : 500;
    if (nr_readers < 1 || nr_readers > 1024 || generations < 0) {
        fprintf(stderr, "usage: mapfixed_generation [READERS [GENERATIONS]]\n");
        return 2;
    }
    page = mmap(NULL, PAGE_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    page[0] = 0;                         /* generation 0, sequence 0 */
    if (generations > 0) {
        scratch = mmap(NULL, (size_t)generations * PAGE_SIZE, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (scratch == MAP_FAILED) {
            perror("mmap scratch");
            return 1;
        }
    }
    checked = calloc((size_t)nr_readers, sizeof *checked);
    for (int r = 0; r < nr_readers; r++)
        checked[r] = -1;
    pthread_barrier_init(&start_barrier, NULL, (unsigned)nr_readers + 1);
    pthread_t *threads = calloc((size_t)nr_readers + 1, sizeof *threads);
    for (long i = 0; i < nr_readers; i++)
        pthread_create(&threads[i + 1], NULL, reader, (void *)i);
    pthread_create(&threads[0], NULL, writer, NULL);
    for (int i = 0; i <= nr_readers; i++)
        pthread_join(threads[i], NULL);
    if (stale_found) {
        printf("%s\n", first_stale);
        return 1;
    }
    printf("ok\n");
    return 0;
}
