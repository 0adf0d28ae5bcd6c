/* A program copied into /tmp (the in-memory tmpfs without --fs) and run
 * from there with execve: the exec reads the tmpfs file; without the
 * execute bit it is EACCES. Checked natively on the host.
 * STDOUT: without x bit: EACCES
 * STDOUT: copy running from /tmp: argv[1]=again
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int main(int argc, char **argv) {
    if (argc > 1) {
        printf("copy running from /tmp: argv[1]=%s\n", argv[1]);
        return 0;
    }
    setvbuf(stdout, 0, _IONBF, 0);
    char path[] = "/tmp/execXXXXXX";
    int out = mkstemp(path);
    int in = open("/proc/self/exe", O_RDONLY);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0)
        write(out, buf, n);
    close(in);
    close(out);
    char *args[] = {path, "again", 0};
    char *env[] = {0};
    execve(path, args, env);
    printf("without x bit: %s\n", errno == EACCES ? "EACCES" : strerror(errno));
    chmod(path, 0700);
    execve(path, args, env);
    printf("execve: %s\n", strerror(errno));
    return 1;
}
