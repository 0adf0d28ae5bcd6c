/* PTRACE_TRACEME child, tracer in the parent: the SIGSTOP signal-delivery-stop
 * (GETSIGINFO, GETREGS), PEEKDATA/POKEDATA of the child's memory, then
 * PTRACE_SYSCALL with TRACESYSGOOD|TRACEEXIT: every entry and exit stop
 * counted, one call skipped (orig_rax = -1), one turned into getpid, one
 * result rewritten at its exit stop, and the PTRACE_EVENT_EXIT stop's message.
 * The same binary prints the same natively on Linux.
 * CPUS: 1 2
 * STDOUT: stopped sig=19 code=-6 orig_rax_is_tgkill=1 rax=0
 * STDOUT: peek magic=0x1234 poke ok
 * STDOUT: child magic=0x5678 r0=parent r1=parent r2=-38 r3=self r4=12345
 * STDOUT: entries=8 exits=7 sysgood=1
 * STDOUT: syscalls 110 110 110 110 110 39 1 231
 * STDOUT: exit event msg=0x700
 * STDOUT: exited status=7
 * STDOUT: syscall_info entry op=1 arch_ok=1 nr=110 size=80 exit op=2 rval_is_parent=1 error=0 size=33
 * STDOUT: skipped exit rval=-38 error=1
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile long magic = 0x1234;

static long raw_syscall0(long number) {
    long result;
    asm volatile("syscall" : "=a"(result) : "a"(number) : "rcx", "r11", "memory");
    return result;
}

static const char *describe(long value, pid_t parent, pid_t self, char *buffer) {
    if (value == parent)
        return "parent";
    if (value == self)
        return "self";
    sprintf(buffer, "%ld", value);
    return buffer;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t parent = getpid();
    pid_t child = fork();
    if (child == 0) {
        long results[5];
        char b[5][32];
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        for (int i = 0; i < 5; i++)
            results[i] = raw_syscall0(SYS_getppid);
        pid_t self = getpid();   /* cached by nobody: a real syscall, not traced as getppid */
        printf("child magic=%#lx r0=%s r1=%s r2=%s r3=%s r4=%s\n", magic,
               describe(results[0], parent, self, b[0]), describe(results[1], parent, self, b[1]),
               describe(results[2], parent, self, b[2]), describe(results[3], parent, self, b[3]),
               describe(results[4], parent, self, b[4]));
        syscall(SYS_exit_group, 7);
        _exit(1);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
        return 10;
    siginfo_t info;
    ptrace(PTRACE_GETSIGINFO, child, 0, &info);
    struct user_regs_struct regs;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    printf("stopped sig=%d code=%d orig_rax_is_tgkill=%d rax=%lld\n", WSTOPSIG(status), info.si_code,
           regs.orig_rax == SYS_tgkill, (long long)regs.rax);
    long word = ptrace(PTRACE_PEEKDATA, child, (void *)&magic, 0);
    int poked = ptrace(PTRACE_POKEDATA, child, (void *)&magic, (void *)0x5678L) == 0;
    printf("peek magic=%#lx poke %s\n", word, poked ? "ok" : "failed");
    ptrace(PTRACE_SETOPTIONS, child, 0, (void *)(long)(PTRACE_O_TRACESYSGOOD | PTRACE_O_TRACEEXIT));
    int entries = 0, exits = 0, sysgood = 1, in_syscall = 0, getppids = 0;
    char info_line[160] = "", skipped_line[80] = "";
    long numbers[32];
    for (;;) {
        ptrace(PTRACE_SYSCALL, child, 0, 0);
        if (waitpid(child, &status, 0) != child)
            return 11;
        if (WIFEXITED(status) || !WIFSTOPPED(status))
            return 12;
        if (status >> 8 == (SIGTRAP | PTRACE_EVENT_EXIT << 8)) {
            unsigned long message;
            ptrace(PTRACE_GETEVENTMSG, child, 0, &message);
            printf("entries=%d exits=%d sysgood=%d\n", entries, exits, sysgood);
            printf("syscalls");
            for (int i = 0; i < entries; i++)
                printf(" %ld", numbers[i]);
            printf("\nexit event msg=%#lx\n", message);
            break;
        }
        if ((WSTOPSIG(status) & 0x80) == 0)
            sysgood = 0;
        ptrace(PTRACE_GETREGS, child, 0, &regs);
        struct __ptrace_syscall_info sinfo;
        memset(&sinfo, 0, sizeof sinfo);
        long size = ptrace(PTRACE_GET_SYSCALL_INFO, child, (void *)sizeof sinfo, &sinfo);
        if (regs.orig_rax == SYS_getppid && getppids == 0 && !in_syscall)
            sprintf(info_line, "syscall_info entry op=%d arch_ok=%d nr=%llu size=%ld", sinfo.op,
                    sinfo.arch == 0xC000003E, (unsigned long long)sinfo.entry.nr, size);
        if (regs.orig_rax == SYS_getppid && getppids == 1 && in_syscall)
            sprintf(info_line + strlen(info_line), " exit op=%d rval_is_parent=%d error=%d size=%ld", sinfo.op,
                    sinfo.exit.rval == parent, sinfo.exit.is_error, size);
        if (getppids == 3 && in_syscall)
            sprintf(skipped_line, "skipped exit rval=%lld error=%d", (long long)sinfo.exit.rval, sinfo.exit.is_error);
        if (!in_syscall) {
            numbers[entries++ & 31] = regs.orig_rax;
            if (regs.orig_rax == SYS_getppid) {
                getppids++;
                if (getppids == 3)
                    regs.orig_rax = -1;
                if (getppids == 4)
                    regs.orig_rax = SYS_getpid;
                ptrace(PTRACE_SETREGS, child, 0, &regs);
            }
        } else {
            exits++;
            if (regs.orig_rax == SYS_getppid && getppids == 5) {
                regs.rax = 12345;
                ptrace(PTRACE_SETREGS, child, 0, &regs);
            }
        }
        in_syscall = !in_syscall;
    }
    ptrace(PTRACE_CONT, child, 0, 0);
    if (waitpid(child, &status, 0) != child)
        return 13;
    printf("exited status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    printf("%s\n%s\n", info_line, skipped_line);
    return 0;
}
