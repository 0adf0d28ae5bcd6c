/* A writable /tmp with no --fs at all: tmpfile(), mkstemp(), mkdtemp(),
 * open(O_TMPFILE), a listing of the directory, and /tmp itself (a sticky,
 * world-writable directory owned by root). Checked natively as uid 1000.
 * CPUS: 1
 * STDOUT: /tmp: dir 1 mode 1777 owner root 1
 * STDOUT: tmpfile: wrote and read back "scratch data"
 * STDOUT: mkstemp: ok, name kept XXXXXX shape 1, mode 0600, unlink: ok
 * STDOUT: mkdtemp: ok, mode 0700, rmdir: ok
 * STDOUT: O_TMPFILE: ok, nlink 0, O_TMPFILE read-only: EINVAL
 * STDOUT: listing: a b c
 * STDOUT: big file: 300000 bytes back intact 1, blocks > 0 1
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err(long rc) {
    if (rc >= 0) return "ok";
    return errno == EINVAL ? "EINVAL" : errno == EISDIR ? "EISDIR" : errno == EOPNOTSUPP ? "EOPNOTSUPP" : strerror(errno);
}

static int by_name(const void *a, const void *b) { return strcmp(*(char **)a, *(char **)b); }

int main(int argc, char **argv) {
    const char *tmp = argc > 1 ? argv[1] : "/tmp";
    struct stat st;
    stat(tmp, &st);
    printf("/tmp: dir %d mode %04o owner root %d\n", S_ISDIR(st.st_mode), st.st_mode & 07777, st.st_uid == 0);

    FILE *f = tmpfile();
    char line[32] = {0};
    if (f) {
        fputs("scratch data", f);
        rewind(f);
        fgets(line, sizeof line, f);
        fclose(f);
    }
    printf("tmpfile: wrote and read back \"%s\"\n", line);

    char name[256];
    snprintf(name, sizeof name, "%s/fileXXXXXX", tmp);
    int fd = mkstemp(name);
    fstat(fd, &st);
    printf("mkstemp: %s, name kept XXXXXX shape %d, mode %04o", err(fd),
           strlen(name) == strlen(tmp) + 11 && strstr(name, "XXXXXX") == 0, st.st_mode & 07777);
    printf(", unlink: %s\n", err(unlink(name)));
    close(fd);
    snprintf(name, sizeof name, "%s/dirXXXXXX", tmp);
    char *dir = mkdtemp(name);
    stat(name, &st);
    printf("mkdtemp: %s, mode %04o", dir ? "ok" : strerror(errno), st.st_mode & 07777);
    printf(", rmdir: %s\n", err(rmdir(name)));

    fd = open(tmp, O_TMPFILE | O_RDWR, 0600);
    fstat(fd, &st);
    printf("O_TMPFILE: %s, nlink %d", err(fd), (int)st.st_nlink);
    printf(", O_TMPFILE read-only: %s\n", err(open(tmp, O_TMPFILE | O_RDONLY, 0600)));
    close(fd);

    char sub[256];
    snprintf(sub, sizeof sub, "%s/listing", tmp);
    mkdir(sub, 0755);
    const char *names[] = {"c", "a", "b"};
    for (int i = 0; i < 3; i++) {
        char path[300];
        snprintf(path, sizeof path, "%s/%s", sub, names[i]);
        close(open(path, O_CREAT | O_WRONLY, 0644));
    }
    DIR *d = opendir(sub);
    char *seen[8];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 8)
        if (e->d_name[0] != '.')
            seen[count++] = strdup(e->d_name);
    closedir(d);
    qsort(seen, count, sizeof seen[0], by_name);
    printf("listing:");
    for (int i = 0; i < count; i++)
        printf(" %s", seen[i]);
    printf("\n");

    snprintf(name, sizeof name, "%s/big", tmp);
    fd = open(name, O_CREAT | O_RDWR | O_TRUNC, 0644);
    static unsigned char buf[300000], back[300000];
    for (int i = 0; i < (int)sizeof buf; i++)
        buf[i] = (unsigned char)(i * 7 + 3);
    write(fd, buf, sizeof buf);
    lseek(fd, 0, SEEK_SET);
    int n = 0, k;
    while ((k = read(fd, back + n, sizeof back - n)) > 0)
        n += k;
    fstat(fd, &st);
    printf("big file: %d bytes back intact %d, blocks > 0 %d\n", n, memcmp(buf, back, sizeof buf) == 0, st.st_blocks > 0);
    close(fd);
    unlink(name);
    return 0;
}
