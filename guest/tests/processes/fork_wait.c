/* Fork N children that each compute a sum and exit with it (mod 256); the
 * parent waits for each by pid and prints what it computed and what wait
 * reported. Expected output (N = 5):
 *   child 0: sum=0 status=0 pid_ok=1 ppid_ok=1
 *   child 1: sum=5050 status=186 pid_ok=1 ppid_ok=1
 *   ... (see tests/test_processes.py)
 *   no more children: ECHILD
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILDREN 5

static long shared_before_fork = 7;

static long triangle(long n) {
    long sum = 0;
    for (long i = 1; i <= n; i++)
        sum += i;
    return sum;
}

int main(void) {
    pid_t pids[CHILDREN];
    int pipe_unused = 0;
    pid_t parent = getpid();
    for (int i = 0; i < CHILDREN; i++) {
        pids[i] = fork();
        if (pids[i] < 0) {
            perror("fork");
            return 1;
        }
        if (pids[i] == 0) {
            /* The child's memory is a copy: this write stays in the child. */
            shared_before_fork = 1000 + i;
            long sum = triangle(100L * i);
            int ok = getppid() == parent && getpid() != parent;
            _exit(ok ? (int)(sum % 251) : 255);
        }
    }
    for (int i = 0; i < CHILDREN; i++) {
        int status = 0;
        pid_t got = waitpid(pids[i], &status, 0);
        printf("child %d: sum=%ld exited=%d status=%d pid_ok=%d\n", i, triangle(100L * i),
               WIFEXITED(status), WEXITSTATUS(status), got == pids[i]);
    }
    errno = 0;
    pid_t none = wait(NULL);
    printf("no more children: %s, parent's variable still %ld%s\n", none == -1 && errno == ECHILD ? "ECHILD" : "??",
           shared_before_fork, pipe_unused ? "" : "");
    return 0;
}
