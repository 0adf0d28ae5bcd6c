/* stdin_cat.S -- read(2) from fd 0 until end of file, echoing each chunk
 * to stdout (a 5-byte buffer, so reads return short counts), then a
 * summary line with the total byte count and the number of newlines.
 *
 * Expected stdout for stdin "line one\nline two\n":
 *   line one
 *   line two
 *   bytes=18 lines=2
 * Expected exit status: 0 (1 if read fails)
 */
#define SYS_read 0
#define SYS_write 1
#define SYS_exit_group 231

        .equ    CHUNK, 5

        .text
        .globl  _start
_start:
        xor     %r12d, %r12d            # total bytes
        xor     %r13d, %r13d            # newlines
1:      mov     $SYS_read, %eax
        xor     %edi, %edi
        lea     buf(%rip), %rsi
        mov     $CHUNK, %edx
        syscall
        test    %rax, %rax
        js      fail
        jz      3f
        add     %rax, %r12
        mov     %rax, %rdx              # count newlines in this chunk
        xor     %ecx, %ecx
        lea     buf(%rip), %rsi
2:      cmpb    $10, (%rsi,%rcx)
        jne     4f
        inc     %r13
4:      inc     %rcx
        cmp     %rdx, %rcx
        jb      2b
        mov     $SYS_write, %eax        # rdx = count, rsi = buf
        mov     $1, %edi
        syscall
        jmp     1b

3:      lea     s_bytes(%rip), %rdi
        call    print_str
        mov     %r12, %rdi
        call    print_u64
        lea     s_lines(%rip), %rdi
        call    print_str
        mov     %r13, %rdi
        call    print_u64
        call    print_nl
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

fail:   mov     $SYS_exit_group, %eax
        mov     $1, %edi
        syscall

        .section .rodata
s_bytes: .asciz "bytes="
s_lines: .asciz " lines="

        .bss
buf:    .zero   CHUNK

        .text
#include "print_helpers.inc"
