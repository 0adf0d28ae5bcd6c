/* User-mode privileged and I/O instructions end as Linux reports them
 * (arch/x86/kernel/traps.c): the signal, si_code, si_addr, and the frame's
 * trapno and err (thread.trap_nr/error_code). Port I/O at CPL3 with IOPL 0
 * and no I/O bitmap is #GP(0) (Unicorn would run it); INT n to a DPL-0 gate
 * is #GP(n*8+2) at the instruction; INT3 and INT $3 are #BP traps (SIGTRAP,
 * SI_KERNEL); INT1/ICEBP is a #DB trap (SIGTRAP, TRAP_BRKPT at the next
 * RIP); RDPMC (CR4.PCE clear), SYSRET, HLT, CLI/STI, RDMSR/WRMSR, MOV CR,
 * INVD, LGDT, CLTS are #GP(0) (SIGSEGV, SI_KERNEL); INTO is #UD in 64-bit
 * mode. int $0x80 runs i386 system calls (EAX, EBX, ECX, EDX...), keeps RCX
 * and R11, and an unknown number is -ENOSYS. "rip-insn" is the frame's RIP
 * minus the probed instruction's address.
 * STDOUT: outb     sig=11 code=0x80 addr-insn=-1 len=1 trapno=13 err=0 rip-insn=0
 * STDOUT: inb      sig=11 code=0x80 addr-insn=-1 len=1 trapno=13 err=0 rip-insn=0
 * STDOUT: out_imm  sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0 rip-insn=0
 * STDOUT: int1     sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0xa rip-insn=0
 * STDOUT: int3     sig=5 code=0x80 addr-insn=-1 len=1 trapno=3 err=0 rip-insn=1
 * STDOUT: int_cd03 sig=5 code=0x80 addr-insn=-1 len=2 trapno=3 err=0 rip-insn=2
 * STDOUT: into     sig=4 code=0x2 addr-insn=0 len=1 trapno=6 err=0 rip-insn=0
 * STDOUT: icebp    sig=5 code=0x1 addr-insn=1 len=1 trapno=1 err=0 rip-insn=1
 * STDOUT: int_0x10 sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0x82 rip-insn=0
 * STDOUT: int_0xff sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0x7fa rip-insn=0
 * STDOUT: rdpmc    sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0 rip-insn=0
 * STDOUT: sysretq  sig=11 code=0x80 addr-insn=-1 len=3 trapno=13 err=0 rip-insn=0
 * STDOUT: hlt      sig=11 code=0x80 addr-insn=-1 len=1 trapno=13 err=0 rip-insn=0
 * STDOUT: cli      sig=11 code=0x80 addr-insn=-1 len=1 trapno=13 err=0 rip-insn=0
 * STDOUT: sti      sig=11 code=0x80 addr-insn=-1 len=1 trapno=13 err=0 rip-insn=0
 * STDOUT: wrmsr    sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0 rip-insn=0
 * STDOUT: rdmsr    sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0 rip-insn=0
 * STDOUT: ud2      sig=4 code=0x2 addr-insn=0 len=2 trapno=6 err=0 rip-insn=0
 * STDOUT: mov_cr3  sig=11 code=0x80 addr-insn=-1 len=3 trapno=13 err=0 rip-insn=0
 * STDOUT: invd     sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0 rip-insn=0
 * STDOUT: lgdt     sig=11 code=0x80 addr-insn=-1 len=4 trapno=13 err=0 rip-insn=0
 * STDOUT: clts     sig=11 code=0x80 addr-insn=-1 len=2 trapno=13 err=0 rip-insn=0
 * STDOUT: int80 getpid ok=1
 * STDOUT: hello
 * STDOUT: int80 write=6
 * STDOUT: int80 getppid ok=1
 * STDOUT: int80 keeps rcx and r11: 1
 * STDOUT: int80 nr9999=-38
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>
const char msg[] = "hello\n";
static sigjmp_buf jb;
static volatile int got_sig, got_code; static volatile long got_addr, got_trapno, got_err, got_rip_off;
unsigned long start, end_;
static void handler(int sig, siginfo_t *si, void *ctx_void) {
    ucontext_t *ctx = ctx_void;
    got_sig = sig; got_code = si->si_code; got_addr = (long)si->si_addr;
    got_trapno = ctx->uc_mcontext.gregs[REG_TRAPNO]; got_err = ctx->uc_mcontext.gregs[REG_ERR];
    got_rip_off = ctx->uc_mcontext.gregs[REG_RIP] - start;
    siglongjmp(jb, 1);
}
static const char *only;
#define PROBE2(name, setup, code) do { if (only && strcmp(only, name)) break; \
    got_sig = 0; \
    if (!sigsetjmp(jb, 1)) { \
        __asm__ volatile("push %%rax; lea 0f(%%rip), %%rax; mov %%rax, start(%%rip); lea 1f(%%rip), %%rax; mov %%rax, end_(%%rip); pop %%rax\n\t" setup "\n0:\t" code "\n1:" ::: "rax","rcx","rdx","memory"); \
        printf("%-8s no signal\n", name); \
    } else \
        printf("%-8s sig=%d code=%#x addr-insn=%ld len=%ld trapno=%ld err=%#lx rip-insn=%ld\n", name, got_sig, got_code, \
               got_addr ? got_addr - (long)start : -1, end_ - start, got_trapno, got_err, got_rip_off); \
} while (0)
int main(int argc, char **argv) {
    only = argc > 1 ? argv[1] : 0; setvbuf(stdout, 0, _IONBF, 0);
    struct sigaction sa; memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = handler; sa.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigaction(SIGSEGV, &sa, 0); sigaction(SIGTRAP, &sa, 0); sigaction(SIGILL, &sa, 0); sigaction(SIGBUS, &sa, 0);
    /* start = address of label 1 = the end of the probed instruction; rip-insn = saved RIP - end */
    PROBE2("outb", "mov $0x80, %%dx; xor %%eax,%%eax", "outb %%al, %%dx");
    PROBE2("inb", "mov $0x80, %%dx", "inb %%dx, %%al");
    PROBE2("out_imm", "", "outb %%al, $0x80");
    PROBE2("int1", "", "int $1");
    PROBE2("int3", "", "int3");
    PROBE2("int_cd03", "", ".byte 0xcd, 0x03");
    PROBE2("into", "", ".byte 0xce");
    PROBE2("icebp", "", ".byte 0xf1");
    PROBE2("int_0x10", "", "int $0x10");
    PROBE2("int_0xff", "", "int $0xff");
    PROBE2("rdpmc", "xor %%ecx,%%ecx", "rdpmc");
    PROBE2("sysretq", "", "sysretq");
    PROBE2("hlt", "", "hlt");
    PROBE2("cli", "", "cli");
    PROBE2("sti", "", "sti");
    PROBE2("wrmsr", "xor %%eax,%%eax; xor %%edx,%%edx; mov $0x10,%%ecx", "wrmsr");
    PROBE2("rdmsr", "mov $0x10,%%ecx", "rdmsr");
    PROBE2("ud2", "", "ud2");
    PROBE2("mov_cr3", "", "mov %%cr3, %%rax");
    PROBE2("invd", "", "invd");
    PROBE2("lgdt", "", "lgdt (%%rsp)");
    PROBE2("clts", "", "clts");
    if (only) return 0;
    fflush(stdout);
    { long r; __asm__ volatile("mov $20, %%eax; int $0x80" : "=a"(r) :: "rcx","r11","memory"); printf("int80 getpid ok=%d\n", r == getpid()); }
    { long r; __asm__ volatile("mov $4, %%eax; mov $1, %%ebx; lea msg(%%rip), %%rcx; mov $6, %%edx; int $0x80" : "=a"(r) :: "rbx","rcx","rdx","r11","memory"); printf("int80 write=%ld\n", r); }
    { long r; __asm__ volatile("mov $64, %%eax; int $0x80" : "=a"(r) :: "rcx","r11","memory"); printf("int80 getppid ok=%d\n", r == getppid()); }
    { long r; unsigned long rcx = 0x1111, r11 = 0x2222; __asm__ volatile("mov $20, %%eax; int $0x80" : "=a"(r), "+c"(rcx), "+r"(r11) :: "memory"); printf("int80 keeps rcx and r11: %d\n", rcx == 0x1111 && r11 == 0x2222); }
    { long r; __asm__ volatile("mov $9999, %%eax; int $0x80" : "=a"(r) :: "rcx","r11","memory"); printf("int80 nr9999=%ld\n", r); }
    return 0;
}
