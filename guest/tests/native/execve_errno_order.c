/*
 * execve_errno_order.c -- execve opens the program (alloc_bprm) before it
 * counts and copies argv: a missing or non-executable file wins over a bad
 * argv pointer; a bad path is EFAULT; AT_EMPTY_PATH on a closed fd is EBADF.
 * Expected output: the same as on Linux; exit status 0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
int main(void) {
    long r = syscall(SYS_execve, "/nonexistent", (void *)16, (void *)16);
    printf("missing file, bad argv: %s\n", strerrorname_np(errno));
    r = syscall(SYS_execve, "/dev/null", (void *)16, NULL);
    printf("device, bad argv: %s\n", strerrorname_np(errno));
    r = syscall(SYS_execve, (void *)16, NULL, NULL);
    printf("bad path: %s\n", strerrorname_np(errno));
    r = syscall(SYS_execveat, -1, "", NULL, NULL, 0x1000);
    printf("execveat AT_EMPTY_PATH on fd -1: %s\n", strerrorname_np(errno));
    (void)r;
    return 0;
}
