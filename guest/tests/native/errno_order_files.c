/*
 * errno_order_files.c -- which error the path calls report when several
 * arguments are wrong at once, as Linux orders its checks: flags and mode
 * before the path, a readlink buffer size before the path, the path before
 * the lookup, getcwd's size before the buffer.
 * Expected output: the same as on Linux; exit status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#define BAD ((void *)16)

static void show(const char *label, long r) {
    printf("%-44s %s\n", label, r < 0 ? strerrorname_np(errno) : "ok");
}

int main(void) {
    struct stat st;
    char buf[8];
    show("newfstatat bad flags, bad path", syscall(SYS_newfstatat, AT_FDCWD, BAD, &st, 0x80000));
    show("newfstatat bad flags, good path", syscall(SYS_newfstatat, AT_FDCWD, "/", &st, 0x80000));
    show("newfstatat good path, bad buffer", syscall(SYS_newfstatat, AT_FDCWD, "/", BAD, 0));
    show("newfstatat empty path without AT_EMPTY_PATH", syscall(SYS_newfstatat, AT_FDCWD, "", &st, 0));
    show("newfstatat AT_EMPTY_PATH on fd 1", syscall(SYS_newfstatat, 1, "", &st, AT_EMPTY_PATH));
    show("newfstatat AT_EMPTY_PATH on a closed fd", syscall(SYS_newfstatat, 99, "", &st, AT_EMPTY_PATH));
    show("faccessat bad mode, bad path", syscall(SYS_faccessat, AT_FDCWD, BAD, 0x10));
    show("faccessat2 bad flags, bad path", syscall(SYS_faccessat2, AT_FDCWD, BAD, R_OK, 0x1));
    show("faccessat2 AT_EMPTY_PATH on fd 0", syscall(SYS_faccessat2, 0, "", R_OK, AT_EMPTY_PATH));
    show("access bad mode, bad path", syscall(SYS_access, BAD, 0x10));
    show("access bad path", syscall(SYS_access, BAD, R_OK));
    show("access missing file", syscall(SYS_access, "/no/such/file", R_OK));
    show("access relative path in a non-dir dirfd", syscall(SYS_faccessat, 1, "x", R_OK));
    show("readlink size 0, bad path", syscall(SYS_readlink, BAD, buf, 0));
    show("readlink negative size, bad path", syscall(SYS_readlink, BAD, buf, -1));
    show("readlinkat size 0, bad path", syscall(SYS_readlinkat, AT_FDCWD, BAD, buf, 0));
    show("readlink of a directory", syscall(SYS_readlink, "/", buf, sizeof buf));
    show("readlink of an empty path", syscall(SYS_readlink, "", buf, sizeof buf));
    show("getcwd size 1, bad buffer", syscall(SYS_getcwd, BAD, 1));
    show("getcwd size 64, bad buffer", syscall(SYS_getcwd, BAD, 64));
    show("open bad path", syscall(SYS_open, BAD, O_RDONLY));
    show("open empty path", syscall(SYS_open, "", O_RDONLY));
    show("openat relative in a closed dirfd", syscall(SYS_openat, 99, "x", O_RDONLY));
    show("openat absolute in a closed dirfd", syscall(SYS_openat, 99, "/dev/null", O_RDONLY));
    show("open /dev/null/x", syscall(SYS_open, "/dev/null/x", O_RDONLY));
    show("open /dev/null O_DIRECTORY", syscall(SYS_open, "/dev/null", O_RDONLY | O_DIRECTORY));
    show("open / for writing", syscall(SYS_open, "/", O_WRONLY));
    show("fstat closed fd", syscall(SYS_fstat, 99, &st));
    show("fstat bad buffer", syscall(SYS_fstat, 1, BAD));
    show("chdir bad path", syscall(SYS_chdir, BAD));
    show("fchdir closed fd", syscall(SYS_fchdir, 99));
    show("dup3 bad flags on a closed fd", syscall(SYS_dup3, 99, 100, 1));
    show("fcntl bad command", syscall(SYS_fcntl, 1, 9999, 0));
    show("fcntl on a closed fd, bad command", syscall(SYS_fcntl, 99, 9999, 0));
    show("ioctl TCGETS on /dev/null", syscall(SYS_ioctl, open("/dev/null", O_RDONLY), 0x5401, buf));
    show("pipe2 bad flags", syscall(SYS_pipe2, BAD, 0x1));
    show("pipe2 bad pointer", syscall(SYS_pipe2, BAD, 0));
    show("read into a bad buffer from /dev/zero", syscall(SYS_read, open("/dev/zero", O_RDONLY), BAD, 8));
    show("write from a bad buffer to /dev/null", syscall(SYS_write, open("/dev/null", O_WRONLY), BAD, 8));
    show("lseek bad whence", syscall(SYS_lseek, 0, 0, 99));
    return 0;
}
