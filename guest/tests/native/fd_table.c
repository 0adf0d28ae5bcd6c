/*
 * fd_table.c -- the fd table (fs/file.c, fs/fcntl.c), /dev and the working
 * directory as Linux has them in every process.
 *
 * dup/dup2/dup3 (lowest free fd, EBADF/EINVAL cases, close-on-exec only on
 * the new fd), F_DUPFD/F_DUPFD_CLOEXEC from a minimum, F_GETFL/F_SETFL
 * (O_NONBLOCK changes, the access mode does not), close_range; /dev/null,
 * /dev/zero, /dev/full, /dev/urandom reads and writes and their stat;
 * chdir/fchdir/getcwd (ERANGE) with a relative open; sendfile from
 * /dev/zero into a pipe; stdout redirected to a pipe and back.
 * Expected output: the same as on Linux; exit status 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(long r) { return r < 0 ? strerrorname_np(errno) : "ok"; }

int main(void) {
    int fd = dup(1);
    printf("dup(1) = %d cloexec=%d\n", fd, fcntl(fd, F_GETFD));
    long r = dup2(fd, fd);
    printf("dup2 same fd: %ld\n", r);
    r = dup3(fd, fd, 0);
    printf("dup3 same fd: %s\n", err(r));
    r = dup2(fd, 40);
    printf("dup2 onto 40: %ld\n", r);
    r = dup3(fd, 41, O_CLOEXEC);
    printf("dup3 O_CLOEXEC onto 41: %ld cloexec=%d, 40 cloexec=%d\n", r, fcntl(41, F_GETFD), fcntl(40, F_GETFD));
    r = dup2(55, 56);
    printf("dup2 of closed fd: %s\n", err(r));
    r = dup3(fd, 42, 1);
    printf("dup3 bad flags: %s\n", err(r));
    r = dup2(fd, -1);
    printf("dup2 to -1: %s\n", err(r));
    r = fcntl(1, F_DUPFD, 10);
    printf("F_DUPFD from 10: %ld\n", r);
    r = fcntl(1, F_DUPFD_CLOEXEC, 10);
    printf("F_DUPFD_CLOEXEC from 10: %ld cloexec=%d\n", r, fcntl(r, F_GETFD));
    printf("F_DUPFD beyond RLIMIT_NOFILE: %s\n", err(fcntl(1, F_DUPFD, 1 << 20)));
    int flags = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, flags | O_NONBLOCK | O_RDONLY);
    printf("F_SETFL O_NONBLOCK: %d, access mode unchanged: %d\n", !!(fcntl(fd, F_GETFL) & O_NONBLOCK),
           (fcntl(fd, F_GETFL) & O_ACCMODE) == (flags & O_ACCMODE));
    r = syscall(SYS_close_range, 40, 42, 0);
    printf("close_range(40, 42): %ld\n", r);
    r = fcntl(40, F_GETFD);
    printf("fd 40 afterwards: %s\n", err(r));
    syscall(SYS_close_range, 10, 11, 4 /* CLOSE_RANGE_CLOEXEC */);
    printf("close_range CLOEXEC: fd 10 cloexec=%d\n", fcntl(10, F_GETFD));
    r = close(10);
    printf("close: %ld\n", r);
    r = close(10);
    printf("close again: %s\n", err(r));

    char buf[16];
    int null = open("/dev/null", O_RDWR);
    r = write(null, "abc", 3);
    printf("/dev/null: write %ld, read %zd\n", r, read(null, buf, sizeof buf));
    struct stat st;
    fstat(null, &st);
    printf("/dev/null: chr=%d rdev=%u:%u mode=%o\n", S_ISCHR(st.st_mode), major(st.st_rdev), minor(st.st_rdev),
           st.st_mode & 0777);
    int zero = open("/dev/zero", O_RDONLY);
    memset(buf, 0x55, sizeof buf);
    printf("/dev/zero: read %zd first=%d last=%d\n", read(zero, buf, sizeof buf), buf[0], buf[15]);
    int full = open("/dev/full", O_WRONLY);
    r = write(full, "x", 1);
    printf("/dev/full: write %ld %s\n", r, err(r));
    int urandom = open("/dev/urandom", O_RDONLY);
    printf("/dev/urandom: read %zd\n", read(urandom, buf, sizeof buf));
    printf("/dev/nonexistent: %s\n", err(open("/dev/nonexistent", O_RDONLY)));
    printf("stat /dev/zero: %d chr=%d\n", stat("/dev/zero", &st), S_ISCHR(st.st_mode));
    printf("lseek /dev/null: %ld\n", (long)lseek(null, 100, SEEK_SET));

    char cwd[64];
    printf("chdir /dev: %d\n", chdir("/dev"));
    printf("getcwd: %s\n", getcwd(cwd, sizeof cwd));
    int rel = open("null", O_WRONLY);
    printf("relative open of null: %s\n", err(rel));
    errno = 0;
    char *small = getcwd(cwd, 3);
    printf("getcwd into 3 bytes: %s %s\n", small ? small : "NULL", strerrorname_np(errno));
    r = chdir("/dev/null");
    printf("chdir to a file: %s\n", err(r));
    r = chdir("/nonexistent");
    printf("chdir to a missing dir: %s\n", err(r));
    int root = open("/", O_RDONLY | O_DIRECTORY);
    r = fchdir(root);
    printf("fchdir(/): %ld getcwd: %s\n", r, getcwd(cwd, sizeof cwd));
    printf("fchdir(a device): %s\n", err(fchdir(null)));

    int p[2];
    pipe(p);
    r = sendfile(p[1], zero, NULL, 1000);
    printf("sendfile /dev/zero -> pipe: %ld\n", r);
    printf("read back: %zd\n", read(p[0], buf, sizeof buf));
    off_t offset = 5;
    r = sendfile(p[1], p[0], &offset, 10);
    printf("sendfile with offset from a pipe: %s\n", err(r));
    fflush(stdout);
    int saved = dup(1);
    dup2(p[1], 1);
    printf("into the pipe\n");
    fflush(stdout);
    dup2(saved, 1);
    char line[64] = {0};
    size_t drained = sizeof buf;                 /* 16 of the 1000 zero bytes were read above */
    while (drained < 1000) {
        ssize_t n = read(p[0], line, 1000 - drained < sizeof line ? 1000 - drained : sizeof line);
        if (n <= 0) break;
        drained += n;
    }
    memset(line, 0, sizeof line);
    ssize_t n = read(p[0], line, sizeof line - 1);
    printf("stdout restored; the pipe carried %zd bytes: %s", n, line);
    return 0;
}
