/* The default demo (make run): greets, then prints argc and each argument.
 *
 * Raw Linux syscalls, no libc: reads argc/argv from the initial stack the
 * kernel builds (x86-64 psABI §3.4.1: argc at RSP, argv pointers above it).
 * Expected output for `emu run hello.S hello world`:
 *   Hello from an x86-64 guest on the emulator!
 *   argc = 3
 *   argv[0] = guest/examples/hello.S
 *   argv[1] = hello
 *   argv[2] = world
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl _start
_start:
        mov     (%rsp), %r12            # argc
        lea     8(%rsp), %r13           # argv
        lea     greeting(%rip), %rdi
        call    puts
        lea     argc_label(%rip), %rdi
        call    fputs_noline
        mov     %r12, %rdi
        call    put_decimal
        lea     newline(%rip), %rdi
        call    fputs_noline
        xor     %r14d, %r14d            # i
1:      cmp     %r12, %r14
        jae     2f
        lea     argv_label(%rip), %rdi
        call    fputs_noline
        mov     %r14, %rdi
        call    put_decimal
        lea     argv_close(%rip), %rdi
        call    fputs_noline
        mov     (%r13,%r14,8), %rdi
        call    puts
        inc     %r14
        jmp     1b
2:      mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* puts(rdi): write the NUL-terminated string and a newline. */
puts:
        call    fputs_noline
        lea     newline(%rip), %rdi
        jmp     fputs_noline

/* fputs_noline(rdi): write the NUL-terminated string to stdout. */
fputs_noline:
        mov     %rdi, %rsi
        xor     %edx, %edx
3:      cmpb    $0, (%rsi,%rdx)
        je      4f
        inc     %rdx
        jmp     3b
4:      mov     $SYS_write, %eax
        mov     $1, %edi
        syscall
        ret

/* put_decimal(rdi): write the unsigned number in decimal. */
put_decimal:
        lea     digits_end(%rip), %rsi
        mov     %rdi, %rax
        mov     $10, %ecx
5:      xor     %edx, %edx
        div     %rcx
        add     $'0', %dl
        dec     %rsi
        mov     %dl, (%rsi)
        test    %rax, %rax
        jnz     5b
        lea     digits_end(%rip), %rdx
        sub     %rsi, %rdx
        mov     $SYS_write, %eax
        mov     $1, %edi
        syscall
        ret

        .section .rodata
greeting:   .asciz "Hello from an x86-64 guest on the emulator!"
argc_label: .asciz "argc = "
argv_label: .asciz "argv["
argv_close: .asciz "] = "
newline:    .asciz "\n"

        .bss
digits:     .zero 24
digits_end:
