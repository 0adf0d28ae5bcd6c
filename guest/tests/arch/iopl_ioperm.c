/* iopl(2) and ioperm(2) for an unprivileged user (uid 1000, no
 * CAP_SYS_RAWIO) as Linux 6.12 with CONFIG_X86_IOPL_IOPERM does them
 * (arch/x86/kernel/ioport.c): level > 3 is EINVAL, the current level (0) is
 * a no-op, raising it is EPERM; ioperm checks the range (EINVAL: empty,
 * wrapping, past 65536) before the permission (EPERM to turn ports on),
 * and turning ports off without a bitmap succeeds. Port I/O stays #GP, also
 * through the i386 calls of int $0x80. (The reference host's kernel lacks
 * CONFIG_X86_IOPL_IOPERM and answers ENOSYS: these lines follow ioport.c.)
 * STDOUT: iopl(3) = -1 EPERM
 * STDOUT: iopl(4) = -1 EINVAL
 * STDOUT: iopl(0) = 0 0
 * STDOUT: ioperm(0x80, 1, 1) = -1 EPERM
 * STDOUT: ioperm(0x80, 1, 0) = 0 0
 * STDOUT: ioperm(0x80, 0, 1) = -1 EINVAL
 * STDOUT: ioperm(65535, 2, 1) = -1 EINVAL
 * STDOUT: ioperm(-1, 2, 0) = -1 EINVAL
 * STDOUT: int $0x80 iopl(3) = -1 EPERM
 * STDOUT: int $0x80 ioperm(0x80, 1, 1) = -1 EPERM
 * STDOUT: outb after all that: SIGSEGV
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void show(const char *what, long ret)
{
    printf("%s = %ld %s\n", what, ret, ret < 0 ? strerrorname_np(errno) : "0");
}

static long int80(long nr, long a, long b, long c)
{
    long ret;
    __asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b), "d"(c) : "memory");
    if (ret < 0) {
        errno = -ret;
        return -1;
    }
    return ret;
}

static sigjmp_buf jmpbuf;
static void on_segv(int sig) { siglongjmp(jmpbuf, 1); }

int main(void)
{
    show("iopl(3)", syscall(SYS_iopl, 3));
    show("iopl(4)", syscall(SYS_iopl, 4));
    show("iopl(0)", syscall(SYS_iopl, 0));
    show("ioperm(0x80, 1, 1)", syscall(SYS_ioperm, 0x80, 1, 1));
    show("ioperm(0x80, 1, 0)", syscall(SYS_ioperm, 0x80, 1, 0));
    show("ioperm(0x80, 0, 1)", syscall(SYS_ioperm, 0x80, 0, 1));
    show("ioperm(65535, 2, 1)", syscall(SYS_ioperm, 65535, 2, 1));
    show("ioperm(-1, 2, 0)", syscall(SYS_ioperm, -1L, 2, 0));
    show("int $0x80 iopl(3)", int80(110, 3, 0, 0));
    show("int $0x80 ioperm(0x80, 1, 1)", int80(101, 0x80, 1, 1));
    signal(SIGSEGV, on_segv);
    if (!sigsetjmp(jmpbuf, 1)) {
        __asm__ volatile("outb %%al, $0x80" ::: "memory");
        printf("outb after all that: ran\n");
    } else {
        printf("outb after all that: SIGSEGV\n");
    }
    return 0;
}
