/* A signal handler ends a relative sleep early (do_nanosleep ->
 * nanosleep_copyout, kernel/posix_timers.py): the call fails with EINTR
 * (whatever SA_RESTART says: the sleep's -ERESTART_RESTARTBLOCK becomes EINTR
 * when a handler runs) and rem holds the time that was left, less than the
 * request; an absolute clock_nanosleep leaves its rem untouched.
 * STDOUT: nanosleep EINTR 1, rem written 1, rem below request 1, rem above 4s 1
 * STDOUT: clock_nanosleep relative EINTR 1, rem written 1
 * STDOUT: clock_nanosleep absolute EINTR 1, rem untouched 1
 * EXIT: 0
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static void on_alarm(int signo) { (void)signo; }

static void arm(void)
{
    struct itimerval once = {{0, 0}, {0, 20000}};        /* 20 ms */
    setitimer(ITIMER_REAL, &once, NULL);
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGALRM, &sa, NULL);

    struct timespec request = {5, 0}, rem = {-1, -1};
    arm();
    int r = nanosleep(&request, &rem);
    printf("nanosleep EINTR %d, rem written %d, rem below request %d, rem above 4s %d\n",
           r == -1 && errno == EINTR, rem.tv_sec != -1,
           rem.tv_sec < 5 && rem.tv_nsec >= 0 && rem.tv_nsec < 1000000000, rem.tv_sec == 4);

    rem = (struct timespec){-1, -1};
    arm();
    r = clock_nanosleep(CLOCK_MONOTONIC, 0, &request, &rem);
    printf("clock_nanosleep relative EINTR %d, rem written %d\n", r == EINTR, rem.tv_sec == 4);

    struct timespec now, until;
    clock_gettime(CLOCK_MONOTONIC, &now);
    until = (struct timespec){now.tv_sec + 5, now.tv_nsec};
    rem = (struct timespec){-1, -1};
    arm();
    r = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, &rem);
    printf("clock_nanosleep absolute EINTR %d, rem untouched %d\n", r == EINTR, rem.tv_sec == -1 && rem.tv_nsec == -1);
    return 0;
}
