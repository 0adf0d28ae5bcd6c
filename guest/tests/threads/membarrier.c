/* membarrier(2): QUERY lists the expedited commands; PRIVATE_EXPEDITED fails
 * with EPERM before registration and succeeds after, while a second thread runs.
 * Expected output: "query ok, unregistered EPERM, registered 0, done"
 */
#include <errno.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

static atomic_int stop, started;

static void *spinner(void *arg)
{
    atomic_store(&started, 1);
    while (!atomic_load(&stop))
        ;
    return arg;
}

static long membarrier(int command)
{
    return syscall(SYS_membarrier, command, 0, 0);
}

int main(void)
{
    pthread_t thread;
    pthread_create(&thread, NULL, spinner, NULL);
    while (!atomic_load(&started))      /* the spinner is on the other CPU now */
        ;
    long supported = membarrier(MEMBARRIER_CMD_QUERY);
    int query_ok = (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED) && (supported & MEMBARRIER_CMD_PRIVATE_EXPEDITED_RSEQ);
    long unregistered = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    int unregistered_errno = errno;
    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED);
    long registered = membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED);
    atomic_store(&stop, 1);
    pthread_join(thread, NULL);
    printf("query %s, unregistered %s, registered %ld, done\n", query_ok ? "ok" : "WRONG",
           unregistered == -1 && unregistered_errno == EPERM ? "EPERM" : "WRONG", registered);
    return 0;
}
