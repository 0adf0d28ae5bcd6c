/* macros.S -- assembler-level features: .macro with arguments and
 * defaults, .rept, .irp, .set reassignment, .if/.else, and cpp #define
 * with arguments (the file goes through the C preprocessor).
 *
 * Expected stdout:
 *   macro: hello from a macro
 *   rept sum=15
 *   irp sum=1110
 *   set counter=3
 *   if: big
 *   cpp: 42
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

#define TIMES_SIX(x) ((x) * 6)

/* write_str label, len: write(1, label, len) */
        .macro  write_str label, len
        mov     $SYS_write, %eax
        mov     $1, %edi
        lea     \label(%rip), %rsi
        mov     $\len, %edx
        syscall
        .endm

/* add_imm reg, value=1 */
        .macro  add_imm reg, value=1
        add     $\value, \reg
        .endm

        .text
        .globl  _start
_start:
        write_str greet, greet_len

        xor     %ebx, %ebx
        .set    i, 1
        .rept   5
        add_imm %rbx, i
        .set    i, i + 1
        .endr
        lea     s_rept(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        xor     %ebx, %ebx
        .irp    v, 10, 100, 1000
        add_imm %rbx, \v
        .endr
        lea     s_irp(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        .set    counter, 0
        .set    counter, counter + 1
        .set    counter, counter + 2
        lea     s_set(%rip), %rdi
        call    print_str
        mov     $counter, %edi
        call    print_u64
        call    print_nl

        lea     s_if(%rip), %rdi
        call    print_str
        .if     counter > 2
        lea     s_big(%rip), %rdi
        .else
        lea     s_small(%rip), %rdi
        .endif
        call    print_str

        lea     s_cpp(%rip), %rdi
        call    print_str
        mov     $TIMES_SIX(7), %edi
        call    print_u64
        call    print_nl

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

        .section .rodata
greet:  .ascii  "macro: hello from a macro\n"
        .equ    greet_len, . - greet
s_rept: .asciz  "rept sum="
s_irp:  .asciz  "irp sum="
s_set:  .asciz  "set counter="
s_if:   .asciz  "if: "
s_big:  .asciz  "big\n"
s_small: .asciz "small\n"
s_cpp:  .asciz  "cpp: "

        .text
#include "print_helpers.inc"
