/* vfork: the child borrows the parent's memory and the parent waits until
 * it exits, so the child's store is visible and its output comes first.
 * Expected:
 *   child runs first
 *   parent after child: value=99 status=5 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile int value = 1;

int main(void) {
    pid_t pid = vfork();
    if (pid == 0) {
        value = 99;
        static const char message[] = "child runs first\n";
        write(1, message, strlen(message));
        _exit(5);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    printf("parent after child: value=%d status=%d\n", value, WEXITSTATUS(status));
    return 0;
}
