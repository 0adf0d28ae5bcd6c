/* "Many short processes": ROUNDS times fork a child that touches a few
 * fresh heap and stack pages and exits with round % 256; the parent waits
 * for it and checks the status. Expected: "rounds=200 ok=200 checksum=...". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
    int rounds = argc > 1 ? atoi(argv[1]) : 200;
    int ok = 0;
    long checksum = 0;
    for (int round = 0; round < rounds; round++) {
        pid_t pid = fork();
        if (pid < 0) {
            perror("fork");
            return 1;
        }
        if (pid == 0) {
            char *scratch = malloc(64 * 1024);
            memset(scratch, round & 0xFF, 64 * 1024);
            volatile char stack_pages[3 * 4096];
            stack_pages[0] = scratch[100];
            _exit((stack_pages[0] + round) & 0xFF);
        }
        int status;
        if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == ((2 * round) & 0xFF))
            ok++;
        checksum = checksum * 31 + WEXITSTATUS(status);
    }
    printf("rounds=%d ok=%d checksum=%ld\n", rounds, ok, checksum);
    return ok == rounds ? 0 : 1;
}
