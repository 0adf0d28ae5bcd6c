/* Interval timers, alarm and the clock ids' errors (kernel/itimer.py,
 * kernel/posix_timers.py), as an unprivileged Linux process sees them.
 *  - ITIMER_REAL delivers SIGALRM periodically; getitimer reads the interval
 *    back; setting zero disarms and returns the old setting;
 *  - ITIMER_VIRTUAL and ITIMER_PROF deliver SIGVTALRM and SIGPROF to a busy process;
 *  - bad `which` and tv_usec out of range are EINVAL;
 *  - alarm returns the seconds left of the previous alarm, alarm(0) cancels,
 *    and an alarm ends pause();
 *  - clock_nanosleep refuses MONOTONIC_RAW and the COARSE clocks
 *    (EOPNOTSUPP), THREAD_CPUTIME and unknown ids (EINVAL); TAI sleeps;
 *  - clock_gettime(CLOCK_TAI) works; unknown ids are EINVAL;
 *  - clock_settime is EPERM, clock_adjtime reads (TIME_ERROR: no NTP) but
 *    may not change the clock (EPERM), and MONOTONIC has no adjtime (EOPNOTSUPP).
 * STDOUT: real: 3 alarms, interval 2000 us, old interval 2000 us, disarmed 1
 * STDOUT: virtual: 1, prof: 1
 * STDOUT: bad which EINVAL 1, bad usec EINVAL 1
 * STDOUT: alarm: first 0, left 5, after cancel 0, pause ended by SIGALRM 1
 * STDOUT: nanosleep raw EOPNOTSUPP, coarse EOPNOTSUPP EOPNOTSUPP, thread cputime EINVAL, unknown EINVAL, tai 0
 * STDOUT: gettime tai 0, unknown EINVAL 1
 * STDOUT: settime EPERM 1, adjtime read 5 set EPERM 1, monotonic EOPNOTSUPP 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <sys/timex.h>
#include <time.h>
#include <unistd.h>

static volatile int alarms, vtalarms, profs;
static void on_alarm(int sig) { alarms++; }
static void on_vtalarm(int sig) { vtalarms++; }
static void on_prof(int sig) { profs++; }

static const char *name(int error)
{
    return error == EOPNOTSUPP ? "EOPNOTSUPP" : error == EINVAL ? "EINVAL" : error == 0 ? "0" : strerror(error);
}

int main(void)
{
    signal(SIGALRM, on_alarm);
    signal(SIGVTALRM, on_vtalarm);
    signal(SIGPROF, on_prof);

    struct itimerval period = {{0, 2000}, {0, 2000}}, read_back, old, zero = {0};
    setitimer(ITIMER_REAL, &period, NULL);
    while (alarms < 3)
        ;
    getitimer(ITIMER_REAL, &read_back);
    setitimer(ITIMER_REAL, &zero, &old);
    getitimer(ITIMER_REAL, &period);
    printf("real: %d alarms, interval %ld us, old interval %ld us, disarmed %d\n", alarms,
           read_back.it_interval.tv_usec, old.it_interval.tv_usec,
           period.it_value.tv_sec == 0 && period.it_value.tv_usec == 0);

    struct itimerval shot = {{0, 0}, {0, 3000}};
    setitimer(ITIMER_VIRTUAL, &shot, NULL);
    while (!vtalarms)
        ;
    setitimer(ITIMER_PROF, &shot, NULL);
    while (!profs)
        ;
    printf("virtual: %d, prof: %d\n", vtalarms, profs);

    errno = 0;
    int bad_which = setitimer(7, &shot, NULL) == -1 && errno == EINVAL;
    struct itimerval bad = {{0, 0}, {0, 1000000}};
    errno = 0;
    int bad_usec = setitimer(ITIMER_REAL, &bad, NULL) == -1 && errno == EINVAL;
    printf("bad which EINVAL %d, bad usec EINVAL %d\n", bad_which, bad_usec);

    unsigned first = alarm(5);
    unsigned left = alarm(0);
    unsigned after = alarm(0);
    alarms = 0;
    alarm(1);
    pause();
    printf("alarm: first %u, left %u, after cancel %u, pause ended by SIGALRM %d\n", first, left, after, alarms == 1);

    struct timespec tiny = {0, 1000};
    int raw = clock_nanosleep(CLOCK_MONOTONIC_RAW, 0, &tiny, NULL);
    int coarse_real = clock_nanosleep(CLOCK_REALTIME_COARSE, 0, &tiny, NULL);
    int coarse_mono = clock_nanosleep(CLOCK_MONOTONIC_COARSE, 0, &tiny, NULL);
    int thread = clock_nanosleep(CLOCK_THREAD_CPUTIME_ID, 0, &tiny, NULL);
    int unknown = clock_nanosleep(77, 0, &tiny, NULL);
    int tai = clock_nanosleep(CLOCK_TAI, 0, &tiny, NULL);
    printf("nanosleep raw %s, coarse %s %s, thread cputime %s, unknown %s, tai %s\n", name(raw), name(coarse_real),
           name(coarse_mono), name(thread), name(unknown), name(tai));

    struct timespec now;
    int tai_get = clock_gettime(CLOCK_TAI, &now);
    errno = 0;
    int unknown_get = clock_gettime(77, &now) == -1 && errno == EINVAL;
    printf("gettime tai %d, unknown EINVAL %d\n", tai_get, unknown_get);

    clock_gettime(CLOCK_REALTIME, &now);
    errno = 0;
    int settime = clock_settime(CLOCK_REALTIME, &now) == -1 && errno == EPERM;
    struct timex timex = {0};
    int read_state = clock_adjtime(CLOCK_REALTIME, &timex);
    timex.modes = ADJ_OFFSET;
    errno = 0;
    int set_state = clock_adjtime(CLOCK_REALTIME, &timex) == -1 && errno == EPERM;
    timex.modes = 0;
    errno = 0;
    int monotonic = clock_adjtime(CLOCK_MONOTONIC, &timex) == -1 && errno == EOPNOTSUPP;
    printf("settime EPERM %d, adjtime read %d set EPERM %d, monotonic EOPNOTSUPP %d\n", settime, read_state,
           set_state, monotonic);
    return 0;
}
