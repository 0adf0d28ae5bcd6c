# AT&T first, then Intel, then AT&T again, in one .s file.
        .text
        .globl  _start
_start:
        mov     $1, %eax
        lea     msg(%rip), %rsi
        .intel_syntax noprefix
        mov     edx, msg_len
        lea     rdi, [rip + msg]
        mov     rax, qword ptr [rsp + 8]
        movzx   ecx, byte ptr [rsi + rdx*1 - 1]
        jmp     1f
        .att_syntax prefix
1:      mov     $60, %eax
        syscall
        .intel_syntax
        add     %rax, 0x10
        .att_syntax
        ret
        .section .rodata
msg:    .ascii  "switch\n"
        .equ    msg_len, . - msg
