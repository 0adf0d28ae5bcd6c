/* --uid/--gid: the guest's identity (getuid/getgid, the auxv's AT_UID and
 * AT_GID, the setuid rules around it, si_uid of its children's SIGCHLD), and
 * the owner of what it creates. Checked natively with setpriv --reuid 1234
 * --regid 567.
 * RUN: --uid 1234 --gid 567
 * STDOUT: ids: 1234 1234 567 567, auxv: 1234 567
 * STDOUT: setuid(0): EPERM, setuid(self): ok
 * STDOUT: /tmp file owner: 1234 567
 * STDOUT: pipe owner: 1234 567
 * STDOUT: child's SIGCHLD si_uid: 1234
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long rc) {
    return rc >= 0 ? "ok" : errno == EPERM ? "EPERM" : strerror(errno);
}

int main(void) {
    printf("ids: %d %d %d %d, auxv: %lu %lu\n", getuid(), geteuid(), getgid(), getegid(), getauxval(AT_UID),
           getauxval(AT_GID));
    printf("setuid(0): %s", err(setuid(0)));
    printf(", setuid(self): %s\n", err(setuid(getuid())));
    char path[] = "/tmp/uidXXXXXX";
    int fd = mkstemp(path);
    struct stat st;
    fstat(fd, &st);
    printf("/tmp file owner: %d %d\n", st.st_uid, st.st_gid);
    unlink(path);
    int p[2];
    pipe(p);
    fstat(p[0], &st);
    printf("pipe owner: %d %d\n", st.st_uid, st.st_gid);
    pid_t child = fork();
    if (child == 0)
        _exit(0);
    siginfo_t info;
    waitid(P_PID, child, &info, WEXITED);
    printf("child's SIGCHLD si_uid: %d\n", info.si_uid);
    return 0;
}
