/* exit_status.S -- the exit status reaches the parent: exit(2) with 42.
 *
 * Also checks that the write(2) return value is the byte count and that
 * exit (60, not exit_group) ends a single-threaded process.
 * Expected stdout:
 *   exiting with status 42
 * Expected exit status: 42
 */
#define SYS_write 1
#define SYS_exit 60

        .set    STATUS, 42

        .text
        .globl  _start
_start:
        mov     $SYS_write, %eax
        mov     $1, %edi
        lea     msg(%rip), %rsi
        mov     $msg_len, %edx
        syscall
        cmp     $msg_len, %rax          # a short or failed write exits 1
        jne     1f
        mov     $SYS_exit, %eax
        mov     $STATUS, %edi
        syscall
1:      mov     $SYS_exit, %eax
        mov     $1, %edi
        syscall

        .section .rodata
msg:    .ascii  "exiting with status 42\n"
        .equ    msg_len, . - msg
