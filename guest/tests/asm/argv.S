/* argv.S -- the initial stack (x86-64 psABI 3.4.1): argc at (%rsp), the
 * argv pointers after it, a NULL, the envp pointers, a NULL.
 *
 * Prints argc, then argv[1..argc-1] (argv[0] is left out: it names the
 * ELF natively but the source file when the emulator assembles it), then
 * checks argv[argc] == NULL and prints every environment string and their
 * count.  With arguments "one" "two words" "" and environment
 * LC_ALL=C FOO=bar the expected stdout is:
 *   argc=4
 *   argv[1]=one
 *   argv[2]=two words
 *   argv[3]=
 *   argv[argc]=NULL
 *   env: LC_ALL=C
 *   env: FOO=bar
 *   envc=2
 * Expected exit status: 0 (3 if argv[argc] is not NULL).
 */
#define SYS_write 1
#define SYS_exit_group 231

        .text
        .globl  _start
_start:
        mov     (%rsp), %r12            # argc
        lea     8(%rsp), %r13           # argv
        lea     s_argc(%rip), %rdi
        call    print_str
        mov     %r12, %rdi
        call    print_u64
        call    print_nl

        mov     $1, %r14                # i = 1
1:      cmp     %r12, %r14
        jae     2f
        lea     s_argv(%rip), %rdi
        call    print_str
        mov     %r14, %rdi
        call    print_u64
        lea     s_eq(%rip), %rdi
        call    print_str
        mov     (%r13,%r14,8), %rdi
        call    print_str
        call    print_nl
        inc     %r14
        jmp     1b

2:      cmpq    $0, (%r13,%r12,8)       # argv[argc] must be NULL
        jne     bad_layout
        lea     s_null(%rip), %rdi
        call    print_str

        lea     8(%r13,%r12,8), %r15    # envp = &argv[argc + 1]
        xor     %ebx, %ebx              # envc
3:      mov     (%r15,%rbx,8), %rdi
        test    %rdi, %rdi
        jz      4f
        push    %rdi
        lea     s_env(%rip), %rdi
        call    print_str
        pop     %rdi
        call    print_str
        call    print_nl
        inc     %rbx
        jmp     3b
4:      lea     s_envc(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

bad_layout:
        mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall

        .section .rodata
s_argc: .asciz  "argc="
s_argv: .asciz  "argv["
s_eq:   .asciz  "]="
s_null: .asciz  "argv[argc]=NULL\n"
s_env:  .asciz  "env: "
s_envc: .asciz  "envc="

        .text
#include "print_helpers.inc"
