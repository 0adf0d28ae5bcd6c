/*
 * epoll_eventfd_timerfd.c -- epoll (fs/eventpoll.c) over pipes, eventfd and
 * timerfd, with the error cases Linux defines.
 *
 * eventfd: EAGAIN when empty (O_NONBLOCK), the counter summed by writes and
 * zeroed by a read, EFD_SEMAPHORE reads 1 at a time, EINVAL for a short
 * buffer or a write of 2^64-1. epoll: level-triggered items report until
 * drained, EPOLLET items once per edge, EPOLLONESHOT once until
 * EPOLL_CTL_MOD; EEXIST/ENOENT/EPERM/EINVAL from epoll_ctl and epoll_wait.
 * timerfd: a one-shot timer wakes a blocking epoll_wait and a blocking read,
 * a periodic timer counts its expirations, gettime reports the interval,
 * disarming stops it.
 * Expected output: the same as on Linux; exit status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

int main(void) {
    uint64_t v = 0;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    long r = read(efd, &v, 8);
    printf("eventfd empty read: %ld %s\n", r, err(r));
    v = 3; write(efd, &v, 8);
    v = 4; write(efd, &v, 8);
    r = read(efd, &v, 8);
    printf("eventfd read: %ld value %llu\n", r, (unsigned long long)v);
    r = read(efd, &v, 4);
    printf("eventfd short read: %ld %s\n", r, err(r));
    v = UINT64_MAX;
    r = write(efd, &v, 8);
    printf("eventfd write 2^64-1: %ld %s\n", r, err(r));
    v = UINT64_MAX - 1;
    write(efd, &v, 8);
    v = 1;
    r = write(efd, &v, 8);
    printf("eventfd overflow write: %ld %s\n", r, err(r));
    read(efd, &v, 8);
    int sem = eventfd(2, EFD_SEMAPHORE | EFD_NONBLOCK);
    long a = read(sem, &v, 8);
    uint64_t first = v;
    long b = read(sem, &v, 8);
    long c = read(sem, &v, 8);
    printf("semaphore reads: %ld(%llu) %ld(%llu) %ld %s\n", a, (unsigned long long)first, b,
           (unsigned long long)v, c, err(c));

    int ep = epoll_create1(EPOLL_CLOEXEC);
    printf("epoll_create(0): %s, epoll_create1(bad): %s\n", err(epoll_create(0)), err(epoll_create1(1)));
    int p[2];
    pipe(p);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 11};
    epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    r = epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev);
    printf("add twice: %s\n", err(r));
    ev.events = EPOLLIN | EPOLLET;
    ev.data.u64 = 22;
    epoll_ctl(ep, EPOLL_CTL_ADD, efd, &ev);
    struct epoll_event out[8];
    printf("nothing ready: %d\n", epoll_wait(ep, out, 8, 0));
    write(p[1], "ab", 2);
    v = 5;
    write(efd, &v, 8);
    int n = epoll_wait(ep, out, 8, 0);
    printf("both ready: %d", n);
    for (int i = 0; i < n; i++) printf(" [%llu %#x]", (unsigned long long)out[i].data.u64, out[i].events);
    n = epoll_wait(ep, out, 8, 0);
    printf("\nagain (level pipe only): %d data=%llu\n", n, (unsigned long long)out[0].data.u64);
    char buf[8];
    read(p[0], buf, 2);
    printf("after draining: %d\n", epoll_wait(ep, out, 8, 0));
    v = 1;
    write(efd, &v, 8);
    n = epoll_wait(ep, out, 8, 0);
    printf("new edge: %d data=%llu\n", n, (unsigned long long)out[0].data.u64);
    ev.events = EPOLLIN | EPOLLONESHOT;
    ev.data.u64 = 33;
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev);
    write(p[1], "c", 1);
    int once = epoll_wait(ep, out, 8, 0);
    int twice = epoll_wait(ep, out, 8, 0);
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev);
    int rearmed = epoll_wait(ep, out, 8, 0);
    printf("oneshot: %d %d rearmed %d\n", once, twice, rearmed);
    close(p[1]);
    ev.events = EPOLLIN;
    epoll_ctl(ep, EPOLL_CTL_MOD, p[0], &ev);
    n = epoll_wait(ep, out, 8, 0);
    printf("writer closed: %d events=%#x\n", n, out[0].events);
    epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL);
    r = epoll_ctl(ep, EPOLL_CTL_DEL, p[0], NULL);
    printf("del twice: %s\n", err(r));
    int nullfd = open("/dev/null", O_RDONLY);
    r = epoll_ctl(ep, EPOLL_CTL_ADD, nullfd, &ev);
    printf("add /dev/null: %s\n", err(r));
    r = epoll_ctl(ep, EPOLL_CTL_ADD, ep, &ev);
    printf("add itself: %s\n", err(r));
    r = epoll_ctl(efd, EPOLL_CTL_ADD, p[0], &ev);
    printf("ctl on a non-epoll fd: %s\n", err(r));
    r = epoll_wait(ep, out, 0, 0);
    printf("wait maxevents 0: %s\n", err(r));
    r = epoll_ctl(ep, 99, efd, &ev);
    printf("bad op: %s\n", err(r));

    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    r = read(tfd, &v, 8);
    printf("unarmed timer read: %s\n", err(r));
    struct itimerspec its = {.it_interval = {0, 0}, .it_value = {0, 20000000}};
    timerfd_settime(tfd, 0, &its, NULL);
    ev.events = EPOLLIN;
    ev.data.u64 = 44;
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &ev);
    n = epoll_wait(ep, out, 8, 5000);
    r = read(tfd, &v, 8);
    printf("one-shot timer: wait %d data=%llu ticks=%llu\n", n, (unsigned long long)out[0].data.u64,
           (unsigned long long)v);
    its.it_interval.tv_nsec = 5000000;
    its.it_value.tv_nsec = 5000000;
    timerfd_settime(tfd, 0, &its, NULL);
    int blocking = fcntl(tfd, F_GETFL) & ~O_NONBLOCK;
    fcntl(tfd, F_SETFL, blocking);
    usleep(30000);
    r = read(tfd, &v, 8);
    printf("periodic timer after 30 ms: at least 5 ticks=%d\n", v >= 5);
    r = read(tfd, &v, 8);
    printf("blocking read: %ld ticks>=1=%d\n", r, v >= 1);
    struct itimerspec cur;
    timerfd_gettime(tfd, &cur);
    printf("gettime interval %ld value<=5ms %d\n", cur.it_interval.tv_nsec, cur.it_value.tv_nsec <= 5000000);
    memset(&its, 0, sizeof its);
    timerfd_settime(tfd, 0, &its, NULL);
    timerfd_gettime(tfd, &cur);
    printf("disarmed: %ld %ld\n", cur.it_value.tv_nsec, cur.it_interval.tv_nsec);
    its.it_value.tv_nsec = 1000000000;
    printf("bad itimerspec: %s\n", err(timerfd_settime(tfd, 0, &its, NULL)));
    printf("bad clock: %s, bad flags: %s\n", err(timerfd_create(99, 0)), err(timerfd_create(CLOCK_MONOTONIC, 7)));
    printf("settime on eventfd: %s\n", err(timerfd_settime(efd, 0, &its, NULL)));
    return 0;
}
