/* itoa.S -- integer arithmetic in loops, printed with a hand-written
 * decimal conversion (div by 10).
 *
 * Prints the squares of 0..9 on one line, the sum 1+...+1000, 20!, the
 * powers of two 2^60..2^63 (unsigned), signed values from imul/idiv/sar
 * and a 64-bit multiply's high half (mul -> rdx).
 * Expected stdout:
 *   squares: 0 1 4 9 16 25 36 49 64 81
 *   sum(1..1000)=500500
 *   20!=2432902008176640000
 *   2^60=1152921504606846976
 *   2^61=2305843009213693952
 *   2^62=4611686018427387904
 *   2^63=9223372036854775808
 *   max=18446744073709551615
 *   -7*123456789=-864197523
 *   -1000/7=-142 rem -6
 *   -1000 sar 3=-125
 *   hi(2^63*6)=3
 *   gcd(1071,462)=21
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        lea     s_squares(%rip), %rdi
        call    print_str
        xor     %ebx, %ebx
1:      mov     %rbx, %rdi
        imul    %rbx, %rdi
        call    print_u64
        inc     %rbx
        cmp     $10, %rbx
        je      2f
        lea     s_space(%rip), %rdi
        call    print_str
        jmp     1b
2:      call    print_nl

        /* sum 1..1000 with loop/rcx */
        xor     %eax, %eax
        mov     $1000, %ecx
3:      add     %rcx, %rax
        loop    3b
        mov     %rax, %rbx
        lea     s_sum(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        /* 20! */
        mov     $1, %ebx
        mov     $2, %ecx
4:      imul    %rcx, %rbx
        inc     %rcx
        cmp     $20, %rcx
        jbe     4b
        lea     s_fact(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        /* 2^60 .. 2^63 with shl */
        mov     $60, %r12
5:      lea     s_pow(%rip), %rdi
        call    print_str
        mov     %r12, %rdi
        call    print_u64
        lea     s_eq(%rip), %rdi
        call    print_str
        mov     $1, %edi
        mov     %r12d, %ecx
        shl     %cl, %rdi
        call    print_u64
        call    print_nl
        inc     %r12
        cmp     $63, %r12
        jbe     5b

        lea     s_max(%rip), %rdi
        call    print_str
        mov     $-1, %rdi
        call    print_u64
        call    print_nl

        lea     s_imul(%rip), %rdi
        call    print_str
        mov     $-7, %rdi
        imul    $123456789, %rdi, %rdi
        call    print_i64
        call    print_nl

        lea     s_idiv(%rip), %rdi
        call    print_str
        mov     $-1000, %rax
        cqo
        mov     $7, %rcx
        idiv    %rcx                    # rax = -142, rdx = -6
        mov     %rdx, %rbx
        mov     %rax, %rdi
        call    print_i64
        lea     s_rem(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_i64
        call    print_nl

        lea     s_sar(%rip), %rdi
        call    print_str
        mov     $-1000, %rdi
        sar     $3, %rdi
        call    print_i64
        call    print_nl

        lea     s_mulhi(%rip), %rdi
        call    print_str
        mov     $1, %eax
        shl     $63, %rax
        mov     $6, %ecx
        mul     %rcx                    # rdx:rax = 3 * 2^64
        mov     %rdx, %rdi
        call    print_u64
        call    print_nl

        /* Euclid with div */
        mov     $1071, %eax
        mov     $462, %ecx
6:      test    %rcx, %rcx
        jz      7f
        xor     %edx, %edx
        div     %rcx
        mov     %rcx, %rax
        mov     %rdx, %rcx
        jmp     6b
7:      mov     %rax, %rbx
        lea     s_gcd(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

        .section .rodata
s_squares: .asciz "squares: "
s_space:   .asciz " "
s_sum:     .asciz "sum(1..1000)="
s_fact:    .asciz "20!="
s_pow:     .asciz "2^"
s_eq:      .asciz "="
s_max:     .asciz "max="
s_imul:    .asciz "-7*123456789="
s_idiv:    .asciz "-1000/7="
s_rem:     .asciz " rem "
s_sar:     .asciz "-1000 sar 3="
s_mulhi:   .asciz "hi(2^63*6)="
s_gcd:     .asciz "gcd(1071,462)="

        .text
#include "print_helpers.inc"
