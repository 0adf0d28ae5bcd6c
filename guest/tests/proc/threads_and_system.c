/* procfs across threads and the system-wide files (kernel/proc/).
 *  - /proc/self/task lists both threads, thread-self names the caller's
 *    task directory, status shows Threads: 2;
 *  - /proc/cpuinfo has one "processor" block per CPU the process may run on,
 *    /proc/stat one cpuN line each, and both agree with get_nprocs();
 *  - /proc/meminfo starts with MemTotal and MemFree (kB) and MemFree <= MemTotal;
 *  - /proc/sys/vm/mmap_min_addr is the lowest address mmap(MAP_FIXED) accepts;
 *  - /proc/PID of the parent is visible to a forked child, and its stat names it.
 * CPUS: 1 2
 * STDOUT: task entries: 2, thread-self ok: 1, Threads: 2
 * STDOUT: cpuinfo processors = stat cpus = nprocs: 1
 * STDOUT: meminfo: 1
 * STDOUT: mmap_min_addr: below EPERM 1, at it 1
 * STDOUT: child sees parent: 1
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sysinfo.h>
#include <sys/wait.h>
#include <unistd.h>

static char buffer[1 << 16];

static int slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int total = 0, n;
    while ((n = read(fd, buffer + total, sizeof buffer - 1 - total)) > 0)
        total += n;
    buffer[total] = 0;
    close(fd);
    return total;
}

static int count(const char *needle)
{
    int found = 0;
    for (char *p = buffer; (p = strstr(p, needle)); p++)
        found++;
    return found;
}

static pthread_barrier_t barrier;

static void *thread_main(void *unused)
{
    pthread_barrier_wait(&barrier);
    pthread_barrier_wait(&barrier);
    return NULL;
}

int main(void)
{
    pthread_t thread;
    pthread_barrier_init(&barrier, NULL, 2);
    pthread_create(&thread, NULL, thread_main, NULL);
    pthread_barrier_wait(&barrier);
    int tasks = 0;
    DIR *directory = opendir("/proc/self/task");
    for (struct dirent *entry; (entry = readdir(directory));)
        tasks += entry->d_name[0] != '.';
    closedir(directory);
    char link[64] = {0}, expected[64];
    readlink("/proc/thread-self", link, sizeof link - 1);
    snprintf(expected, sizeof expected, "%d/task/%d", getpid(), gettid());
    slurp("/proc/self/status");
    char *threads = strstr(buffer, "Threads:\t");
    printf("task entries: %d, thread-self ok: %d, Threads: %ld\n", tasks, !strcmp(link, expected),
           threads ? strtol(threads + 9, NULL, 10) : -1);
    pthread_barrier_wait(&barrier);
    pthread_join(thread, NULL);

    slurp("/proc/cpuinfo");
    int processors = count("processor\t: ");
    slurp("/proc/stat");
    int cpus = count("\ncpu");
    printf("cpuinfo processors = stat cpus = nprocs: %d\n", processors == cpus && cpus == get_nprocs());

    slurp("/proc/meminfo");
    long total = -1, free_kb = -1;
    sscanf(buffer, "MemTotal: %ld kB\nMemFree: %ld kB", &total, &free_kb);
    printf("meminfo: %d\n", total > 0 && free_kb > 0 && free_kb <= total);

    slurp("/proc/sys/vm/mmap_min_addr");
    long min_addr = strtol(buffer, NULL, 10);
    void *below = mmap((void *)(min_addr - 4096), 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    int below_eperm = below == MAP_FAILED && errno == EPERM;
    void *at = mmap((void *)min_addr, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    printf("mmap_min_addr: below EPERM %d, at it %d\n", below_eperm, at == (void *)min_addr);

    fflush(stdout);
    pid_t parent = getpid();
    if (fork() == 0) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%d/stat", parent);
        slurp(path);
        int pid = 0;
        sscanf(buffer, "%d", &pid);
        printf("child sees parent: %d\n", pid == parent && strstr(buffer, "(threads_and_sy") != NULL);
        return 0;
    }
    wait(NULL);
    return 0;
}
