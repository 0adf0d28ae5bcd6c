/* A debugger's software breakpoint: POKETEXT an int3 over a function's first
 * byte in the (read-only, shared-after-fork) text of the child, run into it
 * (a SIGTRAP stop one byte past it), put the byte back, rewind RIP and go on
 * -- the parent's own copy of the code is untouched. Then the errors Linux
 * gives: requests to a running tracee or an untraced pid (ESRCH), attaching
 * to oneself or to a traced task (EPERM), a second TRACEME (EPERM), bad user
 * offsets, resume signals, SEIZE flags and INTERRUPT without SEIZE (EIO),
 * unknown options and regsets (EINVAL), an unmapped PEEKDATA (EIO).
 * CPUS: 1 2
 * STDOUT: breakpoint hit=1 at_target=1 child_result=42 parent_code_intact=1
 * STDOUT: traceme_again=1 running=3 untraced=3 attach_self=1 attach_traced=1
 * STDOUT: peekuser_misaligned=5 peekuser_far=5 bad_signal=5 seize_flags=5 interrupt_unseized=5
 * STDOUT: bad_option=22 bad_regset=22 peek_unmapped=5
 * STDOUT: exited status=0
 */
#define _GNU_SOURCE
#include <elf.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>

__attribute__((noinline)) int target(int x) {
    asm volatile("" ::: "memory");
    return x * 2;
}

static int error_of(long result) {
    return result == -1 ? errno : 0;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    volatile int go = 0;
    pid_t child = fork();
    if (child == 0) {
        ptrace(PTRACE_TRACEME, 0, 0, 0);
        int again = error_of(ptrace(PTRACE_TRACEME, 0, 0, 0));
        raise(SIGSTOP);
        int result = target(21);
        if (again != EPERM)
            _exit(2);
        raise(SIGSTOP);
        while (!go)                 /* the tracer lets it spin, then stops it */
            ;
        _exit(result == 42 ? 0 : 1);
    }
    int status;
    waitpid(child, &status, 0);
    unsigned long address = (unsigned long)target;
    errno = 0;
    long original = ptrace(PTRACE_PEEKTEXT, child, (void *)address, 0);
    long patched = (original & ~0xFFL) | 0xCC;
    ptrace(PTRACE_POKETEXT, child, (void *)address, (void *)patched);
    ptrace(PTRACE_CONT, child, 0, 0);
    waitpid(child, &status, 0);
    struct user_regs_struct regs;
    ptrace(PTRACE_GETREGS, child, 0, &regs);
    int hit = WIFSTOPPED(status) && WSTOPSIG(status) == SIGTRAP;
    int at_target = regs.rip == address + 1;
    ptrace(PTRACE_POKETEXT, child, (void *)address, (void *)original);
    regs.rip = address;
    ptrace(PTRACE_SETREGS, child, 0, &regs);
    int intact = *(unsigned char *)target != 0xCC;
    ptrace(PTRACE_CONT, child, 0, 0);
    waitpid(child, &status, 0);                  /* the second SIGSTOP */
    printf("breakpoint hit=%d at_target=%d child_result=%d parent_code_intact=%d\n", hit, at_target,
           target(21), intact);

    ptrace(PTRACE_CONT, child, 0, 0);            /* now it spins */
    int running = error_of(ptrace(PTRACE_GETREGS, child, 0, &regs));
    int untraced = error_of(ptrace(PTRACE_GETREGS, getppid(), 0, &regs));
    int attach_self = error_of(ptrace(PTRACE_ATTACH, getpid(), 0, 0));
    int attach_traced = error_of(ptrace(PTRACE_ATTACH, child, 0, 0));
    printf("traceme_again=1 running=%d untraced=%d attach_self=%d attach_traced=%d\n", running, untraced,
           attach_self, attach_traced);
    kill(child, SIGSTOP);
    waitpid(child, &status, 0);
    int misaligned = error_of(ptrace(PTRACE_PEEKUSER, child, (void *)3, 0));
    int far = error_of(ptrace(PTRACE_PEEKUSER, child, (void *)(sizeof(struct user) + 64), 0));
    int bad_signal = error_of(ptrace(PTRACE_CONT, child, 0, (void *)1000L));
    pid_t other = fork();
    if (other == 0) {
        pause();
        _exit(0);
    }
    int seize_flags = error_of(ptrace(PTRACE_SEIZE, other, 0, (void *)0x80000000L));
    int interrupt_unseized = error_of(ptrace(PTRACE_INTERRUPT, child, 0, 0));
    printf("peekuser_misaligned=%d peekuser_far=%d bad_signal=%d seize_flags=%d interrupt_unseized=%d\n",
           misaligned, far, bad_signal, seize_flags, interrupt_unseized);
    kill(other, SIGKILL);
    waitpid(other, 0, 0);
    int bad_option = error_of(ptrace(PTRACE_SETOPTIONS, child, 0, (void *)0x40000000L));
    struct iovec iov = {&regs, sizeof regs};
    int bad_regset = error_of(ptrace(PTRACE_GETREGSET, child, (void *)0x999, &iov));
    errno = 0;
    ptrace(PTRACE_PEEKDATA, child, (void *)16, 0);
    int peek_unmapped = errno;
    printf("bad_option=%d bad_regset=%d peek_unmapped=%d\n", bad_option, bad_regset, peek_unmapped);
    /* Let it leave the loop: POKEDATA the flag. */
    ptrace(PTRACE_POKEDATA, child, (void *)&go, (void *)1L);
    ptrace(PTRACE_DETACH, child, 0, 0);
    waitpid(child, &status, 0);
    printf("exited status=%d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
