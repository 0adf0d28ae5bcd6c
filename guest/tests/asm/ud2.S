/* ud2.S -- an undefined opcode (ud2) kills the process with SIGILL (no
 * handler installed): the shell reports status 132 (128 + 4).
 *
 * Expected stdout:
 *   before ud2
 * Expected: killed by SIGILL (signal 4)
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        mov     $SYS_write, %eax
        mov     $1, %edi
        lea     msg(%rip), %rsi
        mov     $msg_len, %edx
        syscall
        ud2
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

        .section .rodata
msg:    .ascii  "before ud2\n"
        .equ    msg_len, . - msg
