/* The file-namespace calls on a writable tree (fs/namei.c, fs/open.c,
 * fs/utimes.c): mkdir(at), rmdir, unlink(at), rename(at)2 with its flags,
 * link(at), symlink(at)/readlink, mknod(at) for a FIFO carried by a kernel
 * pipe, truncate/ftruncate, chmod/fchmod(at), chown/fchown to the caller's
 * own ids, utimensat/futimesat; each with Linux's errors. argv[1] is the
 * directory to work in (the --fs-rw root here; /tmp in tmpfs_calls.c).
 * Checked natively on the host as uid 1000 in an empty directory it owns.
 * FS-RW: -
 * ARGS: .
 * CPUS: 1 2
 * STDOUT: mkdir: ok, again: EEXIST, "." : EEXIST, missing parent: ENOENT, trailing slash: ok
 * STDOUT: mkdirat(dirfd): ok, stat: dir 1 mode 0750
 * STDOUT: rmdir ".": EINVAL, "..": ENOTEMPTY, non-empty: ENOTEMPTY, a file: ENOTDIR, missing: ENOENT
 * STDOUT: unlink a directory: EISDIR, trailing slash on a file: ENOTDIR, unlinkat bad flag: EINVAL
 * STDOUT: unlinkat(AT_REMOVEDIR): ok, unlink: ok, gone: ENOENT
 * STDOUT: rename: ok, contents kept: abc, old name: ENOENT
 * STDOUT: rename dir onto file: ENOTDIR, file onto dir: EISDIR, dir into itself: EINVAL, onto non-empty dir: ENOTEMPTY
 * STDOUT: renameat2 NOREPLACE onto existing: EEXIST, EXCHANGE: ok swapped 1, EXCHANGE|NOREPLACE: EINVAL, WHITEOUT: ok
 * STDOUT: link: ok nlink 2, to a directory: EPERM, onto existing: EEXIST
 * STDOUT: symlink: ok, readlink: target-name, lstat is link 1, through it: abc
 * STDOUT: readlink of a file: EINVAL, symlink onto existing: EEXIST
 * STDOUT: mknod FIFO: ok, is fifo 1; directory type: EPERM, char device: EPERM, bad type: EINVAL
 * STDOUT: FIFO: reader got "through the fifo", O_WRONLY|O_NONBLOCK without reader: ENXIO
 * STDOUT: mknod regular: ok size 0, mkfifo again: EEXIST
 * STDOUT: truncate: ok size 10, grows to 8192 with zeros 1, directory: EISDIR, negative: EINVAL
 * STDOUT: ftruncate: ok size 3, read-only fd: EINVAL, pipe: EINVAL
 * STDOUT: chmod: ok mode 0604, fchmod: ok mode 0640, fchmodat: ok mode 0600
 * STDOUT: chown to own ids: ok, fchown -1/-1: ok, lchown on a link: ok
 * STDOUT: utimensat: ok mtime 1000000000.5 atime 2000000000.25, UTIME_OMIT keeps mtime 1
 * STDOUT: utimensat bad nsec: EINVAL, bad flags: EINVAL, futimesat: ok mtime 1234567890
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    switch (errno) {
    case EEXIST: return "EEXIST"; case ENOENT: return "ENOENT"; case EINVAL: return "EINVAL";
    case ENOTEMPTY: return "ENOTEMPTY"; case ENOTDIR: return "ENOTDIR"; case EISDIR: return "EISDIR";
    case EPERM: return "EPERM"; case ENXIO: return "ENXIO"; case EROFS: return "EROFS"; case EACCES: return "EACCES";
    case EBUSY: return "EBUSY"; case EXDEV: return "EXDEV";
    default: return strerror(errno);
    }
}

static void put(const char *path, const char *text) {
    int fd = open(path, O_CREAT | O_WRONLY | O_TRUNC, 0644);
    write(fd, text, strlen(text));
    close(fd);
}

static const char *get(const char *path) {
    static char buf[64];
    memset(buf, 0, sizeof buf);
    int fd = open(path, O_RDONLY);
    if (fd < 0) return err(-1);
    read(fd, buf, sizeof buf - 1);
    close(fd);
    return buf;
}

int main(int argc, char **argv) {
    setvbuf(stdout, 0, _IONBF, 0);
    umask(022);
    if (argc < 2 || chdir(argv[1]) < 0 || mkdir("t", 0755) < 0 || chdir("t") < 0) {
        printf("setup failed: %s\n", strerror(errno));
        return 1;
    }
    struct stat st;
    printf("mkdir: %s", err(mkdir("d", 0755)));
    printf(", again: %s", err(mkdir("d", 0755)));
    printf(", \".\" : %s", err(mkdir(".", 0755)));
    printf(", missing parent: %s", err(mkdir("no/d", 0755)));
    printf(", trailing slash: %s\n", err(mkdir("e/", 0755)));
    int dfd = open("d", O_RDONLY | O_DIRECTORY);
    printf("mkdirat(dirfd): %s", err(mkdirat(dfd, "sub", 0777 & ~027)));
    stat("d/sub", &st);
    printf(", stat: dir %d mode %04o\n", S_ISDIR(st.st_mode), st.st_mode & 07777);

    put("file", "abc");
    printf("rmdir \".\": %s", err(rmdir("d/.")));
    printf(", \"..\": %s", err(rmdir("d/sub/..")));
    printf(", non-empty: %s", err(rmdir("d")));
    printf(", a file: %s", err(rmdir("file")));
    printf(", missing: %s\n", err(rmdir("missing")));
    printf("unlink a directory: %s", err(unlink("d")));
    printf(", trailing slash on a file: %s", err(unlink("file/")));
    printf(", unlinkat bad flag: %s\n", err(unlinkat(AT_FDCWD, "file", 1)));
    printf("unlinkat(AT_REMOVEDIR): %s", err(unlinkat(dfd, "sub", AT_REMOVEDIR)));
    put("victim", "x");
    printf(", unlink: %s", err(unlink("victim")));
    printf(", gone: %s\n", err(stat("victim", &st)));

    printf("rename: %s", err(rename("file", "moved")));
    printf(", contents kept: %s", get("moved"));
    printf(", old name: %s\n", err(stat("file", &st)));
    printf("rename dir onto file: %s", err(rename("d", "moved")));
    printf(", file onto dir: %s", err(rename("moved", "e")));
    printf(", dir into itself: %s", err(rename("d", "d/inner")));
    mkdir("full", 0755);
    put("full/x", "x");
    printf(", onto non-empty dir: %s\n", err(rename("e", "full")));
    put("one", "1");
    put("two", "2");
    printf("renameat2 NOREPLACE onto existing: %s",
           err(syscall(SYS_renameat2, AT_FDCWD, "one", AT_FDCWD, "two", RENAME_NOREPLACE)));
    long rc = syscall(SYS_renameat2, AT_FDCWD, "one", AT_FDCWD, "two", RENAME_EXCHANGE);
    printf(", EXCHANGE: %s swapped %d", err(rc), get("one")[0] == '2' && get("two")[0] == '1');
    printf(", EXCHANGE|NOREPLACE: %s",
           err(syscall(SYS_renameat2, AT_FDCWD, "one", AT_FDCWD, "two", RENAME_EXCHANGE | RENAME_NOREPLACE)));
    printf(", WHITEOUT: %s\n", err(syscall(SYS_renameat2, AT_FDCWD, "one", AT_FDCWD, "three", RENAME_WHITEOUT)));

    rc = link("moved", "hard");
    stat("moved", &st);
    printf("link: %s nlink %d", err(rc), (int)st.st_nlink);
    printf(", to a directory: %s", err(link("d", "dlink")));
    printf(", onto existing: %s\n", err(link("moved", "one")));
    rc = symlink("target-name", "sym");
    char buf[64] = {0};
    readlink("sym", buf, sizeof buf);
    lstat("sym", &st);
    printf("symlink: %s, readlink: %s, lstat is link %d", err(rc), buf, S_ISLNK(st.st_mode));
    symlink("moved", "sym2");
    printf(", through it: %s\n", get("sym2"));
    printf("readlink of a file: %s", err(readlink("moved", buf, sizeof buf)));
    printf(", symlink onto existing: %s\n", err(symlink("x", "moved")));

    rc = mknod("fifo", S_IFIFO | 0644, 0);
    stat("fifo", &st);
    printf("mknod FIFO: %s, is fifo %d", err(rc), S_ISFIFO(st.st_mode));
    printf("; directory type: %s", err(mknod("n1", S_IFDIR | 0755, 0)));
    printf(", char device: %s", err(mknod("n2", S_IFCHR | 0644, makedev(1, 3))));
    printf(", bad type: %s\n", err(mknod("n3", 0170000 | 0644, 0)));
    pid_t child = fork();
    if (child == 0) {
        int w = open("fifo", O_WRONLY);
        write(w, "through the fifo", 16);
        _exit(0);
    }
    int r = open("fifo", O_RDONLY);
    char got[32] = {0};
    int n = 0, k;
    while ((k = read(r, got + n, sizeof got - 1 - n)) > 0)
        n += k;
    close(r);
    waitpid(child, 0, 0);
    printf("FIFO: reader got \"%s\", O_WRONLY|O_NONBLOCK without reader: %s\n", got,
           err(open("fifo", O_WRONLY | O_NONBLOCK)));
    rc = mknod("plain", S_IFREG | 0600, 0);
    stat("plain", &st);
    printf("mknod regular: %s size %ld, mkfifo again: %s\n", err(rc), (long)st.st_size, err(mkfifo("fifo", 0600)));

    put("sized", "0123456789abcdef");
    rc = truncate("sized", 10);
    stat("sized", &st);
    printf("truncate: %s size %ld", err(rc), (long)st.st_size);
    truncate("sized", 8192);
    int fd = open("sized", O_RDONLY);
    char page[8192];
    int zeros = pread(fd, page, sizeof page, 0) == 8192 && page[9] == '9' && page[10] == 0 && page[8191] == 0;
    close(fd);
    printf(", grows to 8192 with zeros %d", zeros);
    printf(", directory: %s", err(truncate("d", 0)));
    printf(", negative: %s\n", err(truncate("sized", -1)));
    fd = open("sized", O_RDWR);
    rc = ftruncate(fd, 3);
    fstat(fd, &st);
    printf("ftruncate: %s size %ld", err(rc), (long)st.st_size);
    close(fd);
    fd = open("sized", O_RDONLY);
    printf(", read-only fd: %s", err(ftruncate(fd, 1)));
    close(fd);
    int p[2];
    pipe(p);
    printf(", pipe: %s\n", err(ftruncate(p[1], 0)));

    rc = chmod("sized", 0604);
    stat("sized", &st);
    printf("chmod: %s mode %04o", err(rc), st.st_mode & 07777);
    fd = open("sized", O_RDONLY);
    rc = fchmod(fd, 0640);
    fstat(fd, &st);
    printf(", fchmod: %s mode %04o", err(rc), st.st_mode & 07777);
    rc = fchmodat(AT_FDCWD, "sized", 0600, 0);
    stat("sized", &st);
    printf(", fchmodat: %s mode %04o\n", err(rc), st.st_mode & 07777);
    printf("chown to own ids: %s", err(chown("sized", getuid(), getgid())));
    printf(", fchown -1/-1: %s", err(fchown(fd, -1, -1)));
    printf(", lchown on a link: %s\n", err(lchown("sym", getuid(), getgid())));
    close(fd);

    struct timespec ts[2] = {{2000000000, 250000000}, {1000000000, 500000000}};
    rc = utimensat(AT_FDCWD, "sized", ts, 0);
    stat("sized", &st);
    printf("utimensat: %s mtime %ld.%ld atime %ld.%ld", err(rc), (long)st.st_mtim.tv_sec,
           st.st_mtim.tv_nsec / 100000000, (long)st.st_atim.tv_sec, st.st_atim.tv_nsec / 10000000);
    struct timespec omit[2] = {{5, 0}, {0, UTIME_OMIT}};
    utimensat(AT_FDCWD, "sized", omit, 0);
    stat("sized", &st);
    printf(", UTIME_OMIT keeps mtime %d\n", st.st_mtim.tv_sec == 1000000000 && st.st_atim.tv_sec == 5);
    struct timespec bad[2] = {{0, 1000000000}, {0, 0}};
    printf("utimensat bad nsec: %s", err(utimensat(AT_FDCWD, "sized", bad, 0)));
    printf(", bad flags: %s", err(utimensat(AT_FDCWD, "sized", ts, 0x4)));
    struct timeval tv[2] = {{1234567890, 0}, {1234567890, 0}};
    rc = futimesat(AT_FDCWD, "sized", tv);
    stat("sized", &st);
    printf(", futimesat: %s mtime %ld\n", err(rc), (long)st.st_mtim.tv_sec);
    return 0;
}
