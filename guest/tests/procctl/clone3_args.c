/* clone3's struct clone_args checks as kernel/fork.c's
 * copy_clone_args_from_user and clone3_args_valid make them, clone's flag
 * consistency rules, and CLONE_CLEAR_SIGHAND (handlers reset in the child,
 * ignored signals stay ignored). Checked natively on the host.
 * STDOUT: size 63: EINVAL
 * STDOUT: size 4097: E2BIG
 * STDOUT: size 4096 with a zero tail: forks, child exit 3
 * STDOUT: size 96 with a non-zero tail byte: E2BIG
 * STDOUT: CSIGNAL bits in flags: EINVAL
 * STDOUT: CLONE_DETACHED: EINVAL
 * STDOUT: exit_signal 65: EINVAL, high bits: EINVAL
 * STDOUT: stack without size: EINVAL, size without stack: EINVAL
 * STDOUT: CLONE_SIGHAND|CLONE_CLEAR_SIGHAND: EINVAL
 * STDOUT: CLONE_THREAD with exit_signal: EINVAL
 * STDOUT: set_tid_size without set_tid: EINVAL, set_tid_size 33: EINVAL
 * STDOUT: unknown flag bit 40: EINVAL
 * STDOUT: clone(CLONE_THREAD) without CLONE_SIGHAND: EINVAL
 * STDOUT: clone(CLONE_SIGHAND) without CLONE_VM: EINVAL
 * STDOUT: clone(CLONE_NEWNS|CLONE_FS): EINVAL
 * STDOUT: CLONE_CLEAR_SIGHAND: child sees SIGUSR1 default 1, SIGUSR2 ignored 1; parent keeps its handler 1
 * STDOUT: without it: child keeps the handler 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLONE_CLEAR_SIGHAND
#define CLONE_CLEAR_SIGHAND 0x100000000ULL
#endif

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    return errno == EINVAL ? "EINVAL" : errno == E2BIG ? "E2BIG" : errno == EPERM ? "EPERM" : strerror(errno);
}

static unsigned char buf[8192] __attribute__((aligned(64)));

static long clone3_raw(struct clone_args *args, size_t size) {
    memset(buf, 0, sizeof buf);
    memcpy(buf, args, sizeof *args < size ? sizeof *args : size);
    return syscall(SYS_clone3, buf, size);
}

static struct clone_args fork_args(void) {
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.exit_signal = SIGCHLD;
    return a;
}

static void on_signal(int signo) { (void)signo; }

static int handler_is(int signo, void (*h)(int)) {
    struct sigaction sa;
    sigaction(signo, 0, &sa);
    return sa.sa_handler == h;
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    struct clone_args a = fork_args();
    printf("size 63: %s\n", err(clone3_raw(&a, 63)));
    printf("size 4097: %s\n", err(clone3_raw(&a, 4097)));
    long pid = clone3_raw(&a, 4096);
    if (pid == 0)
        _exit(3);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("size 4096 with a zero tail: forks, child exit %d\n", WEXITSTATUS(status));
    memset(buf, 0, sizeof buf);
    memcpy(buf, &a, sizeof a);
    buf[95] = 1;
    printf("size 96 with a non-zero tail byte: %s\n", err(syscall(SYS_clone3, buf, 96)));

    a = fork_args();
    a.flags = SIGCHLD;
    printf("CSIGNAL bits in flags: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.flags = 0x00400000;   /* CLONE_DETACHED */
    printf("CLONE_DETACHED: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.exit_signal = 65;
    printf("exit_signal 65: %s", err(clone3_raw(&a, sizeof a)));
    a.exit_signal = SIGCHLD | (1ULL << 32);
    printf(", high bits: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.stack = (uintptr_t)buf;
    printf("stack without size: %s", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.stack_size = 4096;
    printf(", size without stack: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.flags = CLONE_SIGHAND | CLONE_VM | CLONE_CLEAR_SIGHAND;
    printf("CLONE_SIGHAND|CLONE_CLEAR_SIGHAND: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.flags = CLONE_THREAD | CLONE_SIGHAND | CLONE_VM;
    printf("CLONE_THREAD with exit_signal: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.set_tid_size = 1;
    printf("set_tid_size without set_tid: %s", err(clone3_raw(&a, sizeof a)));
    pid_t tids[40] = {0};
    a.set_tid = (uintptr_t)tids;
    a.set_tid_size = 33;
    printf(", set_tid_size 33: %s\n", err(clone3_raw(&a, sizeof a)));
    a = fork_args();
    a.flags = 1ULL << 40;
    printf("unknown flag bit 40: %s\n", err(clone3_raw(&a, sizeof a)));

    printf("clone(CLONE_THREAD) without CLONE_SIGHAND: %s\n",
           err(syscall(SYS_clone, CLONE_THREAD | CLONE_VM, buf + 4096, 0, 0, 0)));
    printf("clone(CLONE_SIGHAND) without CLONE_VM: %s\n", err(syscall(SYS_clone, CLONE_SIGHAND | SIGCHLD, 0, 0, 0, 0)));
    printf("clone(CLONE_NEWNS|CLONE_FS): %s\n", err(syscall(SYS_clone, CLONE_NEWNS | CLONE_FS | SIGCHLD, 0, 0, 0, 0)));

    signal(SIGUSR1, on_signal);
    signal(SIGUSR2, SIG_IGN);
    a = fork_args();
    a.flags = CLONE_CLEAR_SIGHAND;
    pid = clone3_raw(&a, sizeof a);
    if (pid == 0)
        _exit(handler_is(SIGUSR1, SIG_DFL) * 2 + handler_is(SIGUSR2, SIG_IGN));
    waitpid(pid, &status, 0);
    printf("CLONE_CLEAR_SIGHAND: child sees SIGUSR1 default %d, SIGUSR2 ignored %d; parent keeps its handler %d\n",
           WEXITSTATUS(status) >> 1, WEXITSTATUS(status) & 1, handler_is(SIGUSR1, on_signal));
    a = fork_args();
    pid = clone3_raw(&a, sizeof a);
    if (pid == 0)
        _exit(handler_is(SIGUSR1, on_signal));
    waitpid(pid, &status, 0);
    printf("without it: child keeps the handler %d\n", WEXITSTATUS(status));
    return 0;
}
