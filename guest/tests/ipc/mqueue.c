/* POSIX message queues (kernel/mqueue.py).
 *  - mq_open creates with the default attributes (10 messages of 8192 bytes)
 *    or given ones; O_CREAT|O_EXCL on an existing name is EEXIST, an unknown
 *    name ENOENT, attributes above the unprivileged limits EINVAL;
 *  - messages come out highest priority first, FIFO within a priority;
 *  - a full queue with O_NONBLOCK is EAGAIN, a timed send ETIMEDOUT; a short
 *    receive buffer EMSGSIZE; priority >= MQ_PRIO_MAX EINVAL;
 *  - a receiver blocked in mq_receive is woken by a sender in another process;
 *  - mq_notify signals (SI_MESGQ, the sender's pid) when a message arrives in an
 *    empty queue, once; a second registration is EBUSY;
 *  - mq_getsetattr reports curmsgs and toggles O_NONBLOCK; mq_unlink removes
 *    the name (ENOENT after) while open descriptors keep working.
 * CPUS: 1 2
 * STDOUT: default attr: 10 8192 0
 * STDOUT: exclusive EEXIST 1, missing ENOENT 1, too many EINVAL 1
 * STDOUT: order: urgent first-high second-high low
 * STDOUT: full: EAGAIN 1, timed ETIMEDOUT 1, short buffer EMSGSIZE 1, priority EINVAL 1
 * STDOUT: blocked receiver got "from child" prio 7
 * STDOUT: notify: signal 1, code SI_MESGQ 1, pid of sender 1, value 99 1, busy EBUSY 1
 * STDOUT: getsetattr: curmsgs 1, nonblock set 1
 * STDOUT: unlink: 0, again ENOENT 1, descriptor still works 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <mqueue.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int notified, code_ok, value_ok;
static volatile pid_t sender;

static void on_message(int sig, siginfo_t *info, void *context)
{
    notified++;
    code_ok = info->si_code == SI_MESGQ;
    sender = info->si_pid;
    value_ok = info->si_value.sival_int == 99;
}

int main(void)
{
    char name[64];
    snprintf(name, sizeof name, "/emu-test-%d", getpid());
    mqd_t queue = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, NULL);
    struct mq_attr attr;
    mq_getattr(queue, &attr);
    printf("default attr: %ld %ld %ld\n", attr.mq_maxmsg, attr.mq_msgsize, attr.mq_curmsgs);
    mq_close(queue);
    mq_unlink(name);

    struct mq_attr small = {.mq_maxmsg = 4, .mq_msgsize = 64};
    queue = mq_open(name, O_CREAT | O_RDWR, 0600, &small);
    int exclusive = mq_open(name, O_CREAT | O_EXCL | O_RDWR, 0600, &small) == -1 && errno == EEXIST;
    int missing = mq_open("/emu-no-such-queue", O_RDWR) == -1 && errno == ENOENT;
    struct mq_attr huge = {.mq_maxmsg = 100000, .mq_msgsize = 64};
    int too_many = mq_open("/emu-too-many", O_CREAT | O_RDWR, 0600, &huge) == -1 && errno == EINVAL;
    printf("exclusive EEXIST %d, missing ENOENT %d, too many EINVAL %d\n", exclusive, missing, too_many);

    mq_send(queue, "low", 4, 1);
    mq_send(queue, "first-high", 11, 5);
    mq_send(queue, "second-high", 12, 5);
    mq_send(queue, "urgent", 7, 9);
    char buffer[64];
    unsigned priority;
    printf("order:");
    for (int i = 0; i < 4; i++) {
        mq_receive(queue, buffer, sizeof buffer, &priority);
        printf(" %s", buffer);
    }
    printf("\n");

    for (int i = 0; i < 4; i++)
        mq_send(queue, "x", 2, 0);
    mqd_t nonblocking = mq_open(name, O_WRONLY | O_NONBLOCK);
    int again = mq_send(nonblocking, "y", 2, 0) == -1 && errno == EAGAIN;
    struct timespec past;
    clock_gettime(CLOCK_REALTIME, &past);
    past.tv_nsec = (past.tv_nsec + 2000000) % 1000000000;
    if (past.tv_nsec < 2000000)
        past.tv_sec++;
    int timed = mq_timedsend(queue, "y", 2, 0, &past) == -1 && errno == ETIMEDOUT;
    int short_buffer = mq_receive(queue, buffer, 8, NULL) == -1 && errno == EMSGSIZE;
    int bad_priority = mq_send(queue, "y", 2, 40000) == -1 && errno == EINVAL;
    printf("full: EAGAIN %d, timed ETIMEDOUT %d, short buffer EMSGSIZE %d, priority EINVAL %d\n", again, timed,
           short_buffer, bad_priority);
    for (int i = 0; i < 4; i++)
        mq_receive(queue, buffer, sizeof buffer, NULL);

    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        struct timespec pause_ns = {0, 3000000};
        nanosleep(&pause_ns, NULL);
        mq_send(queue, "from child", 11, 7);
        _exit(0);
    }
    ssize_t got = mq_receive(queue, buffer, sizeof buffer, &priority);
    waitpid(child, NULL, 0);
    printf("blocked receiver got \"%s\" prio %u\n", got > 0 ? buffer : "?", priority);

    struct sigaction action = {0};
    action.sa_sigaction = on_message;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGUSR1, &action, NULL);
    struct sigevent event = {0};
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGUSR1;
    event.sigev_value.sival_int = 99;
    mq_notify(queue, &event);
    int busy = mq_notify(queue, &event) == -1 && errno == EBUSY;
    fflush(stdout);
    child = fork();
    if (child == 0) {
        mq_send(queue, "ping", 5, 0);
        mq_send(queue, "ping", 5, 0);                /* not empty: no second notification */
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("notify: signal %d, code SI_MESGQ %d, pid of sender %d, value 99 %d, busy EBUSY %d\n", notified, code_ok,
           sender == child, value_ok, busy);

    struct mq_attr current, nonblock = {.mq_flags = O_NONBLOCK};
    mq_receive(queue, buffer, sizeof buffer, NULL);
    mq_setattr(queue, &nonblock, &current);
    mq_getattr(queue, &attr);
    printf("getsetattr: curmsgs %ld, nonblock set %d\n", current.mq_curmsgs, (attr.mq_flags & O_NONBLOCK) != 0);

    int unlinked = mq_unlink(name);
    int again_unlink = mq_unlink(name) == -1 && errno == ENOENT;
    int works = mq_receive(queue, buffer, sizeof buffer, NULL) == 5 && !strcmp(buffer, "ping");
    printf("unlink: %d, again ENOENT %d, descriptor still works %d\n", unlinked, again_unlink, works);
    return 0;
}
