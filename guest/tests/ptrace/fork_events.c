/* PTRACE_O_TRACEFORK, TRACEVFORK and TRACEVFORKDONE on a TRACEME child that
 * forks and vforks: one event stop of each kind in the child, both new
 * processes traced from birth (each starts with a SIGSTOP stop), and the
 * tracer's waitpid(-1, __WALL) sees the three exits.
 * CPUS: 1 2
 * STDOUT: child exit 6
 * STDOUT: fork=1 vfork=1 vforkdone=1 newstops=2 exits=3
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        pid_t g = fork();
        if (g == 0) _exit(4);
        waitpid(g, 0, 0);
        pid_t v = vfork();
        if (v == 0) _exit(5);
        waitpid(v, 0, 0);
        _exit(6);
    }
    int status;
    waitpid(child, &status, 0);
    ptrace(PTRACE_SETOPTIONS, child, 0, (void *)(long)(PTRACE_O_TRACEFORK | PTRACE_O_TRACEVFORK | PTRACE_O_TRACEVFORKDONE));
    ptrace(PTRACE_CONT, child, 0, 0);
    int events[8] = {0}, stops = 0, exits = 0;
    for (;;) {
        pid_t who = waitpid(-1, &status, __WALL);
        if (who < 0) break;
        if (WIFEXITED(status)) { exits++; if (who == child) { printf("child exit %d\n", WEXITSTATUS(status)); } continue; }
        int ev = status >> 16;
        if (ev) events[ev]++; else if (WSTOPSIG(status) == SIGSTOP && who != child) stops++;
        ptrace(PTRACE_CONT, who, 0, 0);
    }
    printf("fork=%d vfork=%d vforkdone=%d newstops=%d exits=%d\n", events[1], events[2], events[5], stops, exits);
    return 0;
}
