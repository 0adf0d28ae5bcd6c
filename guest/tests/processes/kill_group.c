/* kill(0, sig) reaches every process of the group, the caller included;
 * kill(-1, sig) every process but the caller. Run it only under emu: on a
 * host these calls reach the caller's whole process group (the test runner)
 * or every process. Expected:
 *   kill(0): parent handler ran 1, children: 2 killed by SIGUSR1
 *   kill(-1): parent handler ran 0, children: 2 killed by SIGUSR2 */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile int handled;

static void on_signal(int signo) {
    (void)signo;
    handled++;
}

static void round_with(pid_t target, int signo, const char *name) {
    handled = 0;
    pid_t children[2];
    for (int i = 0; i < 2; i++) {
        children[i] = fork();
        if (children[i] == 0) {
            signal(SIGUSR1, SIG_DFL);
            signal(SIGUSR2, SIG_DFL);
            struct timespec forever = {1000, 0};
            nanosleep(&forever, 0);
            _exit(0);
        }
    }
    struct timespec settle = {0, 10000000};
    nanosleep(&settle, 0);
    kill(target, signo);
    int killed = 0;
    for (int i = 0; i < 2; i++) {
        int status;
        waitpid(children[i], &status, 0);
        killed += WIFSIGNALED(status) && WTERMSIG(status) == signo;
    }
    printf("%s: parent handler ran %d, children: %d killed by %s\n", target ? "kill(-1)" : "kill(0)", handled,
           killed, name);
}

int main(void) {
    signal(SIGUSR1, on_signal);
    signal(SIGUSR2, on_signal);
    round_with(0, SIGUSR1, "SIGUSR1");
    round_with(-1, SIGUSR2, "SIGUSR2");
    return 0;
}
