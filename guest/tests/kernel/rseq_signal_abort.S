/* rseq: a signal delivered while the task is inside its critical section
 * aborts it (Linux rseq_signal_deliver: the fixup happens before the signal
 * frame is built, so the handler returns to abort_ip).  The section sends
 * itself SIGUSR1 with kill().  The host kernel agrees (gcc -nostdlib -static).
 *
 * EXIT: 0
 * STDOUT: handler
 * STDOUT: aborted
 * STATS: rseq_aborts == 1
 */
#include "linux_syscalls.h"
#define RSEQ_SIG 0x53053053
#define SIGUSR1 10
        .text
        .globl _start
_start:
        lea     action(%rip), %rsi
        lea     handler(%rip), %rax
        mov     %rax, (%rsi)
        lea     restorer(%rip), %rax
        mov     %rax, 16(%rsi)
        mov     $SYS_rt_sigaction, %eax
        mov     $SIGUSR1, %edi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        test    %rax, %rax
        jnz     fail
        mov     $SYS_rseq, %eax
        lea     rseq_area(%rip), %rdi
        mov     $32, %esi
        xor     %edx, %edx
        mov     $RSEQ_SIG, %r10d
        syscall
        test    %rax, %rax
        jnz     fail
        mov     $SYS_getpid, %eax
        syscall
        mov     %rax, %r12
        lea     cs_descriptor(%rip), %rax
        mov     %rax, rseq_area+8(%rip)
cs_start:
        mov     $SYS_kill, %eax
        mov     %r12, %rdi
        mov     $SIGUSR1, %esi
        syscall
        movq    $1, committed(%rip)
cs_end:
        lea     s_committed(%rip), %rdi
        call    print_str
        mov     $SYS_exit_group, %eax
        mov     $1, %edi
        syscall
        .long   RSEQ_SIG
cs_abort:
        lea     s_aborted(%rip), %rdi
        call    print_str
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
fail:   mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall
handler:
        lea     s_handler(%rip), %rdi
        call    print_str
        ret
restorer:
        mov     $SYS_rt_sigreturn, %eax
        syscall
#include "print_helpers.inc"
        .data
        .balign 32
rseq_area:
        .long   0, 0
        .quad   0
        .long   0, 0, 0, 0
        .balign 32
cs_descriptor:
        .long   0, 0
        .quad   cs_start, cs_end - cs_start, cs_abort
        .balign 8
action: .quad   0, 0x04000000, 0, 0            # handler, SA_RESTORER, restorer, mask
committed:  .quad 0
s_committed: .asciz "committed (no abort)\n"
s_aborted:  .asciz "aborted\n"
s_handler:  .asciz "handler\n"
