/* Children ended by signals, as wait reports them (WIFSIGNALED/WTERMSIG)
 * and as waitid reports them (CLD_KILLED, si_status = the signal), next to
 * a child that exits normally. Expected output: see tests/test_processes.py. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void report(const char *what, pid_t pid) {
    int status = 0;
    pid_t got = waitpid(pid, &status, 0);
    if (WIFSIGNALED(status))
        printf("%s: signaled=1 sig=%d (%s) same_pid=%d\n", what, WTERMSIG(status), sigabbrev_np(WTERMSIG(status)),
               got == pid);
    else
        printf("%s: exited=%d code=%d same_pid=%d\n", what, WIFEXITED(status), WEXITSTATUS(status), got == pid);
}

int main(void) {
    pid_t pid = fork();
    if (pid == 0) {
        volatile int *null = 0;
        *null = 1;               /* SIGSEGV */
        _exit(0);
    }
    report("segfault", pid);

    pid = fork();
    if (pid == 0)
        abort();                 /* SIGABRT through tgkill */
    report("abort", pid);

    pid = fork();
    if (pid == 0) {
        struct timespec long_time = {100, 0};
        nanosleep(&long_time, 0);  /* killed while asleep */
        _exit(3);
    }
    kill(pid, SIGTERM);
    report("sigterm while sleeping", pid);

    pid = fork();
    if (pid == 0) {
        for (;;)
            ;                    /* killed while running */
    }
    struct timespec short_time = {0, 2000000};
    nanosleep(&short_time, 0);
    kill(pid, SIGKILL);
    report("sigkill while running", pid);

    pid = fork();
    if (pid == 0)
        _exit(42);
    report("plain exit", pid);

    pid = fork();
    if (pid == 0)
        raise(SIGUSR1);
    siginfo_t info = {0};
    int rc = waitid(P_PID, pid, &info, WEXITED);
    printf("waitid: rc=%d signo=%d code=%s status=%d same_pid=%d\n", rc, info.si_signo,
           info.si_code == CLD_KILLED ? "CLD_KILLED" : info.si_code == CLD_EXITED ? "CLD_EXITED" : "other",
           info.si_status, info.si_pid == pid);
    return 0;
}
