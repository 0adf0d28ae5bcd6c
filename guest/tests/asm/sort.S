/* sort.S -- insertion sort of a signed .quad array in .data (signed
 * compares, scaled-index addressing, nested loops), then an unsigned sort
 * of a .long array by a byte-sized .byte table of weights.
 *
 * Expected stdout:
 *   before: 42 -7 19 0 -9223372036854775808 3 3 9223372036854775807 -1 100 27 -50
 *   after: -9223372036854775808 -50 -7 -1 0 3 3 19 27 42 100 9223372036854775807
 *   by weight: 4 2 0 3 1
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        lea     s_before(%rip), %rdi
        call    print_str
        call    print_array

        /* insertion sort: for i in 1..n-1, sift a[i] down */
        lea     array(%rip), %rbx
        mov     $1, %ecx
1:      cmp     $COUNT, %rcx
        jae     4f
        mov     (%rbx,%rcx,8), %rax     # key
        mov     %rcx, %rdx              # j = i
2:      test    %rdx, %rdx
        jz      3f
        mov     -8(%rbx,%rdx,8), %rsi
        cmp     %rax, %rsi
        jle     3f                      # signed: a[j-1] <= key
        mov     %rsi, (%rbx,%rdx,8)
        dec     %rdx
        jmp     2b
3:      mov     %rax, (%rbx,%rdx,8)
        inc     %rcx
        jmp     1b

4:      lea     s_after(%rip), %rdi
        call    print_str
        call    print_array

        /* order the indices 0..4 by weights[index], unsigned bytes */
        lea     order(%rip), %rbx
        lea     weights(%rip), %r8
        mov     $1, %ecx
5:      cmp     $5, %ecx
        jae     8f
        movl    (%rbx,%rcx,4), %eax     # key index
        movzbl  (%r8,%rax), %r9d        # key weight
        mov     %ecx, %edx
6:      test    %edx, %edx
        jz      7f
        movl    -4(%rbx,%rdx,4), %esi
        movzbl  (%r8,%rsi), %r10d
        cmp     %r9d, %r10d
        jbe     7f                      # unsigned compare
        movl    %esi, (%rbx,%rdx,4)
        dec     %edx
        jmp     6b
7:      movl    %eax, (%rbx,%rdx,4)
        inc     %ecx
        jmp     5b
8:      lea     s_weight(%rip), %rdi
        call    print_str
        xor     %r12d, %r12d
9:      movl    (%rbx,%r12,4), %edi
        call    print_u64
        inc     %r12
        cmp     $5, %r12
        jae     10f
        lea     s_space(%rip), %rdi
        call    print_str
        jmp     9b
10:     call    print_nl

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* print_array: the COUNT signed qwords of array, space separated */
print_array:
        push    %rbx
        push    %r12
        lea     array(%rip), %rbx
        xor     %r12d, %r12d
1:      mov     (%rbx,%r12,8), %rdi
        call    print_i64
        inc     %r12
        cmp     $COUNT, %r12
        jae     2f
        lea     s_space(%rip), %rdi
        call    print_str
        jmp     1b
2:      call    print_nl
        pop     %r12
        pop     %rbx
        ret

        .data
        .balign 8
array:  .quad   42, -7, 19, 0, 0x8000000000000000, 3, 3, 0x7fffffffffffffff
        .quad   -1, 100, 27, -50
        .equ    COUNT, (. - array) / 8
order:  .long   0, 1, 2, 3, 4
weights: .byte  200, 250, 17, 201, 3

        .section .rodata
s_before: .asciz "before: "
s_after:  .asciz "after: "
s_weight: .asciz "by weight: "
s_space:  .asciz " "

        .text
#include "print_helpers.inc"
