/* A traced child's execve: without PTRACE_O_TRACEEXEC a plain tracee gets a
 * SIGTRAP after the new program is in place; with it, a PTRACE_EVENT_EXEC
 * stop whose message is the tracee's pid (exec_binprm). The new program
 * (this one again through /proc/self/exe) then exits 9.
 * STDOUT: option=0 stopped=1 sig=5 event=0 msg_is_child=0
 * STDOUT: exit=9
 * STDOUT: option=1 stopped=1 sig=5 event=4 msg_is_child=1
 * STDOUT: exit=9
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/wait.h>
#include <unistd.h>
int main(int argc, char **argv) {
    if (argc > 1) return 9;
    setvbuf(stdout, NULL, _IONBF, 0);
    for (int option = 0; option < 2; option++) {
        pid_t child = fork();
        if (child == 0) {
            ptrace(PTRACE_TRACEME, 0, 0, 0);
            raise(SIGSTOP);
            char *args[] = {argv[0], "again", 0};
            execv("/proc/self/exe", args);
            _exit(1);
        }
        int status;
        waitpid(child, &status, 0);
        if (option) ptrace(PTRACE_SETOPTIONS, child, 0, (void *)(long)PTRACE_O_TRACEEXEC);
        ptrace(PTRACE_CONT, child, 0, 0);
        waitpid(child, &status, 0);
        unsigned long msg = 0;
        ptrace(PTRACE_GETEVENTMSG, child, 0, &msg);
        printf("option=%d stopped=%d sig=%d event=%d msg_is_child=%d\n", option, WIFSTOPPED(status), WSTOPSIG(status), status >> 16, msg == (unsigned long)child);
        ptrace(PTRACE_CONT, child, 0, 0);
        waitpid(child, &status, 0);
        printf("exit=%d\n", WEXITSTATUS(status));
    }
    return 0;
}
