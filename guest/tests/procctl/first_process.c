/* The process emu starts is a job as a job-control shell runs one: the
 * leader of its own process group, not of its session. Natively: run as a
 * shell job (fork, setpgid(0, 0), exec), which gives the same lines.
 * STDOUT: group leader 1, session leader 0
 * STDOUT: setpgid(0,0): ok, setsid: EPERM
 * STDOUT: child: setsid ok, now leads session 1
 * STDOUT: kill(0, 0): ok
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long rc) { return rc >= 0 ? "ok" : errno == EPERM ? "EPERM" : strerror(errno); }

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    printf("group leader %d, session leader %d\n", getpgrp() == getpid(), getsid(0) == getpid());
    printf("setpgid(0,0): %s", err(setpgid(0, 0)));
    printf(", setsid: %s\n", err(setsid()));
    pid_t child = fork();
    if (child == 0) {
        pid_t sid = setsid();
        printf("child: setsid %s, now leads session %d\n", err(sid), getsid(0) == getpid());
        _exit(0);
    }
    waitpid(child, 0, 0);
    printf("kill(0, 0): %s\n", err(kill(0, 0)));
    return 0;
}
