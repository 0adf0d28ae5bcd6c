/* The tracer's view of a stopped child's registers: PEEKUSER/POKEUSER at
 * struct user offsets (fs_base/gs_base as the x86 fsgsbase selftest uses
 * them, a selector with RPL 3 accepted, one without refused with EIO, a
 * debug address register read back), GETREGS against the user area,
 * GETREGSET sizes (NT_PRSTATUS 216, NT_PRFPREG 512, NT_X86_XSTATE the
 * standard-format size of XCR0's features with XCR0 in the sw_reserved
 * bytes), and SETFPREGS changing the child's XMM1 and MXCSR.
 * STDOUT: gsbase=0x1 after_bad_selector=-1 errno=5 after_gs7=0x1 gs=0x7
 * STDOUT: poked gsbase=0xff fsbase_ok=1 dr0=0x401000 regs_match=1
 * STDOUT: regset prstatus=216 fpreg=512 xstate_size_ok=1 xcr0_ok=1 header_ok=1
 * STDOUT: fpregs fcw=0x37f ftw=0
 * STDOUT: child gsbase=0xff xmm1=0x1122334455667788 mxcsr=0x1fa0
 */
#define _GNU_SOURCE
#include <asm/prctl.h>
#include <cpuid.h>
#include <errno.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include <elf.h>

#define REG_OFFSET(r) offsetof(struct user_regs_struct, r)

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t child = fork();
    if (child == 0) {
        unsigned long gsbase, xmm1;
        unsigned int mxcsr;
        syscall(SYS_arch_prctl, ARCH_SET_GS, 1);
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGTRAP);
        asm volatile("movq %%xmm1, %0; stmxcsr %1" : "=r"(xmm1), "=m"(mxcsr));
        syscall(SYS_arch_prctl, ARCH_GET_GS, &gsbase);
        printf("child gsbase=%#lx xmm1=%#lx mxcsr=%#x\n", gsbase, xmm1, mxcsr);
        _exit(0);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP)
        return 10;
    long base = ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(gs_base), 0);
    errno = 0;
    long bad = ptrace(PTRACE_POKEUSER, child, REG_OFFSET(gs), 0x4);   /* RPL 0: refused */
    int bad_errno = errno;
    ptrace(PTRACE_POKEUSER, child, REG_OFFSET(gs), 0x7);
    long after = ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(gs_base), 0);
    long gs = ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(gs), 0);
    printf("gsbase=%#lx after_bad_selector=%ld errno=%d after_gs7=%#lx gs=%#lx\n", base, bad, bad_errno, after, gs);
    ptrace(PTRACE_POKEUSER, child, REG_OFFSET(gs), 0);
    ptrace(PTRACE_POKEUSER, child, REG_OFFSET(gs_base), 0xFF);
    long fsbase = ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(fs_base), 0);
    unsigned long own_fsbase;
    syscall(SYS_arch_prctl, ARCH_GET_FS, &own_fsbase);   /* fork copies the TLS pointer */
    ptrace(PTRACE_POKEUSER, child, offsetof(struct user, u_debugreg[0]), 0x401000);
    long dr0 = ptrace(PTRACE_PEEKUSER, child, offsetof(struct user, u_debugreg[0]), 0);
    struct user_regs_struct regs;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    int match = regs.rip == (unsigned long)ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(rip), 0) &&
                regs.orig_rax == (unsigned long)ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(orig_rax), 0) &&
                regs.rsp == (unsigned long)ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(rsp), 0) &&
                regs.gs_base == 0xFF && regs.cs == 0x33 && regs.ss == 0x2b;
    printf("poked gsbase=%#lx fsbase_ok=%d dr0=%#lx regs_match=%d\n",
           ptrace(PTRACE_PEEKUSER, child, REG_OFFSET(gs_base), 0), fsbase == (long)own_fsbase, dr0, match);

    static unsigned char buffer[65536];
    struct iovec iov = {buffer, sizeof buffer};
    ptrace(PTRACE_GETREGSET, child, NT_PRSTATUS, &iov);
    size_t prstatus = iov.iov_len;
    iov.iov_len = sizeof buffer;
    ptrace(PTRACE_GETREGSET, child, NT_PRFPREG, &iov);
    size_t fpreg = iov.iov_len;
    iov.iov_len = sizeof buffer;
    memset(buffer, 0xAA, sizeof buffer);
    ptrace(PTRACE_GETREGSET, child, NT_X86_XSTATE, &iov);
    unsigned int eax, ebx, ecx, edx;
    __cpuid_count(0xD, 0, eax, ebx, ecx, edx);
    unsigned int xcr0_low, xcr0_high;
    asm("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
    unsigned long xcr0 = xcr0_low | (unsigned long)xcr0_high << 32, sw_mask, xstate_bv, xcomp_bv;
    memcpy(&sw_mask, buffer + 464, 8);
    memcpy(&xstate_bv, buffer + 512, 8);
    memcpy(&xcomp_bv, buffer + 520, 8);
    int header_ok = (xstate_bv & ~xcr0) == 0 && xcomp_bv == 0 && buffer[iov.iov_len - 1] != 0xAA;
    printf("regset prstatus=%zu fpreg=%zu xstate_size_ok=%d xcr0_ok=%d header_ok=%d\n", prstatus, fpreg,
           iov.iov_len == ebx, sw_mask == xcr0, header_ok);

    struct user_fpregs_struct fp;
    ptrace(PTRACE_GETFPREGS, child, 0, &fp);
    printf("fpregs fcw=%#x ftw=%#x\n", fp.cwd, fp.ftw);
    fp.xmm_space[4] = 0x55667788;
    fp.xmm_space[5] = 0x11223344;
    fp.mxcsr = 0x1fa0;
    ptrace(PTRACE_SETFPREGS, child, 0, &fp);
    ptrace(PTRACE_CONT, child, 0, 0);
    if (waitpid(child, &status, 0) != child || !WIFEXITED(status))
        return 11;
    return 0;
}
