/* pidfds (kernel/pid.c, kernel/fork.c): pidfd_open's checks, poll reporting
 * exit (POLLIN) and reaping (POLLHUP), pidfd_send_signal, pidfd_getfd,
 * clone(CLONE_PIDFD), clone3's pidfd, waitid(P_PIDFD) blocking and with a
 * PIDFD_NONBLOCK pidfd. Checked natively on the host.
 * CPUS: 1 2
 * STDOUT: pidfd_open(0): EINVAL, (-1): EINVAL, (missing): ESRCH, flags: EINVAL
 * STDOUT: pidfd is cloexec: 1
 * STDOUT: poll before exit: 0
 * STDOUT: pidfd_send_signal(SIGTERM): 0
 * STDOUT: poll after exit: 1 revents POLLIN
 * STDOUT: waitid(P_PIDFD): 0 pid ok code CLD_KILLED status SIGTERM
 * STDOUT: poll after reap: revents POLLIN|POLLHUP
 * STDOUT: send after reap: ESRCH
 * STDOUT: waitid after reap: ECHILD
 * STDOUT: send_signal bad flags: EINVAL, not a pidfd: EBADF
 * STDOUT: pidfd_getfd: read through the copy: hello
 * STDOUT: pidfd_getfd bad flags: EINVAL, bad target fd: EBADF
 * STDOUT: clone(CLONE_PIDFD): fd ok, waitid: exit 7
 * STDOUT: clone(CLONE_PIDFD|CLONE_PARENT_SETTID, same slot): EINVAL
 * STDOUT: clone3 pidfd: fd ok, nonblocking waitid while alive: EAGAIN
 * STDOUT: nonblocking waitid after exit: 0 exit 9
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif
#ifndef PIDFD_NONBLOCK
#define PIDFD_NONBLOCK O_NONBLOCK
#endif

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    return errno == EPERM ? "EPERM" : errno == ESRCH ? "ESRCH" : errno == EINVAL ? "EINVAL" : errno == EBADF ? "EBADF"
         : errno == ECHILD ? "ECHILD" : errno == EAGAIN ? "EAGAIN" : strerror(errno);
}

static int pidfd_open(pid_t pid, unsigned flags) { return syscall(SYS_pidfd_open, pid, flags); }
static int pidfd_send_signal(int fd, int sig, siginfo_t *info, unsigned flags) {
    return syscall(SYS_pidfd_send_signal, fd, sig, info, flags);
}
static int pidfd_getfd(int fd, int target, unsigned flags) { return syscall(SYS_pidfd_getfd, fd, target, flags); }

static int poll_one(int fd, int timeout_ms, short *revents) {
    struct pollfd p = {fd, POLLIN, 0};
    int rc = poll(&p, 1, timeout_ms);
    *revents = p.revents;
    return rc;
}

static void nap(void) {
    struct timespec t = {0, 20000000};
    nanosleep(&t, 0);
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    printf("pidfd_open(0): %s", err(pidfd_open(0, 0)));
    printf(", (-1): %s", err(pidfd_open(-1, 0)));
    printf(", (missing): %s", err(pidfd_open(999999, 0)));
    printf(", flags: %s\n", err(pidfd_open(getpid(), 1)));

    pid_t child = fork();
    if (child == 0) {
        for (;;)
            pause();
    }
    int fd = pidfd_open(child, 0);
    printf("pidfd is cloexec: %d\n", (fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    short revents;
    printf("poll before exit: %d\n", poll_one(fd, 0, &revents));
    printf("pidfd_send_signal(SIGTERM): %d\n", pidfd_send_signal(fd, SIGTERM, 0, 0));
    int rc = poll_one(fd, 5000, &revents);
    printf("poll after exit: %d revents %s\n", rc, revents == POLLIN ? "POLLIN" : "other");
    siginfo_t info;
    memset(&info, 0, sizeof info);
    rc = waitid(P_PIDFD, fd, &info, WEXITED);
    printf("waitid(P_PIDFD): %d pid %s code %s status %s\n", rc, info.si_pid == child ? "ok" : "bad",
           info.si_code == CLD_KILLED ? "CLD_KILLED" : "other", info.si_status == SIGTERM ? "SIGTERM" : "other");
    poll_one(fd, 0, &revents);
    printf("poll after reap: revents %s\n", revents == (POLLIN | POLLHUP) ? "POLLIN|POLLHUP" : "other");
    printf("send after reap: %s\n", err(pidfd_send_signal(fd, SIGTERM, 0, 0)));
    printf("waitid after reap: %s\n", err(waitid(P_PIDFD, fd, &info, WEXITED)));
    printf("send_signal bad flags: %s", err(pidfd_send_signal(fd, 0, 0, 0x100)));
    printf(", not a pidfd: %s\n", err(pidfd_send_signal(1, 0, 0, 0)));
    close(fd);

    /* pidfd_getfd: the child opens a pipe, the parent takes its read end. */
    int p[2], sync[2];
    pipe(sync);
    child = fork();
    if (child == 0) {
        pipe(p);
        write(p[1], "hello", 5);
        int fds[2] = {p[0], p[1]};
        write(sync[1], fds, sizeof fds);
        for (;;)
            pause();
    }
    int fds[2];
    read(sync[0], fds, sizeof fds);
    fd = pidfd_open(child, 0);
    int copy = pidfd_getfd(fd, fds[0], 0);
    char buf[8] = {0};
    read(copy, buf, 5);
    printf("pidfd_getfd: read through the copy: %s\n", buf);
    printf("pidfd_getfd bad flags: %s", err(pidfd_getfd(fd, fds[0], 1)));
    printf(", bad target fd: %s\n", err(pidfd_getfd(fd, 99, 0)));
    kill(child, SIGKILL);
    waitpid(child, 0, 0);
    close(fd);

    /* clone(CLONE_PIDFD): the pidfd comes back through parent_tid. */
    int clone_fd = -1;
    long pid = syscall(SYS_clone, CLONE_PIDFD | SIGCHLD, 0, &clone_fd, 0, 0);
    if (pid == 0)
        _exit(7);
    memset(&info, 0, sizeof info);
    rc = waitid(P_PIDFD, clone_fd, &info, WEXITED);
    printf("clone(CLONE_PIDFD): fd %s, waitid: exit %d\n", clone_fd > 2 ? "ok" : "bad", info.si_status);
    close(clone_fd);
    int same = -1;
    pid = syscall(SYS_clone, CLONE_PIDFD | CLONE_PARENT_SETTID | SIGCHLD, 0, &same, 0, &same);
    if (pid == 0)
        _exit(0);
    printf("clone(CLONE_PIDFD|CLONE_PARENT_SETTID, same slot): %s\n", err(pid));

    /* clone3's pidfd, opened non-blocking through pidfd_open for waitid. */
    int c3fd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD;
    args.pidfd = (uintptr_t)&c3fd;
    args.exit_signal = SIGCHLD;
    pipe(sync);
    pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) {
        char c;
        read(sync[0], &c, 1);
        _exit(9);
    }
    int nb = pidfd_open(pid, PIDFD_NONBLOCK);
    printf("clone3 pidfd: fd %s, nonblocking waitid while alive: %s\n", c3fd > 2 ? "ok" : "bad",
           err(waitid(P_PIDFD, nb, &info, WEXITED)));
    write(sync[1], "x", 1);
    poll_one(c3fd, 5000, &revents);
    memset(&info, 0, sizeof info);
    rc = waitid(P_PIDFD, nb, &info, WEXITED);
    printf("nonblocking waitid after exit: %d exit %d\n", rc, info.si_status);
    return 0;
}
