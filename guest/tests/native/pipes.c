/*
 * pipes.c -- pipe(2)/pipe2(2) as fs/pipe.c defines them, across fork.
 *
 * A child writes through a pipe dup2'ed onto its stdout; the parent reads to
 * EOF, then sees POLLHUP. Writing with no reader gives EPIPE (SIGPIPE
 * ignored) or kills the writer with SIGPIPE (default action). An O_NONBLOCK
 * pipe takes 65536 bytes and then fails EAGAIN; a write of PIPE_BUF bytes is
 * all-or-nothing. FIONREAD counts what is buffered. Two pipes carry a
 * ping-pong between parent and child (blocking reads on both sides).
 * Expected output: the same as on Linux; exit status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

int main(void) {
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) return 1;
    printf("pipe2: GETFL r=%#x w=%#x GETFD=%d\n", fcntl(p[0], F_GETFL), fcntl(p[1], F_GETFL), fcntl(p[0], F_GETFD));
    struct pollfd pfd = {p[0], POLLIN, 0};
    int r = poll(&pfd, 1, 0);
    printf("poll empty pipe: %d revents=%#x\n", r, pfd.revents);
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        dup2(p[1], 1);
        close(p[0]);
        close(p[1]);
        printf("line one from the child\n");
        fflush(stdout);
        usleep(2000);
        printf("line two\n");
        fflush(stdout);
        _exit(7);
    }
    close(p[1]);
    char buf[512];
    size_t total = 0;
    ssize_t n;
    int reads = 0;
    while ((n = read(p[0], buf + total, sizeof buf - 1 - total)) > 0) { total += n; reads++; }
    buf[total] = 0;
    printf("parent read %zu bytes to EOF (%s):\n%s", total, reads >= 1 ? "ok" : "none", buf);
    int status;
    waitpid(child, &status, 0);
    printf("child exit %d\n", WEXITSTATUS(status));
    r = poll(&pfd, 1, 0);
    printf("poll after writers closed: %d revents=%#x\n", r, pfd.revents);
    close(p[0]);

    signal(SIGPIPE, SIG_IGN);
    pipe(p);
    close(p[0]);
    errno = 0;
    long w = write(p[1], "x", 1);
    printf("write without reader: %ld %s\n", w, err(w));
    pfd.fd = p[1]; pfd.events = POLLOUT;
    r = poll(&pfd, 1, 0);
    printf("poll write end without reader: %d revents=%#x\n", r, pfd.revents);
    close(p[1]);
    signal(SIGPIPE, SIG_DFL);
    pipe(p);
    fflush(stdout);
    child = fork();
    if (child == 0) {
        close(p[0]);
        write(p[1], "x", 1);
        _exit(0);
    }
    close(p[0]);
    close(p[1]);
    waitpid(child, &status, 0);
    printf("writer with default SIGPIPE: signaled=%d sig=%d\n", WIFSIGNALED(status), WTERMSIG(status));

    pipe2(p, O_NONBLOCK);
    char big[4096];
    memset(big, 'a', sizeof big);
    long filled = 0;
    while ((w = write(p[1], big, sizeof big)) > 0) filled += w;
    printf("nonblocking fill: %ld then %s\n", filled, err(w));
    int queued = 0;
    ioctl(p[0], FIONREAD, &queued);
    printf("FIONREAD %d, F_GETPIPE_SZ %d\n", queued, fcntl(p[0], F_GETPIPE_SZ));
    read(p[0], buf, 100);
    w = write(p[1], big, PIPE_BUF);
    printf("PIPE_BUF write with 100 bytes free: %ld %s\n", w, err(w));
    w = write(p[1], big, 50);
    printf("small write: %ld\n", w);
    read(p[0], big, 10);
    r = read(p[0], buf, 0);
    printf("zero-length read: %d\n", r);
    close(p[0]);
    close(p[1]);

    int a[2], b[2];
    pipe(a);
    pipe(b);
    fflush(stdout);
    child = fork();
    if (child == 0) {
        for (int i = 0; i < 5; i++) {
            int v;
            if (read(a[0], &v, sizeof v) != sizeof v) _exit(1);
            v += 1;
            write(b[1], &v, sizeof v);
        }
        _exit(0);
    }
    int v = 1;
    for (int i = 0; i < 5; i++) {
        write(a[1], &v, sizeof v);
        read(b[0], &v, sizeof v);
        v *= 3;
    }
    waitpid(child, &status, 0);
    printf("ping-pong result %d, child exit %d\n", v, WEXITSTATUS(status));
    r = read(-1, buf, 1);
    printf("read fd -1: %d %s\n", r, err(r));
    r = lseek(a[0], 0, SEEK_SET);
    printf("lseek on a pipe: %d %s\n", r, err(r));
    return 0;
}
