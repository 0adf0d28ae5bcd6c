/* LOCK on BT, or on BTS/BTR/BTC with a register destination, is #UD (SDM
 * Vol. 2A, LOCK: only read-modify-write memory forms may be locked; never
 * BT), so Linux sends SIGILL with si_code ILL_ILLOPN. Unicorn 2.1.4's
 * translator abort()s on these encodings instead (found by the code fuzzer,
 * case code:1:98816); the emulator must survive that and raise the #UD
 * itself, whether the instruction starts a translation block or sits in the
 * middle of one, and however often it is retried. A locked BTS on memory
 * still works.
 *
 * EXIT: 0
 * STDOUT: ill 0 code=2
 * STDOUT: ill 1 code=2
 * STDOUT: ill 1 code=2
 * STDOUT: ill 1 code=2
 * STDOUT: ill 2 code=2
 * STDOUT: ill 3 code=2
 * STDOUT: rbx=9 mem=8
 * STATS: signals_delivered == 6
 * STATS: signals == 0
 */
#include "linux_syscalls.h"
#define SIGILL 4
#define SA_SIGINFO 4
#define SA_RESTORER 0x04000000
        .text
        .globl _start
_start:
        lea     action(%rip), %rsi
        lea     ill_handler(%rip), %rax
        mov     %rax, (%rsi)
        movq    $SA_SIGINFO | SA_RESTORER, 8(%rsi)
        lea     restorer(%rip), %rax
        mov     %rax, 16(%rsi)
        mov     $SYS_rt_sigaction, %eax
        mov     $SIGILL, %edi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        mov     $1, %eax
        mov     $3, %ecx
        xor     %ebx, %ebx
case0:  .byte   0xf0, 0x0f, 0xa3, 0xc8          # lock bt %ecx,%eax: first in its block
resume0:
        mov     $3, %r12d
1:      add     $1, %rbx                        # ran once per round before the #UD
        add     $2, %rbx
case1:  .byte   0xf0, 0x0f, 0xab, 0xc8          # lock bts %ecx,%eax: mid-block, three rounds
resume1:
        dec     %r12d
        jnz     1b
case2:  .byte   0x66, 0xf0, 0x48, 0x0f, 0xb3, 0xc8  # data16 lock btr %rcx,%rax
resume2:
case3:  .byte   0xf0, 0x0f, 0xba, 0xe8, 0x05    # lock bts $5,%eax
resume3:
        lock btsl $3, word(%rip)                # legal: memory destination
        lea     s_rbx(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        lea     s_mem(%rip), %rdi
        call    print_str
        mov     word(%rip), %edi
        call    print_u64
        call    print_nl
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

ill_handler:                                    # (signo, siginfo, ucontext)
        push    %rdx
        push    %rsi
        mov     168(%rdx), %rax                 # uc_mcontext.gregs[REG_RIP]
        lea     cases(%rip), %rcx
        xor     %r13d, %r13d
2:      cmp     (%rcx,%r13,8), %rax
        je      3f
        inc     %r13d
        cmp     $4, %r13d
        jb      2b
        mov     $SYS_exit_group, %eax           # a SIGILL at an unexpected place
        mov     $1, %edi
        syscall
3:      lea     s_ill(%rip), %rdi
        call    print_str
        mov     %r13, %rdi
        call    print_u64
        lea     s_code(%rip), %rdi
        call    print_str
        mov     (%rsp), %rsi
        movslq  8(%rsi), %rdi                   # si_code
        call    print_i64
        call    print_nl
        pop     %rsi
        pop     %rdx
        lea     resumes(%rip), %rcx
        mov     (%rcx,%r13,8), %rax
        mov     %rax, 168(%rdx)
        ret

restorer:
        mov     $SYS_rt_sigreturn, %eax
        syscall
#include "print_helpers.inc"
        .data
        .balign 8
action:     .quad 0, 0, 0, 0
cases:      .quad case0, case1, case2, case3
resumes:    .quad resume0, resume1, resume2, resume3
word:       .long 0
s_ill:      .asciz "ill "
s_code:     .asciz " code="
s_rbx:      .asciz "rbx="
s_mem:      .asciz " mem="
