/* process_vm_readv/process_vm_writev (mm/process_vm_access.c) on the caller
 * itself and on a forked child: scattered iovecs on both sides, the checks in
 * Linux's order (flags, the local vector, nothing to do, the remote vector,
 * the pid), partial transfers stopping at the first inaccessible page, and
 * the child's copy-on-write pages being written in the child only.
 * CPUS: 1 2
 * STDOUT: self read: 9 -> "abcuv" "wxyz"
 * STDOUT: flags EINVAL, local count 1025 EINVAL, bad local vector EFAULT, bad local buffer EFAULT
 * STDOUT: empty local + bad pid 0, empty remote + bad pid 0, bad remote vector EFAULT, remote count 1025 EINVAL, bad pid ESRCH
 * STDOUT: init: EPERM
 * STDOUT: partial read: 100, nothing readable: EFAULT, second remote vector unmapped: 10
 * STDOUT: local shorter than remote: 4, write to read-only remote: EFAULT
 * STDOUT: write into child: 7, read back: 26 "abWRITTENjklmnopqrstuvwxyz"; parent's own copy "abcdefghijklmnopqrstuvwxyz"
 * STDOUT: child sees "abWRITTENjklmnopqrstuvwxyz"
 * STDOUT: after the child is reaped: ESRCH
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "%ld", r);
        return buf;
    }
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ESRCH: return "ESRCH";
    case EFAULT: return "EFAULT";
    default: return strerror(errno);
    }
}

static char source[64] = "abcdefghijklmnopqrstuvwxyz";
static char target[64];

int main(void)
{
    pid_t self = getpid();
    struct iovec local[2] = {{target, 5}, {target + 10, 5}};
    struct iovec remote[2] = {{source, 3}, {source + 20, 6}};
    printf("self read: %s", err(process_vm_readv(self, local, 2, remote, 2, 0)));
    printf(" -> \"%.5s\" \"%.5s\"\n", target, target + 10);
    printf("flags %s, local count 1025 %s, bad local vector %s, bad local buffer %s\n",
           err(process_vm_readv(self, local, 2, remote, 2, 1)), err(process_vm_readv(self, local, 1025, remote, 2, 0)),
           err(process_vm_readv(self, (void *)8, 2, remote, 2, 0)),
           err(process_vm_readv(self, &(struct iovec){(void *)-4096L, 4}, 1, remote, 1, 0)));
    printf("empty local + bad pid %s, empty remote + bad pid %s, bad remote vector %s, remote count 1025 %s, bad pid %s\n",
           err(process_vm_readv(99999, local, 0, remote, 2, 0)),
           err(process_vm_readv(99999, local, 2, &(struct iovec){source, 0}, 1, 0)),
           err(process_vm_readv(self, local, 2, (void *)8, 2, 0)), err(process_vm_readv(self, local, 2, remote, 1025, 0)),
           err(process_vm_readv(99999, local, 2, remote, 2, 0)));
    printf("init: %s\n", err(process_vm_readv(1, local, 2, remote, 2, 0)));

    /* A remote range running into an unmapped page: the bytes before it. */
    char *pages = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    memset(pages, 'p', 8192);
    munmap(pages + 4096, 4096);
    char big[256];
    struct iovec whole = {big, sizeof big};
    struct iovec straddle = {pages + 4096 - 100, 200};
    printf("partial read: %s, ", err(process_vm_readv(self, &whole, 1, &straddle, 1, 0)));
    struct iovec unmapped = {pages + 4096, 10};
    printf("nothing readable: %s, ", err(process_vm_readv(self, &whole, 1, &unmapped, 1, 0)));
    struct iovec two[2] = {{pages, 10}, {pages + 4096, 10}};
    printf("second remote vector unmapped: %s\n", err(process_vm_readv(self, &whole, 1, two, 2, 0)));
    struct iovec small = {big, 4};
    printf("local shorter than remote: %s, ", err(process_vm_readv(self, &small, 1, remote, 2, 0)));
    char *ro = mmap(NULL, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct iovec to_ro = {ro, 4};
    printf("write to read-only remote: %s\n", err(process_vm_writev(self, &small, 1, &to_ro, 1, 0)));
    fflush(stdout);

    int pipefd[2];
    pipe(pipefd);
    pid_t child = fork();
    if (child == 0) {
        char c;
        read(pipefd[0], &c, 1);
        printf("child sees \"%.26s\"\n", source);
        fflush(stdout);
        _exit(0);
    }
    struct iovec msg = {"WRITTEN", 7};
    struct iovec dest = {source + 2, 7};
    printf("write into child: %s, ", err(process_vm_writev(child, &msg, 1, &dest, 1, 0)));
    memset(target, 0, sizeof target);
    struct iovec back = {target, 26};
    struct iovec from = {source, 26};
    printf("read back: %s \"%s\"; parent's own copy \"%.26s\"\n", err(process_vm_readv(child, &back, 1, &from, 1, 0)),
           target, source);
    fflush(stdout);
    write(pipefd[1], "x", 1);
    waitpid(child, NULL, 0);
    printf("after the child is reaped: %s\n", err(process_vm_readv(child, &back, 1, &from, 1, 0)));
    return 0;
}
