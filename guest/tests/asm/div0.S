/* div0.S -- an integer division by zero (#DE) kills the process with
 * SIGFPE (no handler installed): the shell reports status 136 (128 + 8).
 *
 * Expected stdout:
 *   dividing by zero
 * Expected: killed by SIGFPE (signal 8)
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
        mov     $1234, %eax
        xor     %edx, %edx
        xor     %ecx, %ecx
        div     %ecx
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

        .section .rodata
msg:    .ascii  "dividing by zero\n"
        .equ    msg_len, . - msg
