/*
 * poll_select.c -- poll, ppoll, select, pselect6 as fs/select.c defines them.
 *
 * poll: POLLNVAL for a closed fd, a negative fd ignored, POLLERR/POLLHUP
 * reported unasked, timeout 0 returns at once, a timeout on an empty pipe
 * returns 0 after sleeping, data written by a child wakes a blocked poll.
 * select: -EBADF for a closed fd in a set, the sets rewritten with only the
 * ready fds, the timeval rewritten with the time left (0 after a timeout),
 * nfds < 0 is -EINVAL. pselect6/ppoll with a signal mask and a timespec.
 * Expected output: the same as on Linux; exit status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/select.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

int main(void) {
    int p[2];
    pipe(p);
    struct pollfd fds[4] = {{p[0], POLLIN, 0}, {p[1], POLLOUT, 0}, {-1, POLLIN, 0}, {77, POLLIN, 0}};
    int r = poll(fds, 4, 0);
    printf("poll: %d revents %#x %#x %#x %#x\n", r, fds[0].revents, fds[1].revents, fds[2].revents, fds[3].revents);
    r = poll(fds, 1, 20);
    printf("poll timeout on empty pipe: %d revents=%#x\n", r, fds[0].revents);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        usleep(5000);
        write(p[1], "wake", 4);
        _exit(0);
    }
    r = poll(fds, 1, -1);
    printf("poll woken by child: %d revents=%#x\n", r, fds[0].revents);
    waitpid(child, NULL, 0);
    char buf[8];
    read(p[0], buf, sizeof buf);

    fd_set rs, ws;
    FD_ZERO(&rs);
    FD_ZERO(&ws);
    FD_SET(p[0], &rs);
    FD_SET(p[1], &ws);
    struct timeval tv = {1, 0};
    r = select(p[1] + 1, &rs, &ws, NULL, &tv);
    printf("select: %d read=%d write=%d time left positive=%d\n", r, FD_ISSET(p[0], &rs), FD_ISSET(p[1], &ws),
           tv.tv_sec > 0 || tv.tv_usec > 0);
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    tv.tv_sec = 0;
    tv.tv_usec = 15000;
    r = select(p[0] + 1, &rs, NULL, NULL, &tv);
    printf("select timeout: %d read=%d tv=%ld.%06ld\n", r, FD_ISSET(p[0], &rs), (long)tv.tv_sec, (long)tv.tv_usec);
    FD_ZERO(&rs);
    FD_SET(60, &rs);
    r = select(61, &rs, NULL, NULL, &tv);
    printf("select closed fd: %d %s\n", r, err(r));
    r = select(-1, NULL, NULL, NULL, &tv);
    printf("select nfds -1: %d %s\n", r, err(r));
    tv.tv_sec = 0;
    tv.tv_usec = -1;
    r = select(0, NULL, NULL, NULL, &tv);
    printf("select bad timeval: %d %s\n", r, err(r));

    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGUSR1);
    struct timespec ts = {0, 10000000};
    FD_ZERO(&rs);
    FD_SET(p[0], &rs);
    r = pselect(p[0] + 1, &rs, NULL, NULL, &ts, &mask);
    printf("pselect timeout: %d ts unchanged=%d\n", r, ts.tv_nsec == 10000000);
    write(p[1], "x", 1);
    r = ppoll(fds, 1, &ts, &mask);
    printf("ppoll ready: %d revents=%#x\n", r, fds[0].revents);
    ts.tv_nsec = 1000000000;
    r = ppoll(fds, 1, &ts, NULL);
    printf("ppoll bad timespec: %d %s\n", r, err(r));
    close(p[1]);
    read(p[0], buf, 1);
    r = poll(fds, 1, 0);
    printf("poll after writer closed: %d revents=%#x\n", r, fds[0].revents);
    return 0;
}
