/* hello.S -- the smallest guest: one write(2) to stdout, then exit_group(0).
 *
 * Expected stdout:
 *   Hello, world!
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        mov     $SYS_write, %eax
        mov     $1, %edi                # fd 1: stdout
        lea     msg(%rip), %rsi
        mov     $msg_len, %edx
        syscall
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

        .section .rodata
msg:    .ascii  "Hello, world!\n"
        .equ    msg_len, . - msg
