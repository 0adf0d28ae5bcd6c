/* Signal-delivery-stops: every signal the traced child receives stops it
 * first, and what the tracer passes to PTRACE_CONT is what gets delivered --
 * the same signal (the handler runs), nothing (a fatal SIGUSR2 suppressed),
 * another signal (SIGUSR2 with a fresh SI_USER siginfo naming the tracer),
 * and a signal rewritten with PTRACE_SETSIGINFO. A signal that interrupts a
 * traced child's pause(2) shows -ERESTARTNOHAND at the exit stop; suppressed,
 * the call restarts (a new entry stop). PTRACE_DETACH with a signal delivers it.
 * CPUS: 1 2
 * STDOUT: stop 1 sig=10 code=-6
 * STDOUT: stop 2 sig=12 code=-6
 * STDOUT: stop 3 sig=10 code=-6
 * STDOUT: stop 4 sig=10 code=-6
 * STDOUT: pause entry nr=34
 * STDOUT: pause exit rax=-514
 * STDOUT: stop sig=14
 * STDOUT: pause entry again nr=34
 * STDOUT: child usr1=2 last_value=77 usr2=1 usr2_code=0 usr2_from_parent=1 alarm=1
 * STDOUT: exited status=3
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int usr1, usr2, usr2_code, usr2_pid, last_value, alarms;

static void on_usr1(int signo, siginfo_t *info, void *context) {
    usr1++;
    last_value = info->si_value.sival_int;
}

static void on_usr2(int signo, siginfo_t *info, void *context) {
    usr2++;
    usr2_code = info->si_code;
    usr2_pid = info->si_pid;
}

static void on_alarm(int signo) { alarms++; }

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_flags = SA_SIGINFO;
        sa.sa_sigaction = on_usr1;
        sigaction(SIGUSR1, &sa, 0);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGUSR1);                 /* delivered as is */
        raise(SIGUSR2);                 /* default action fatal: suppressed by the tracer */
        sa.sa_sigaction = on_usr2;
        sigaction(SIGUSR2, &sa, 0);
        raise(SIGUSR1);                 /* the tracer turns it into SIGUSR2 */
        raise(SIGUSR1);                 /* the tracer rewrites its siginfo (si_value 77) */
        signal(SIGALRM, SIG_IGN);
        syscall(SYS_pause);             /* the tracer sends SIGALRM (ignored): restarted */
        signal(SIGALRM, on_alarm);
        raise(SIGALRM);                 /* delivered at the detach */
        printf("child usr1=%d last_value=%d usr2=%d usr2_code=%d usr2_from_parent=%d alarm=%d\n", usr1,
               last_value, usr2, usr2_code, usr2_pid == parent, alarms);
        _exit(3);
    }
    int status;
    siginfo_t info;
    for (int stop = 1; stop <= 4; stop++) {
        if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
            return 10;
        ptrace(PTRACE_GETSIGINFO, child, 0, &info);
        printf("stop %d sig=%d code=%d\n", stop, WSTOPSIG(status), info.si_code);
        long inject = WSTOPSIG(status);
        if (stop == 2)
            inject = 0;
        if (stop == 3)
            inject = SIGUSR2;
        if (stop == 4) {
            info.si_value.sival_int = 77;
            info.si_code = SI_QUEUE;
            ptrace(PTRACE_SETSIGINFO, child, 0, &info);
            ptrace(PTRACE_SYSCALL, child, 0, (void *)inject);
            break;
        }
        ptrace(PTRACE_CONT, child, 0, (void *)inject);
    }
    struct user_regs_struct regs;
    /* Syscall stops up to pause(2)'s entry. */
    for (;;) {
        if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
            return 11;
        ptrace(PTRACE_GETREGS, child, 0, &regs);
        if (regs.orig_rax == SYS_pause)
            break;
        ptrace(PTRACE_SYSCALL, child, 0, 0);
    }
    printf("pause entry nr=%lld\n", (long long)regs.orig_rax);
    kill(child, SIGALRM);
    ptrace(PTRACE_SYSCALL, child, 0, 0);
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
        return 12;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    printf("pause exit rax=%lld\n", (long long)regs.rax);
    ptrace(PTRACE_SYSCALL, child, 0, 0);
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
        return 13;
    printf("stop sig=%d\n", WSTOPSIG(status));
    ptrace(PTRACE_SYSCALL, child, 0, 0);     /* suppressed: pause restarts */
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
        return 14;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    printf("pause entry again nr=%lld\n", (long long)regs.orig_rax);
    /* Skip the restarted pause and run to the raise(SIGALRM) stop. */
    regs.orig_rax = -1;
    regs.rax = 0;
    ptrace(PTRACE_SETREGS, child, 0, &regs);
    for (;;) {
        ptrace(PTRACE_CONT, child, 0, 0);
        if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
            return 15;
        if (WSTOPSIG(status) == SIGALRM)
            break;
    }
    ptrace(PTRACE_DETACH, child, 0, (void *)SIGALRM);
    if (waitpid(child, &status, 0) != child)
        return 16;
    printf("exited status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
