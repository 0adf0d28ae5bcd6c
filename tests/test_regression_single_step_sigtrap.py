"""Regression (found by `python -m fuzz --kind code --seed 11`, case 258): a guest that sets
RFLAGS.TF with popf took a #DB after the next instruction and was killed by SIGSEGV; Linux
(exc_debug_user) sends SIGTRAP with si_code TRAP_TRACE. Checked against the host."""
from tests.guestbuild import build_asm, build_c, emu, native

SET_TRAP_FLAG = """
.globl _start
_start:
    pushfq
    orq $0x100, (%rsp)
    popfq
    nop
    mov $60, %eax
    xor %edi, %edi
    syscall
"""

HANDLED_C = r"""
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int traps;
static void on_trap(int signo, siginfo_t *info, void *context) {
    ucontext_t *uc = context;
    traps++;
    uc->uc_mcontext.gregs[REG_EFL] &= ~0x100L;        /* stop single-stepping */
    if (info->si_code == 2 /* TRAP_TRACE */) traps += 100;
}
int main(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = on_trap;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGTRAP, &action, 0);
    __asm__ volatile("pushfq; orq $0x100, (%rsp); popfq; nop");
    printf("traps=%d\n", traps);
    return 0;
}
"""


def test_trap_flag_kills_with_sigtrap_like_linux():
    binary = build_asm(SET_TRAP_FLAG)
    assert native(binary).returncode == 128 + 5
    result = emu("run", str(binary))
    assert result.returncode == 128 + 5, result.stderr
    assert "SIGTRAP" in result.stderr_lines[0]


def test_single_step_trap_reaches_a_handler_with_trap_trace():
    binary = build_c(HANDLED_C)
    expected = native(binary)
    assert expected.stdout == b"traps=101\n"
    result = emu("run", str(binary))
    assert (result.returncode, result.stdout) == (0, expected.stdout), result.stderr
