/* bss.S -- a large .bss (segment memsz far beyond filesz): 3 MiB of zeroes
 * that must read as zero on every page, be writable, and not disturb the
 * initialized .data that shares the segment; .fill and .zero data.
 *
 * Expected stdout:
 *   data intact: ok
 *   bss zero: ok
 *   bss written: sum=1536
 *   fill: ok
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .equ    BIG, 3 * 1024 * 1024

        .text
        .globl  _start
_start:
        mov     before(%rip), %rax
        xor     after_magic(%rip), %rax
        mov     $0x0123456789abcdef ^ 0x7766554433221100, %rdx
        cmp     %rdx, %rax
        lea     s_data(%rip), %rdi
        call    report

        /* every qword of the big bss is zero */
        lea     bigbuf(%rip), %rsi
        mov     $BIG / 8, %ecx
        xor     %eax, %eax
1:      or      -8(%rsi,%rcx,8), %rax
        dec     %rcx
        jnz     1b
        test    %rax, %rax
        lea     s_zero(%rip), %rdi
        call    report

        /* write 2 to the first byte of each page (768 pages), sum them */
        lea     bigbuf(%rip), %rsi
        xor     %ecx, %ecx
2:      movb    $2, (%rsi,%rcx)
        add     $4096, %ecx
        cmp     $BIG, %ecx
        jb      2b
        xor     %ebx, %ebx
        xor     %ecx, %ecx
3:      movzbl  (%rsi,%rcx), %eax
        add     %rax, %rbx
        inc     %ecx
        cmp     $BIG, %ecx
        jb      3b
        lea     s_sum(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        /* .fill 40, 2, 0x4142 = 40 halfwords "BA"; .zero 8 after it */
        lea     filled(%rip), %rsi
        xor     %ecx, %ecx
        xor     %eax, %eax
4:      cmpw    $0x4142, (%rsi,%rcx,2)
        jne     5f
        inc     %ecx
        cmp     $40, %ecx
        jb      4b
        cmpq    $0, 80(%rsi)
5:      lea     s_fill(%rip), %rdi
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
        .balign 8
before: .quad   0x0123456789abcdef
filled: .fill   40, 2, 0x4142
        .zero   8
after_magic: .quad 0x7766554433221100

        .section .rodata
s_data:   .asciz "data intact: "
s_zero:   .asciz "bss zero: "
s_sum:    .asciz "bss written: sum="
s_fill:   .asciz "fill: "
s_ok:     .asciz "ok\n"
s_failed: .asciz "FAILED\n"

        .bss
        .balign 4096
bigbuf: .zero   BIG

        .text
#include "print_helpers.inc"
