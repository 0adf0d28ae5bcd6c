/* fib.S -- recursion with call/ret and the stack: naive recursive
 * Fibonacci (callee-saved registers pushed and popped on every level) and
 * recursive factorial with a stack frame (%rbp) and a local variable.
 *
 * Expected stdout:
 *   fib: 0 1 1 2 3 5 8 13 21 34 55 89 144 233 377 610 987 1597 2584 4181 6765
 *   fib(25)=75025
 *   fact(20)=2432902008176640000
 *   depth(10000)=10000
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        lea     s_fib(%rip), %rdi
        call    print_str
        xor     %r12d, %r12d
1:      mov     %r12, %rdi
        call    fib
        mov     %rax, %rdi
        call    print_u64
        inc     %r12
        cmp     $20, %r12
        ja      2f
        lea     s_space(%rip), %rdi
        call    print_str
        jmp     1b
2:      call    print_nl

        lea     s_fib25(%rip), %rdi
        call    print_str
        mov     $25, %edi
        call    fib
        mov     %rax, %rdi
        call    print_u64
        call    print_nl

        lea     s_fact(%rip), %rdi
        call    print_str
        mov     $20, %edi
        call    fact
        mov     %rax, %rdi
        call    print_u64
        call    print_nl

        /* 10000 nested calls: about 320 KiB of stack below the initial rsp */
        lea     s_depth(%rip), %rdi
        call    print_str
        mov     $10000, %edi
        call    depth
        mov     %rax, %rdi
        call    print_u64
        call    print_nl

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* fib(n) = n < 2 ? n : fib(n-1) + fib(n-2) */
fib:
        cmp     $2, %rdi
        jb      1f
        push    %rbx
        push    %r13
        mov     %rdi, %rbx
        lea     -1(%rdi), %rdi
        call    fib
        mov     %rax, %r13
        lea     -2(%rbx), %rdi
        call    fib
        add     %r13, %rax
        pop     %r13
        pop     %rbx
        ret
1:      mov     %rdi, %rax
        ret

/* fact(n) = n <= 1 ? 1 : n * fact(n-1), with a frame and a local */
fact:
        push    %rbp
        mov     %rsp, %rbp
        sub     $16, %rsp
        mov     %rdi, -8(%rbp)
        mov     $1, %eax
        cmp     $1, %rdi
        jbe     1f
        dec     %rdi
        call    fact
        imulq   -8(%rbp), %rax
1:      leave
        ret

/* depth(n): n nested calls, each with a 16-byte frame; returns n */
depth:
        push    %rbp
        mov     %rsp, %rbp
        sub     $16, %rsp
        movq    $0x5a5a, -8(%rbp)
        xor     %eax, %eax
        test    %rdi, %rdi
        jz      1f
        dec     %rdi
        call    depth
        inc     %rax
        cmpq    $0x5a5a, -8(%rbp)       # local survived the deeper calls
        je      1f
        mov     $SYS_exit_group, %eax
        mov     $5, %edi
        syscall
1:      leave
        ret

        .section .rodata
s_fib:   .asciz "fib: "
s_space: .asciz " "
s_fib25: .asciz "fib(25)="
s_fact:  .asciz "fact(20)="
s_depth: .asciz "depth(10000)="

        .text
#include "print_helpers.inc"
