/* POSIX timers (kernel/posix_timers.py) in the machine's virtual time.
 *  - timer_create with SIGEV_SIGNAL delivers SI_TIMER signals carrying
 *    si_value and si_timerid to a busy process; ids start at 0 and count up;
 *  - expiries while the signal is blocked are one pending signal plus
 *    overruns, reported in si_overrun and then by timer_getoverrun;
 *  - timer_gettime shows the interval and a running countdown; a
 *    SIGEV_NONE timer counts down without a signal; an absolute
 *    (TIMER_ABSTIME) expiry in the past fires at once;
 *  - SIGEV_THREAD_ID aims at one thread (glibc's SIGEV_THREAD mechanism);
 *  - timer_delete makes the id invalid (EINVAL), setting a timer drops its
 *    queued signal (Linux 6.13+); bad sigevents are EINVAL,
 *    clocks without timers EOPNOTSUPP (the COARSE ones) or EINVAL (unknown).
 * CPUS: 1 2
 * STDOUT: ids 0 1
 * STDOUT: signals: 5, code SI_TIMER 1, value 42 1, timerid 1
 * STDOUT: blocked: one signal 1, overrun > 0 1, getoverrun matches 1
 * STDOUT: gettime: interval 1000000 ns, counting down 1
 * STDOUT: SIGEV_NONE: no signal 1, countdown 1, disarmed after expiry 1
 * STDOUT: absolute past expiry fired: 1
 * STDOUT: thread id signal on the thread: 1
 * STDOUT: deleted: EINVAL 1
 * STDOUT: bad notify EINVAL 1, bad signal EINVAL 1, bad thread EINVAL 1
 * STDOUT: coarse EOPNOTSUPP 1, raw EOPNOTSUPP 1, unknown EINVAL 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static volatile int hits, code_ok = 1, value_ok = 1, timerid_ok = 1, last_overrun;
static volatile pid_t receiver;
static int expected_timerid;

static void handler(int sig, siginfo_t *info, void *context)
{
    hits++;
    code_ok &= info->si_code == SI_TIMER;
    value_ok &= info->si_value.sival_int == 42;
    timerid_ok &= info->si_timerid == expected_timerid;
    last_overrun = info->si_overrun;
    receiver = gettid();
}

static long long remaining_ns(timer_t timer)
{
    struct itimerspec now;
    timer_gettime(timer, &now);
    return now.it_value.tv_sec * 1000000000LL + now.it_value.tv_nsec;
}

static volatile int thread_done;
static volatile pid_t thread_tid;

static void *spin(void *unused)
{
    thread_tid = gettid();
    while (!thread_done)
        ;
    return NULL;
}

int main(void)
{
    struct sigaction action = {0};
    action.sa_sigaction = handler;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGRTMIN, &action, NULL);

    struct sigevent event = {0};
    event.sigev_notify = SIGEV_SIGNAL;
    event.sigev_signo = SIGRTMIN;
    event.sigev_value.sival_int = 42;
    timer_t timer, second;
    timer_create(CLOCK_MONOTONIC, &event, &timer);
    timer_create(CLOCK_MONOTONIC, &event, &second);
    printf("ids %ld %ld\n", (long)timer, (long)second);
    timer_delete(second);
    expected_timerid = (int)(long)timer;

    struct itimerspec period = {{0, 1000000}, {0, 1000000}};
    timer_settime(timer, 0, &period, NULL);
    while (hits < 5)
        ;
    struct itimerspec stop = {0};
    timer_settime(timer, 0, &stop, NULL);
    printf("signals: %d, code SI_TIMER %d, value 42 %d, timerid %d\n", hits, code_ok, value_ok, timerid_ok);

    sigset_t block;
    sigemptyset(&block);
    sigaddset(&block, SIGRTMIN);
    sigprocmask(SIG_BLOCK, &block, NULL);
    timer_settime(timer, 0, &period, NULL);
    struct timespec wait = {0, 10500000};
    nanosleep(&wait, NULL);
    int before = hits;
    sigprocmask(SIG_UNBLOCK, &block, NULL);          /* the pending one arrives here */
    int first_overrun = last_overrun, after_unblock = hits - before;
    int getoverrun = timer_getoverrun(timer);
    timer_settime(timer, 0, &stop, NULL);
    printf("blocked: one signal %d, overrun > 0 %d, getoverrun matches %d\n", after_unblock == 1,
           first_overrun > 0, getoverrun == first_overrun);

    struct itimerspec slow = {{0, 1000000}, {5, 0}}, now;
    timer_settime(timer, 0, &slow, NULL);
    timer_gettime(timer, &now);
    long long first = remaining_ns(timer);
    nanosleep(&(struct timespec){0, 1000000}, NULL);
    printf("gettime: interval %ld ns, counting down %d\n", now.it_interval.tv_nsec,
           remaining_ns(timer) < first && first <= 5000000000LL);
    timer_delete(timer);

    struct sigevent none = {0};
    none.sigev_notify = SIGEV_NONE;
    timer_t quiet;
    timer_create(CLOCK_MONOTONIC, &none, &quiet);
    struct itimerspec once = {{0, 0}, {0, 2000000}};
    before = hits;
    timer_settime(quiet, 0, &once, NULL);
    long long left = remaining_ns(quiet);
    nanosleep(&(struct timespec){0, 4000000}, NULL);
    printf("SIGEV_NONE: no signal %d, countdown %d, disarmed after expiry %d\n", hits == before,
           left > 0 && left <= 2000000, remaining_ns(quiet) == 0);
    timer_delete(quiet);

    timer_create(CLOCK_REALTIME, &event, &timer);
    expected_timerid = (int)(long)timer;
    struct itimerspec past = {{0, 0}, {1, 0}};
    before = hits;
    timer_settime(timer, TIMER_ABSTIME, &past, NULL);
    while (hits == before)
        ;
    printf("absolute past expiry fired: %d\n", hits == before + 1);
    timer_delete(timer);

    pthread_t thread;
    pthread_create(&thread, NULL, spin, NULL);
    while (!thread_tid)
        ;
    struct sigevent directed = event;
    directed.sigev_notify = SIGEV_THREAD_ID;
    directed._sigev_un._tid = thread_tid;
    timer_create(CLOCK_MONOTONIC, &directed, &timer);
    expected_timerid = (int)(long)timer;
    before = hits;
    timer_settime(timer, 0, &once, NULL);
    while (hits == before)
        ;
    printf("thread id signal on the thread: %d\n", receiver == thread_tid);
    thread_done = 1;
    pthread_join(thread, NULL);
    timer_delete(timer);

    errno = 0;
    int result = timer_settime(timer, 0, &once, NULL);
    printf("deleted: EINVAL %d\n", result == -1 && errno == EINVAL);

    struct sigevent bad = event;
    bad.sigev_notify = 99;
    int bad_notify = syscall(SYS_timer_create, CLOCK_MONOTONIC, &bad, &timer) == -1 && errno == EINVAL;
    bad = event;
    bad.sigev_signo = 65;
    int bad_signal = syscall(SYS_timer_create, CLOCK_MONOTONIC, &bad, &timer) == -1 && errno == EINVAL;
    bad = directed;
    bad._sigev_un._tid = 1;
    int bad_thread = syscall(SYS_timer_create, CLOCK_MONOTONIC, &bad, &timer) == -1 && errno == EINVAL;
    printf("bad notify EINVAL %d, bad signal EINVAL %d, bad thread EINVAL %d\n", bad_notify, bad_signal, bad_thread);
    int coarse = syscall(SYS_timer_create, CLOCK_MONOTONIC_COARSE, &none, &timer) == -1 && errno == EOPNOTSUPP;
    int raw = syscall(SYS_timer_create, CLOCK_MONOTONIC_RAW, &none, &timer) == -1 && errno == EOPNOTSUPP;
    int unknown = syscall(SYS_timer_create, 77, &none, &timer) == -1 && errno == EINVAL;
    printf("coarse EOPNOTSUPP %d, raw EOPNOTSUPP %d, unknown EINVAL %d\n", coarse, raw, unknown);
    return 0;
}
