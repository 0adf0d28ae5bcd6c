/* rep_string.S -- the string instructions with rep prefixes: rep movsb
 * (4000 bytes, and a backward overlapping copy with std), rep stosb,
 * rep stosq, rep movsq, repne scasb as strlen, repe cmpsb as memcmp, lodsb.
 *
 * Expected stdout:
 *   rep stosb: ok
 *   rep movsb: ok
 *   rep movsq: ok
 *   std overlap: xxABCDEFGH
 *   repne scasb strlen=26
 *   repe cmpsb mismatch at 10
 *   lodsb sum=2015
 *   rcx after rep: 0
 *   direction flag clear: ok
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .equ    N, 4000

        .text
        .globl  _start
_start:
        cld
        /* fill src with 'Q' */
        lea     src(%rip), %rdi
        mov     $N, %ecx
        mov     $0x51, %al
        rep stosb
        mov     %rcx, %r15              # must be 0
        lea     src(%rip), %rsi
        mov     $N, %ecx
1:      cmpb    $0x51, -1(%rsi,%rcx)
        jne     2f
        loop    1b
2:      test    %rcx, %rcx
        lea     s_stosb(%rip), %rdi
        call    report

        /* give src a pattern, copy it with rep movsb, compare */
        xor     %ecx, %ecx
3:      lea     src(%rip), %rdi
        mov     %cl, %al
        xor     $0x5a, %al
        mov     %al, (%rdi,%rcx)
        inc     %ecx
        cmp     $N, %ecx
        jb      3b
        lea     src(%rip), %rsi
        lea     dst(%rip), %rdi
        mov     $N, %ecx
        rep movsb
        lea     src(%rip), %rsi
        lea     dst(%rip), %rdi
        mov     $N, %ecx
        repe cmpsb
        lea     s_movsb(%rip), %rdi
        call    report

        /* rep stosq zeroes dst, rep movsq copies src back over it */
        lea     dst(%rip), %rdi
        mov     $N / 8, %ecx
        xor     %eax, %eax
        rep stosq
        lea     src(%rip), %rsi
        lea     dst(%rip), %rdi
        mov     $N / 8, %ecx
        rep movsq
        lea     src(%rip), %rsi
        lea     dst(%rip), %rdi
        mov     $N, %ecx
        repe cmpsb
        lea     s_movsq(%rip), %rdi
        call    report

        /* backward copy of "ABCDEFGH" two bytes to the right, in place */
        std
        lea     overlap + 7(%rip), %rsi
        lea     overlap + 9(%rip), %rdi
        mov     $8, %ecx
        rep movsb
        cld
        movw    $0x7878, overlap(%rip)  # "xx"
        lea     s_std(%rip), %rdi
        call    print_str
        lea     overlap(%rip), %rdi
        call    print_str
        call    print_nl

        /* strlen with repne scasb */
        lea     alpha(%rip), %rdi
        xor     %eax, %eax
        mov     $-1, %rcx
        repne scasb
        not     %rcx
        dec     %rcx
        mov     %rcx, %rbx
        lea     s_scasb(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        /* first mismatch with repe cmpsb */
        lea     alpha(%rip), %rsi
        lea     alpha2(%rip), %rdi
        mov     $26, %ecx
        repe cmpsb
        lea     alpha(%rip), %rax
        sub     %rax, %rsi
        dec     %rsi                    # rsi is one past the mismatch
        mov     %rsi, %rbx
        lea     s_cmpsb(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        /* lodsb over the alphabet: 65+...+90 = 2015 */
        lea     alpha(%rip), %rsi
        xor     %ebx, %ebx
        mov     $26, %ecx
4:      lodsb
        movzbl  %al, %eax
        add     %rax, %rbx
        loop    4b
        lea     s_lodsb(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        lea     s_rcx(%rip), %rdi
        call    print_str
        mov     %r15, %rdi
        call    print_u64
        call    print_nl

        pushfq
        pop     %rax
        test    $0x400, %eax            # DF
        lea     s_df(%rip), %rdi
        call    report

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* report: print the label at %rdi followed by "ok" if ZF is set, else
 * "FAILED" */
report:
        push    %rbx
        setz    %bl
        call    print_str
        lea     s_ok(%rip), %rdi
        test    %bl, %bl
        jnz     1f
        lea     s_failed(%rip), %rdi
1:      call    print_str
        pop     %rbx
        ret

        .data
overlap: .asciz "ABCDEFGH\0\0"
alpha:   .asciz "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
alpha2:  .asciz "ABCDEFGHIJkLMNOPQRSTUVWXYZ"

        .section .rodata
s_stosb: .asciz "rep stosb: "
s_movsb: .asciz "rep movsb: "
s_movsq: .asciz "rep movsq: "
s_std:   .asciz "std overlap: "
s_scasb: .asciz "repne scasb strlen="
s_cmpsb: .asciz "repe cmpsb mismatch at "
s_lodsb: .asciz "lodsb sum="
s_rcx:   .asciz "rcx after rep: "
s_df:    .asciz "direction flag clear: "
s_ok:    .asciz "ok\n"
s_failed: .asciz "FAILED\n"

        .bss
        .balign 64
src:    .zero   N
dst:    .zero   N

        .text
#include "print_helpers.inc"
