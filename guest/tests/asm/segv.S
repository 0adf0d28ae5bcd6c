/* segv.S -- a store to an unmapped address kills the process with SIGSEGV
 * (no handler installed): the shell reports status 139 (128 + 11).
 *
 * Expected stdout:
 *   before the fault
 * (and nothing after it)
 * Expected: killed by SIGSEGV (signal 11)
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
        movl    $1, 0x10                # page 0 is never mapped
        mov     $SYS_write, %eax
        mov     $1, %edi
        lea     after(%rip), %rsi
        mov     $after_len, %edx
        syscall
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

        .section .rodata
msg:    .ascii  "before the fault\n"
        .equ    msg_len, . - msg
after:  .ascii  "after the fault (wrong)\n"
        .equ    after_len, . - after
