/* brk.S -- growing and shrinking the heap with brk(2).
 *
 * brk(0) returns the current break (page-aligned or not, never printed);
 * growing it by 1 MiB + 100 bytes returns the requested value; the new
 * memory reads as zero, is written with a pattern and summed; shrinking
 * back and growing again gives zeroed memory again (the pages were freed);
 * an absurd request (break below the start) leaves the break unchanged.
 * Expected stdout:
 *   grow: ok
 *   zero-filled: ok
 *   sum=133705306
 *   shrink: ok
 *   regrow zero-filled: ok
 *   bad brk keeps break: ok
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_brk 12
#define SYS_exit_group 231

        .equ    GROW, 0x100000 + 100

        .text
        .globl  _start
_start:
        mov     $SYS_brk, %eax
        xor     %edi, %edi
        syscall
        mov     %rax, %r12              # r12 = initial break

        lea     GROW(%r12), %rdi
        mov     $SYS_brk, %eax
        syscall
        lea     GROW(%r12), %rdx
        lea     s_grow(%rip), %rdi
        cmp     %rdx, %rax
        call    report

        /* all new bytes read as zero */
        mov     %r12, %rsi
        xor     %eax, %eax
        mov     $GROW, %ecx
1:      or      (%rsi), %al
        inc     %rsi
        dec     %ecx
        jnz     1b
        test    %al, %al
        lea     s_zero(%rip), %rdi
        call    report

        /* write byte i*7 (mod 256) at offset i, then sum them */
        xor     %ecx, %ecx
2:      imul    $7, %ecx, %eax
        mov     %al, (%r12,%rcx)
        inc     %ecx
        cmp     $GROW, %ecx
        jb      2b
        xor     %ebx, %ebx
        xor     %ecx, %ecx
3:      movzbl  (%r12,%rcx), %eax
        add     %rax, %rbx
        inc     %ecx
        cmp     $GROW, %ecx
        jb      3b
        lea     s_sum(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        mov     %r12, %rdi
        mov     $SYS_brk, %eax
        syscall
        cmp     %r12, %rax
        lea     s_shrink(%rip), %rdi
        call    report

        lea     GROW(%r12), %rdi
        mov     $SYS_brk, %eax
        syscall
        /* sample one byte per 512: must be zero again */
        xor     %eax, %eax
        xor     %ecx, %ecx
4:      or      (%r12,%rcx), %al
        add     $512, %ecx
        cmp     $GROW, %ecx
        jb      4b
        test    %al, %al
        lea     s_regrow(%rip), %rdi
        call    report

        mov     $4096, %edi             # far below the program
        mov     $SYS_brk, %eax
        syscall
        lea     GROW(%r12), %rdx
        cmp     %rdx, %rax
        lea     s_bad(%rip), %rdi
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

        .section .rodata
s_grow:   .asciz "grow: "
s_zero:   .asciz "zero-filled: "
s_sum:    .asciz "sum="
s_shrink: .asciz "shrink: "
s_regrow: .asciz "regrow zero-filled: "
s_bad:    .asciz "bad brk keeps break: "
s_ok:     .asciz "ok\n"
s_failed: .asciz "FAILED\n"

        .text
#include "print_helpers.inc"
