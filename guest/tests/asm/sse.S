/* sse.S -- SSE2 integer and scalar double arithmetic on XMM registers.
 *
 * movdqa loads/stores of aligned .data vectors, paddd, pshufd (reverse
 * the dwords), pmuludq, pxor, pcmpeqd + pmovmskb, movq xmm<->gpr;
 * cvtsi2sd, mulsd, divsd, sqrtsd, addsd, cvttsd2si, ucomisd.
 * Expected stdout:
 *   paddd: 11 22 33 44
 *   pshufd reversed: 44 33 22 11
 *   movq low qword: 94489280523
 *   pmuludq: 30000000000 2000000
 *   pcmpeqd mask: 0x0f0f
 *   cvt/mulsd: 7 * 2.5 = 17
 *   divsd/sqrtsd: sqrt(1e6 / 4) = 500
 *   sum of 0.1 ten times < 1: yes
 *   pxor zero: yes
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        movdqa  vec_a(%rip), %xmm0
        paddd   vec_b(%rip), %xmm0
        movdqa  %xmm0, result(%rip)
        lea     s_paddd(%rip), %rdi
        call    print_str
        call    print_result

        pshufd  $0x1b, %xmm0, %xmm1     # dwords 3,2,1,0
        movdqa  %xmm1, result(%rip)
        lea     s_pshufd(%rip), %rdi
        call    print_str
        call    print_result

        movq    %xmm0, %rdi             # dwords 1:0 = 22:11
        push    %rdi
        lea     s_movq(%rip), %rdi
        call    print_str
        pop     %rdi
        call    print_u64
        call    print_nl

        /* pmuludq multiplies dwords 0 and 2 into two qwords */
        movdqa  mul_a(%rip), %xmm2
        pmuludq mul_b(%rip), %xmm2
        movdqa  %xmm2, result(%rip)
        lea     s_pmul(%rip), %rdi
        call    print_str
        mov     result(%rip), %rdi
        call    print_u64
        lea     s_space(%rip), %rdi
        call    print_str
        mov     result + 8(%rip), %rdi
        call    print_u64
        call    print_nl

        /* equal dwords 0 and 2 -> byte mask 0x0f0f */
        movdqa  vec_a(%rip), %xmm3
        pcmpeqd cmp_b(%rip), %xmm3
        pmovmskb %xmm3, %ebx
        lea     s_mask(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_hex16
        call    print_nl

        /* scalar double */
        mov     $7, %eax
        cvtsi2sd %eax, %xmm4
        mulsd   two_point_five(%rip), %xmm4
        cvttsd2si %xmm4, %rbx           # 17.5 truncates to 17
        lea     s_cvt(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        mov     $1000000, %eax
        cvtsi2sd %rax, %xmm5
        divsd   four(%rip), %xmm5
        sqrtsd  %xmm5, %xmm5
        cvttsd2si %xmm5, %rbx
        lea     s_sqrt(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        pxor    %xmm6, %xmm6
        mov     $10, %ecx
1:      addsd   tenth(%rip), %xmm6
        dec     %ecx
        jnz     1b
        ucomisd one(%rip), %xmm6
        lea     s_yes(%rip), %rbx
        jb      2f
        lea     s_no(%rip), %rbx
2:      lea     s_tenth(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_str

        movdqa  vec_a(%rip), %xmm7
        pxor    %xmm7, %xmm7
        movq    %xmm7, %rax
        pshufd  $0xee, %xmm7, %xmm7     # high qword down
        movq    %xmm7, %rdx
        or      %rdx, %rax
        lea     s_yes(%rip), %rbx
        jz      3f
        lea     s_no(%rip), %rbx
3:      lea     s_pxor(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_str

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* print_result: the four dwords at result, space separated */
print_result:
        push    %r12
        xor     %r12d, %r12d
1:      lea     result(%rip), %rax
        movl    (%rax,%r12,4), %edi
        call    print_u64
        inc     %r12
        cmp     $4, %r12
        jae     2f
        lea     s_space(%rip), %rdi
        call    print_str
        jmp     1b
2:      call    print_nl
        pop     %r12
        ret

/* print_hex16: %rdi as 0x + four hex digits */
print_hex16:
        lea     hexbuf + 2(%rip), %rsi
        mov     $4, %ecx
1:      rol     $4, %di                 # top nibble into the low 4 bits
        mov     %edi, %eax
        and     $15, %eax
        lea     hexdigits(%rip), %rdx
        movb    (%rdx,%rax), %al
        movb    %al, (%rsi)
        inc     %rsi
        dec     %ecx
        jnz     1b
        lea     hexbuf(%rip), %rdi
        jmp     print_str

        .data
        .balign 16
vec_a:  .long   1, 2, 3, 4
vec_b:  .long   10, 20, 30, 40
cmp_b:  .long   1, 0, 3, 0
mul_a:  .long   100000, 0xdead, 1000, 0xbeef
mul_b:  .long   300000, 0xffff, 2000, 0xffff
result: .zero   16
hexbuf: .asciz  "0x0000"
two_point_five: .double 2.5
four:   .double 4.0
tenth:  .double 0.1
one:    .double 1.0

        .section .rodata
hexdigits: .ascii "0123456789abcdef"
s_paddd:  .asciz "paddd: "
s_pshufd: .asciz "pshufd reversed: "
s_movq:   .asciz "movq low qword: "
s_pmul:   .asciz "pmuludq: "
s_mask:   .asciz "pcmpeqd mask: "
s_cvt:    .asciz "cvt/mulsd: 7 * 2.5 = "
s_sqrt:   .asciz "divsd/sqrtsd: sqrt(1e6 / 4) = "
s_tenth:  .asciz "sum of 0.1 ten times < 1: "
s_pxor:   .asciz "pxor zero: "
s_yes:    .asciz "yes\n"
s_no:     .asciz "no\n"
s_space:  .asciz " "

        .text
#include "print_helpers.inc"
