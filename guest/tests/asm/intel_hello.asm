# intel_hello.asm -- the GNU-as Intel dialect (.intel_syntax noprefix; the
# file is assembled as if that directive were its first line).
#
# Writes a greeting with write(2), computes the length of a NUL-terminated
# string with a byte loop ("byte ptr [base + index]" operands) and writes
# it, calls a subroutine that writes three stars via a counted loop, and
# exits with exit_group(0).
# Expected stdout:
#   Hello from Intel syntax!
#   strlen=26
#   ***
# Expected exit status: 0

        .equ    SYS_WRITE, 1
        .equ    SYS_EXIT_GROUP, 231

        .section .rodata
greeting:
        .ascii  "Hello from Intel syntax!\n"
        .equ    GREETING_LEN, . - greeting
alphabet:
        .asciz  "abcdefghijklmnopqrstuvwxyz"
label:
        .ascii  "strlen="
        .equ    LABEL_LEN, . - label
star:
        .ascii  "*"
newline:
        .ascii  "\n"

        .bss
digits: .zero   4

        .text
        .globl  _start
_start:
        mov     eax, SYS_WRITE
        mov     edi, 1
        lea     rsi, [rip + greeting]
        mov     edx, GREETING_LEN
        syscall

        lea     rsi, [rip + alphabet]
        xor     ecx, ecx
1:      movzx   eax, byte ptr [rsi + rcx]
        test    eax, eax
        jz      2f
        inc     rcx
        jmp     1b
2:      mov     qword ptr [rsp - 8], rcx    # red zone: keep the length

        mov     eax, SYS_WRITE
        mov     edi, 1
        lea     rsi, [rip + label]
        mov     edx, LABEL_LEN
        syscall

        mov     rax, qword ptr [rsp - 8]    # two decimal digits
        xor     edx, edx
        mov     ecx, 10
        div     rcx
        add     al, 0x30
        add     dl, 0x30
        lea     rsi, [rip + digits]
        mov     byte ptr [rsi], al
        mov     byte ptr [rsi + 1], dl
        mov     byte ptr [rsi + 2], 10
        mov     eax, SYS_WRITE
        mov     edi, 1
        mov     edx, 3
        syscall

        mov     ebx, 3
        call    stars

        mov     eax, SYS_EXIT_GROUP
        xor     edi, edi
        syscall

# stars: write ebx stars, then a newline
stars:
        push    rbx
3:      mov     eax, SYS_WRITE
        mov     edi, 1
        lea     rsi, [rip + star]
        mov     edx, 1
        syscall
        dec     ebx
        jnz     3b
        mov     eax, SYS_WRITE
        mov     edi, 1
        lea     rsi, [rip + newline]
        mov     edx, 1
        syscall
        pop     rbx
        ret
