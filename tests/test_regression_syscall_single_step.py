"""Regression: a SYSCALL executed with RFLAGS.TF set was lost. QEMU ends the
instruction with a single-step #DB, whose interrupt hook replaced the SYSCALL
trap, so the guest resumed after the instruction with RAX still holding the
syscall number. SYSCALL masks TF (Linux's MSR_SYSCALL_MASK) and SYSRET brings
it back, so Linux runs the call and traps after the next instruction
(emu_x86/emu/vcpu.py _on_interrupt). Checked against the host; the ptrace single step
over SYSCALL is in guest/tests/ptrace/single_step.c."""
from tests.guestbuild import build_c, emu, native

STEP_OVER_SYSCALL_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

static volatile int traps;
static unsigned long rips[16];

static void on_trap(int signo, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    rips[traps++] = uc->uc_mcontext.gregs[REG_RIP];
    if (traps == 6)
        uc->uc_mcontext.gregs[REG_EFL] &= ~0x100L;
}

int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_trap;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &action, 0);
    long result;
    __asm__ volatile("pushfq; orq $0x100, (%%rsp); popfq; nop; mov $39, %%eax; syscall; nop; nop; nop; nop"
                     : "=a"(result) : : "rcx", "r11", "memory");
    printf("getpid_ok=%d traps=%d", result == getpid(), traps);
    for (int i = 1; i < traps; i++)
        printf(" +%lu", rips[i] - rips[0]);
    printf("\n");
    return 0;
}
"""


def test_syscall_with_trap_flag_runs_the_call_and_traps_after_the_next_instruction():
    binary = build_c(STEP_OVER_SYSCALL_C)
    expected = native(binary)
    # Traps after nop (rips[0]), mov, the instruction after the syscall, then each nop.
    assert expected.stdout == b"getpid_ok=1 traps=6 +5 +8 +9 +10 +11\n"
    result = emu("run", str(binary))
    assert (result.returncode, result.stdout) == (0, expected.stdout), result.stderr
