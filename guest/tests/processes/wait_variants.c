/* wait's corners: WNOHANG while the child lives, SIGCHLD with a handler
 * (si_code, si_status, si_pid), ignored SIGCHLD reaping children at once
 * (wait then fails with ECHILD), waiting for a pid that is not a child, and
 * a fork through clone3, kill(pid, 0) on a zombie and on a reaped pid. Expected output: see tests/test_processes.py. */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int chld_code, chld_status, chld_pid, chld_count;

static void on_sigchld(int signo, siginfo_t *info, void *context) {
    (void)signo;
    (void)context;
    chld_code = info->si_code;
    chld_status = info->si_status;
    chld_pid = info->si_pid;
    chld_count++;
}

int main(void) {
    int status;
    pid_t pid = fork();
    if (pid == 0) {
        struct timespec nap = {0, 50000000};
        nanosleep(&nap, 0);
        _exit(9);
    }
    pid_t early = waitpid(pid, &status, WNOHANG);
    pid_t late = waitpid(pid, &status, 0);
    printf("WNOHANG: early=%d late_is_child=%d code=%d\n", early, late == pid, WEXITSTATUS(status));

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_sigchld;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGCHLD, &action, 0);
    pid = fork();
    if (pid == 0)
        _exit(17);
    waitpid(pid, &status, 0);
    printf("SIGCHLD handler: count=%d code=%s status=%d pid_ok=%d\n", chld_count,
           chld_code == CLD_EXITED ? "CLD_EXITED" : "other", chld_status, chld_pid == pid);

    /* Another child's SIGCHLD arrives while waitpid sleeps: with SA_RESTART
     * the call goes on after the handler, without it it fails with EINTR. */
    for (int restart = 1; restart >= 0; restart--) {
        action.sa_flags = SA_SIGINFO | (restart ? SA_RESTART : 0);
        sigaction(SIGCHLD, &action, 0);
        chld_count = 0;
        pid_t slow = fork();
        if (slow == 0) {
            struct timespec nap = {0, 60000000};
            nanosleep(&nap, 0);
            _exit(5);
        }
        pid_t quick = fork();
        if (quick == 0) {
            /* Late enough that the parent already sleeps in waitpid. */
            struct timespec nap = {0, 10000000};
            nanosleep(&nap, 0);
            _exit(6);
        }
        errno = 0;
        pid_t got = waitpid(slow, &status, 0);
        printf("%s: waitpid(slow) %s, handler ran %d\n", restart ? "SA_RESTART" : "no SA_RESTART",
               got == slow ? (WEXITSTATUS(status) == 5 ? "returned it, code 5" : "bad code")
                           : errno == EINTR ? "EINTR" : strerror(errno), chld_count > 0);
        while (waitpid(-1, &status, 0) > 0)
            ;
    }

    signal(SIGCHLD, SIG_IGN);
    pid = fork();
    if (pid == 0)
        _exit(1);
    errno = 0;
    pid_t reaped = waitpid(pid, &status, 0);
    printf("SIG_IGN autoreap: waitpid=%d errno=%s\n", reaped, errno == ECHILD ? "ECHILD" : strerror(errno));
    signal(SIGCHLD, SIG_DFL);

    errno = 0;
    pid_t stranger = waitpid(getpid(), &status, WNOHANG);
    printf("not a child: %d %s\n", stranger, errno == ECHILD ? "ECHILD" : strerror(errno));

    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    long child = syscall(SYS_clone3, &args, sizeof args);
    if (child == 0)
        _exit(33);
    pid_t got = waitpid(child, &status, 0);
    printf("clone3 fork: same_pid=%d code=%d\n", got == child, WEXITSTATUS(status));

    pid = fork();
    if (pid == 0)
        _exit(0);
    struct timespec nap = {0, 20000000};
    nanosleep(&nap, 0);
    int zombie_rc = kill(pid, 0);
    waitpid(pid, &status, 0);
    errno = 0;
    int reaped_rc = kill(pid, 0);
    printf("kill(zombie, 0)=%d, after reaping=%d %s\n", zombie_rc, reaped_rc, errno == ESRCH ? "ESRCH" : "??");

    pid = fork();
    if (pid == 0)
        _exit(4);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    int rc = waitid(P_ALL, 0, &info, WEXITED | WNOWAIT);
    int rc2 = waitpid(pid, &status, 0) == pid;
    printf("waitid WNOWAIT: rc=%d code=%s status=%d then waitpid=%d code=%d\n", rc,
           info.si_code == CLD_EXITED ? "CLD_EXITED" : "other", info.si_status, rc2, WEXITSTATUS(status));
    return 0;
}
