/* PTRACE_SINGLESTEP: the tracer points a stopped child at a block of known
 * instructions (SETREGS) and steps it one instruction per SIGTRAP stop,
 * recording RIP and RCX, across a SYSCALL instruction (the step after it
 * stops at the next instruction, the call done), until the int3; TF set by
 * the tracer never shows in GETREGS. Then PTRACE_CONT runs into the int3
 * (a SIGTRAP stop after it) and PTRACE_KILL ends the child.
 * STDOUT: steps=16 rcx=5,4,4,3,3,2,2,1,1,0,0,0
 * STDOUT: offsets=5,7,5,7,5,7,5,7,5,7,9,10,15,17,18,19
 * STDOUT: syscall result=self tf_visible=0 code=2
 * STDOUT: int3 stop sig=5 at_end=1
 * STDOUT: killed sig=9
 */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

extern char step_block[], step_int3[], step_end[];
asm(".text\n"
    "step_block:\n"
    "  mov $5, %ecx\n"          /* 5 bytes */
    "1: dec %ecx\n"             /* 2 */
    "  jnz 1b\n"                /* 2 */
    "  nop\n"                   /* 1 */
    "  mov $39, %eax\n"         /* 5: getpid */
    "  syscall\n"               /* 2 */
    "  nop\n"
    "  nop\n"
    "step_int3:\n"
    "  int3\n"
    "step_end:\n"
    "  nop\n"
    "  ud2\n");

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        raise(SIGSTOP);
        _exit(1);
    }
    int status;
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
        return 10;
    struct user_regs_struct regs;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    regs.rip = (unsigned long)step_block;
    ptrace(PTRACE_SETREGS, child, 0, &regs);
    unsigned long offsets[64], rcx[64];
    int steps = 0, tf_visible = 0, code = 0;
    long syscall_result = 0;
    while (steps < 64) {
        ptrace(PTRACE_SINGLESTEP, child, 0, 0);
        if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status) || WSTOPSIG(status) != SIGTRAP)
            return 11;
        ptrace(PTRACE_GETREGS, child, 0, &regs);
        siginfo_t info;
        ptrace(PTRACE_GETSIGINFO, child, 0, &info);
        code = info.si_code;
        if (regs.eflags & 0x100)
            tf_visible = 1;
        offsets[steps] = regs.rip - (unsigned long)step_block;
        rcx[steps] = regs.rcx & 0xffffffff;
        steps++;
        if (regs.rip == (unsigned long)step_int3 - 2)
            syscall_result = regs.rax;
        if (regs.rip == (unsigned long)step_int3)
            break;
    }
    /* RCX up to the SYSCALL (which overwrites it with the return address). */
    printf("steps=%d rcx=", steps);
    for (int i = 0; i < 12; i++)
        printf(i ? ",%lu" : "%lu", rcx[i]);
    printf("\noffsets=");
    for (int i = 0; i < steps; i++)
        printf(i ? ",%lu" : "%lu", offsets[i]);
    printf("\nsyscall result=%s tf_visible=%d code=%d\n", syscall_result == child ? "self" : "other",
           tf_visible, code);
    ptrace(PTRACE_CONT, child, 0, 0);
    if (waitpid(child, &status, 0) != child || !WIFSTOPPED(status))
        return 12;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    printf("int3 stop sig=%d at_end=%d\n", WSTOPSIG(status), regs.rip == (unsigned long)step_end);
    ptrace(PTRACE_KILL, child, 0, 0);
    if (waitpid(child, &status, 0) != child)
        return 13;
    printf("killed sig=%d\n", WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    return 0;
}
