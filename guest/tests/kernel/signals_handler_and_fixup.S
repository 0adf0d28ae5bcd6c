/* Signals: a SIGUSR1 handler (SA_SIGINFO|SA_RESTORER) sees signo and
 * si_code SI_USER from kill(); then a SIGSEGV handler for a load from
 * address 0x10 sees si_addr = 0x10 and SEGV_MAPERR, moves the interrupted
 * RIP (uc_mcontext.gregs[REG_RIP], ucontext + 168) to a recovery label, and
 * rt_sigreturn resumes there.
 *
 * EXIT: 0
 * STDOUT: usr1 signo=10 code=0
 * STDOUT: back from usr1
 * STDOUT: segv addr=0000000000000010 code=1
 * STDOUT: recovered
 * STATS: signals_delivered == 2
 * STATS: signals == 0
 * STATS: syscall_counts.rt_sigreturn == 2
 */
#include "linux_syscalls.h"
#define SIGUSR1 10
#define SIGSEGV 11
#define SA_SIGINFO 4
#define SA_RESTORER 0x04000000
        .text
        .globl _start
_start:
        lea     usr1_handler(%rip), %rax
        mov     $SIGUSR1, %edi
        call    install
        lea     segv_handler(%rip), %rax
        mov     $SIGSEGV, %edi
        call    install
        mov     $SYS_getpid, %eax
        syscall
        mov     %rax, %rdi
        mov     $SYS_kill, %eax
        mov     $SIGUSR1, %esi
        syscall
        lea     s_back(%rip), %rdi
        call    print_str
        mov     $0x10, %eax
        mov     (%rax), %rbx                    # faults: SIGSEGV
        lea     s_not_reached(%rip), %rdi
        call    print_str
recovery:
        lea     s_recovered(%rip), %rdi
        call    print_str
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

install:                                        # rt_sigaction(%edi, {handler %rax}, NULL, 8)
        lea     action(%rip), %rsi
        mov     %rax, (%rsi)
        movq    $SA_SIGINFO | SA_RESTORER, 8(%rsi)
        lea     restorer(%rip), %rax
        mov     %rax, 16(%rsi)
        mov     $SYS_rt_sigaction, %eax
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        ret

usr1_handler:                                   # (signo, siginfo, ucontext)
        push    %rsi
        push    %rdi
        lea     s_usr1(%rip), %rdi
        call    print_str
        pop     %rdi
        call    print_u64
        lea     s_code(%rip), %rdi
        call    print_str
        pop     %rsi
        movslq  8(%rsi), %rdi                   # si_code
        call    print_i64
        jmp     print_nl

segv_handler:
        push    %rdx
        push    %rsi
        lea     s_segv(%rip), %rdi
        call    print_str
        mov     (%rsp), %rsi
        mov     16(%rsi), %rdi                  # si_addr
        lea     hex_buffer(%rip), %r10
        mov     %rdi, %rax
        mov     $16, %ecx
        call    put_hex
        lea     hex_buffer(%rip), %rsi
        mov     $SYS_write, %eax
        mov     $1, %edi
        mov     $16, %edx
        syscall
        lea     s_code(%rip), %rdi
        call    print_str
        pop     %rsi
        movslq  8(%rsi), %rdi
        call    print_i64
        call    print_nl
        pop     %rdx
        lea     recovery(%rip), %rax
        mov     %rax, 168(%rdx)                 # uc_mcontext.gregs[REG_RIP]
        ret

restorer:
        mov     $SYS_rt_sigreturn, %eax
        syscall
#include "print_helpers.inc"
#include "hex_helpers.inc"
        .data
        .balign 8
action:     .quad 0, 0, 0, 0
hex_buffer: .zero 16
s_usr1:     .asciz "usr1 signo="
s_code:     .asciz " code="
s_back:     .asciz "back from usr1\n"
s_segv:     .asciz "segv addr="
s_recovered: .asciz "recovered\n"
s_not_reached: .asciz "not reached\n"
