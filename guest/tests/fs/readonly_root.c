/* A read-only --fs tree: every call that would change it is EROFS, after
 * the checks Linux makes first (EEXIST for a name that exists, ENOENT for a
 * missing parent, EINVAL/ENOTEMPTY for "." and ".."); /tmp stays writable
 * (the in-memory tmpfs). The same binary natively on a read-only bind mount
 * gives these lines (with the tree owned by the native user, so the EROFS
 * checks are reached rather than EACCES).
 * FS: rotree
 * STDOUT: mkdir: EROFS, existing: EEXIST, missing parent: ENOENT
 * STDOUT: rmdir: EROFS, ".": EINVAL, "..": ENOTEMPTY
 * STDOUT: unlink: EROFS, missing: EROFS
 * STDOUT: rename: EROFS, link: EROFS, symlink: EROFS, mkfifo: EROFS
 * STDOUT: truncate: EROFS, chmod: EROFS, chown: EROFS, utimensat: EROFS
 * STDOUT: open O_CREAT: EROFS, O_WRONLY: EROFS, read: hello
 * STDOUT: /tmp: mkdir ok, file ok
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    switch (errno) {
    case EROFS: return "EROFS"; case EEXIST: return "EEXIST"; case ENOENT: return "ENOENT";
    case EINVAL: return "EINVAL"; case ENOTEMPTY: return "ENOTEMPTY"; case EPERM: return "EPERM";
    default: return strerror(errno);
    }
}

int main(int argc, char **argv) {
    if (argc > 1 && chdir(argv[1]) < 0)
        return 1;
    printf("mkdir: %s", err(mkdir("new", 0755)));
    printf(", existing: %s", err(mkdir("sub", 0755)));
    printf(", missing parent: %s\n", err(mkdir("none/new", 0755)));
    printf("rmdir: %s", err(rmdir("sub")));
    printf(", \".\": %s", err(rmdir("sub/.")));
    printf(", \"..\": %s\n", err(rmdir("sub/..")));
    printf("unlink: %s", err(unlink("hello.txt")));
    printf(", missing: %s\n", err(unlink("missing")));
    printf("rename: %s", err(rename("hello.txt", "other")));
    printf(", link: %s", err(link("hello.txt", "other")));
    printf(", symlink: %s", err(symlink("hello.txt", "other")));
    printf(", mkfifo: %s\n", err(mkfifo("fifo", 0644)));
    printf("truncate: %s", err(truncate("hello.txt", 0)));
    printf(", chmod: %s", err(chmod("hello.txt", 0600)));
    printf(", chown: %s", err(chown("hello.txt", -1, -1)));
    printf(", utimensat: %s\n", err(utimensat(AT_FDCWD, "hello.txt", 0, 0)));
    printf("open O_CREAT: %s", err(open("created", O_CREAT | O_WRONLY, 0644)));
    printf(", O_WRONLY: %s", err(open("hello.txt", O_WRONLY)));
    char buf[16] = {0};
    int fd = open("hello.txt", O_RDONLY);
    read(fd, buf, 5);
    printf(", read: %s\n", buf);
    int a = mkdir("/tmp/ro-test", 0755);
    int b = open("/tmp/ro-test/f", O_CREAT | O_WRONLY, 0644);
    printf("/tmp: mkdir %s", err(a));
    printf(", file %s\n", err(b));
    return 0;
}
