/* Process groups and sessions (kernel/sys.c): setsid, setpgid's rules,
 * inheritance on fork, kill(-pgid) and kill(0), waitpid(-pgid) and
 * waitpid(0). Everything runs in a child that first makes its own session,
 * so natively kill(0) reaches nobody outside the test (checked on the host).
 * CPUS: 1 2
 * STDOUT: setsid: leads session 1 group 1
 * STDOUT: setsid again: EPERM
 * STDOUT: setpgid(0,0) as session leader: EPERM
 * STDOUT: child inherits group 1 session 1
 * STDOUT: child setpgid(0,0): own group 1
 * STDOUT: parent moves child back: 0 group 1
 * STDOUT: setpgid(0,-1): EINVAL
 * STDOUT: setpgid(no such pid): ESRCH
 * STDOUT: setpgid(0, missing group): EPERM
 * STDOUT: getpgid/getsid(no such pid): ESRCH ESRCH
 * STDOUT: child setsid: 0, then parent setpgid on it: EPERM
 * STDOUT: kill(-missing): ESRCH
 * STDOUT: kill(-G, SIGUSR1): 0, waitpid(-G) reaped 2 killed by SIGUSR1
 * STDOUT: waitpid(-G) again: ECHILD
 * STDOUT: kill(0, SIGUSR2): 0, self handled 1, waitpid(0) reaped 1 killed by SIGUSR2
 * STDOUT: waitpid(0) then: ECHILD 1
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int handled;
static void on_usr2(int signo) { (void)signo; handled++; }

static const char *err(int rc) {
    if (rc >= 0) return "ok";
    return errno == EPERM ? "EPERM" : errno == ESRCH ? "ESRCH" : errno == EINVAL ? "EINVAL"
         : errno == EACCES ? "EACCES" : errno == ECHILD ? "ECHILD" : strerror(errno);
}

static void nap(void) {
    struct timespec t = {0, 20000000};
    nanosleep(&t, 0);
}

static pid_t sleeper(pid_t group) {
    pid_t pid = fork();
    if (pid == 0) {
        signal(SIGUSR1, SIG_DFL);
        signal(SIGUSR2, SIG_DFL);
        if (group >= 0)
            setpgid(0, group);
        for (;;)
            pause();
    }
    if (group >= 0)
        setpgid(pid, group);          /* both sides, as shells do: whoever runs first */
    return pid;
}

static int body(void) {
    pid_t me = getpid();
    printf("setsid: leads session %d group %d\n", getsid(0) == me, getpgrp() == me);
    printf("setsid again: %s\n", err(setsid()));
    printf("setpgid(0,0) as session leader: %s\n", err(setpgid(0, 0)));

    int up[2], down[2];
    pipe(up);
    pipe(down);
    pid_t child = fork();
    if (child == 0) {
        char c;
        printf("child inherits group %d session %d\n", getpgrp() == me, getsid(0) == me);
        setpgid(0, 0);
        printf("child setpgid(0,0): own group %d\n", getpgrp() == getpid());
        fflush(stdout);
        write(up[1], "x", 1);
        read(down[0], &c, 1);
        _exit(0);
    }
    char c;
    read(up[0], &c, 1);
    int rc = setpgid(child, me);
    printf("parent moves child back: %d group %d\n", rc, getpgid(child) == me);
    printf("setpgid(0,-1): %s\n", err(setpgid(0, -1)));
    printf("setpgid(no such pid): %s\n", err(setpgid(999999, 0)));
    printf("setpgid(0, missing group): %s\n", err(setpgid(0, 999999)));
    printf("getpgid/getsid(no such pid): %s", err(getpgid(999999)));
    printf(" %s\n", err(getsid(999999)));
    write(down[1], "x", 1);
    waitpid(child, 0, 0);

    /* A child that makes its own session can no longer be moved. */
    child = fork();
    if (child == 0) {
        int r = setsid();
        write(up[1], &r, sizeof r);
        read(down[0], &c, 1);
        _exit(0);
    }
    int child_rc;
    read(up[0], &child_rc, sizeof child_rc);
    printf("child setsid: %d, then parent setpgid on it: %s\n", child_rc == child ? 0 : -1, err(setpgid(child, me)));
    write(down[1], "x", 1);
    waitpid(child, 0, 0);

    printf("kill(-missing): %s\n", err(kill(-999999, 0)));

    /* Group G: two sleepers; an outsider stays in our group for kill(0). */
    pid_t g1 = sleeper(0);
    pid_t g2 = sleeper(g1);
    pid_t outsider = sleeper(-1);
    nap();
    rc = kill(-g1, SIGUSR1);
    int reaped = 0, killed = 0, status;
    pid_t got;
    while ((got = waitpid(-g1, &status, 0)) > 0) {
        reaped++;
        killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR1 && (got == g1 || got == g2);
    }
    printf("kill(-G, SIGUSR1): %d, waitpid(-G) reaped %d killed by SIGUSR1\n", rc, reaped);
    (void)killed;
    printf("waitpid(-G) again: %s\n", err(waitpid(-g1, &status, 0)));

    signal(SIGUSR2, on_usr2);
    rc = kill(0, SIGUSR2);
    reaped = killed = 0;
    while ((got = waitpid(0, &status, 0)) > 0) {
        reaped++;
        killed += WIFSIGNALED(status) && WTERMSIG(status) == SIGUSR2;
    }
    printf("kill(0, SIGUSR2): %d, self handled %d, waitpid(0) reaped %d killed by SIGUSR2\n", rc, handled, killed);
    printf("waitpid(0) then: ECHILD %d\n", got < 0 && errno == ECHILD && outsider > 0);
    return 0;
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    pid_t pid = fork();
    if (pid == 0) {
        if (setsid() < 0)
            _exit(10);
        _exit(body());
    }
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}
