/* Namespaces as on a Linux built without CONFIG_USER_NS, for a user without
 * CAP_SYS_ADMIN: a user namespace is EINVAL (create_user_ns/unshare_userns),
 * every other namespace EPERM (copy_namespaces), through clone, clone3 and
 * unshare; unshare of what is not shared succeeds. The host here allows
 * unprivileged user namespaces, so this is emu's documented choice, not the
 * host's output (natively as uid 1000 the CLONE_NEWUSER lines succeed).
 * STDOUT: unshare(0): ok
 * STDOUT: unshare(CLONE_FILES|CLONE_FS|CLONE_SYSVSEM): ok
 * STDOUT: unshare(CLONE_NEWUSER): EINVAL
 * STDOUT: unshare(CLONE_NEWNS): EPERM
 * STDOUT: unshare(CLONE_NEWNET): EPERM
 * STDOUT: unshare(bit 0): EINVAL
 * STDOUT: clone(CLONE_NEWUSER): EINVAL
 * STDOUT: clone(CLONE_NEWPID): EPERM
 * STDOUT: clone3(CLONE_NEWUSER): EINVAL
 * STDOUT: unshare(CLONE_VM) with a second thread: EINVAL
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/sched.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    return errno == EINVAL ? "EINVAL" : errno == EPERM ? "EPERM" : strerror(errno);
}

static void *idle(void *arg) {
    pause();
    return arg;
}

int main(void) {
    printf("unshare(0): %s\n", err(unshare(0)));
    printf("unshare(CLONE_FILES|CLONE_FS|CLONE_SYSVSEM): %s\n", err(unshare(CLONE_FILES | CLONE_FS | CLONE_SYSVSEM)));
    printf("unshare(CLONE_NEWUSER): %s\n", err(unshare(CLONE_NEWUSER)));
    printf("unshare(CLONE_NEWNS): %s\n", err(unshare(CLONE_NEWNS)));
    printf("unshare(CLONE_NEWNET): %s\n", err(unshare(CLONE_NEWNET)));
    printf("unshare(bit 0): %s\n", err(unshare(1)));
    printf("clone(CLONE_NEWUSER): %s\n", err(syscall(SYS_clone, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)));
    printf("clone(CLONE_NEWPID): %s\n", err(syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0)));
    struct clone_args a;
    memset(&a, 0, sizeof a);
    a.flags = CLONE_NEWUSER;
    a.exit_signal = SIGCHLD;
    printf("clone3(CLONE_NEWUSER): %s\n", err(syscall(SYS_clone3, &a, sizeof a)));
    pthread_t t;
    pthread_create(&t, 0, idle, 0);
    printf("unshare(CLONE_VM) with a second thread: %s\n", err(unshare(CLONE_VM)));
    return 0;
}
