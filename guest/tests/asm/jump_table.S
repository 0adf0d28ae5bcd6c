/* jump_table.S -- indirect jumps and calls through tables of .quad label
 * addresses (absolute relocations in .rodata / .data), as a C switch
 * compiles to: a tiny bytecode interpreter for a stack machine computes
 * (2 + 3) * 7 - 4 = 31 and 10! / 9! = 10, then a table of function
 * pointers is called in order.
 *
 * Expected stdout:
 *   program 1: 31
 *   program 2: 10
 *   handlers: zero one two
 *   out-of-range opcode rejected
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .equ    OP_HALT, 0
        .equ    OP_PUSH, 1
        .equ    OP_ADD, 2
        .equ    OP_SUB, 3
        .equ    OP_MUL, 4
        .equ    OP_DIV, 5
        .equ    OP_PRINT, 6
        .equ    NOPS, 7

        .text
        .globl  _start
_start:
        lea     s_prog1(%rip), %rdi
        call    print_str
        lea     prog1(%rip), %rdi
        call    interpret
        lea     s_prog2(%rip), %rdi
        call    print_str
        lea     prog2(%rip), %rdi
        call    interpret

        lea     s_handlers(%rip), %rdi
        call    print_str
        xor     %ebx, %ebx
1:      lea     handlers(%rip), %rax
        call    *(%rax,%rbx,8)
        inc     %ebx
        cmp     $3, %ebx
        jb      1b
        call    print_nl

        lea     prog_bad(%rip), %rdi
        call    interpret               # returns rax = -1
        cmp     $-1, %rax
        jne     2f
        lea     s_rejected(%rip), %rdi
        call    print_str
2:      mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* interpret(rdi = bytecode: op byte, PUSH followed by a signed qword);
 * the operand stack is the machine stack; returns rax = 0, or -1 for a
 * bad opcode */
interpret:
        push    %rbx
        push    %rbp
        mov     %rsp, %rbp
        mov     %rdi, %rbx
next:   movzbl  (%rbx), %eax
        inc     %rbx
        cmp     $NOPS, %eax
        jae     op_bad
        lea     optable(%rip), %rdx
        jmp     *(%rdx,%rax,8)
op_push:
        push    (%rbx)
        add     $8, %rbx
        jmp     next
op_add: pop     %rax
        add     %rax, (%rsp)
        jmp     next
op_sub: pop     %rax
        sub     %rax, (%rsp)
        jmp     next
op_mul: pop     %rcx
        pop     %rax
        imul    %rcx, %rax
        push    %rax
        jmp     next
op_div: pop     %rcx
        pop     %rax
        cqo
        idiv    %rcx
        push    %rax
        jmp     next
op_print:
        pop     %rdi
        call    print_i64
        call    print_nl
        jmp     next
op_halt:
        xor     %eax, %eax
        jmp     1f
op_bad: mov     $-1, %rax
1:      mov     %rbp, %rsp
        pop     %rbp
        pop     %rbx
        ret

h_zero: lea     s_zero(%rip), %rdi
        jmp     print_str
h_one:  lea     s_one(%rip), %rdi
        jmp     print_str
h_two:  lea     s_two(%rip), %rdi
        jmp     print_str

        .section .rodata
        .balign 8
optable:
        .quad   op_halt, op_push, op_add, op_sub, op_mul, op_div, op_print

        .data
        .balign 8
handlers:
        .quad   h_zero
        .quad   h_one
        .quad   h_two
prog1:  .byte   OP_PUSH
        .quad   2
        .byte   OP_PUSH
        .quad   3
        .byte   OP_ADD, OP_PUSH
        .quad   7
        .byte   OP_MUL, OP_PUSH
        .quad   4
        .byte   OP_SUB, OP_PRINT, OP_HALT
prog2:  .byte   OP_PUSH
        .quad   3628800
        .byte   OP_PUSH
        .quad   362880
        .byte   OP_DIV, OP_PRINT, OP_HALT
prog_bad:
        .byte   OP_PUSH
        .quad   1
        .byte   99

        .section .rodata
s_prog1:    .asciz "program 1: "
s_prog2:    .asciz "program 2: "
s_handlers: .asciz "handlers:"
s_zero:     .asciz " zero"
s_one:      .asciz " one"
s_two:      .asciz " two"
s_rejected: .asciz "out-of-range opcode rejected\n"

        .text
#include "print_helpers.inc"
