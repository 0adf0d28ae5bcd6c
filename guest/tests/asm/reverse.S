/* reverse.S -- byte loads and stores in .data and .bss: reverses a string
 * from .data into a .bss buffer, reverses another .data string in place
 * (writing to .data), and checks that .bss starts zeroed.
 *
 * Expected stdout:
 *   !dlrow ,olleH
 *   racecar is a palindrome
 *   ZYXWVUTSRQPONMLKJIHGFEDCBA
 *   bss zeroed: yes
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_exit_group 231

        .equ    BUF_SIZE, 64

        .text
        .globl  _start
_start:
        /* .bss must be zero before we touch it */
        lea     buffer(%rip), %rsi
        mov     $BUF_SIZE, %ecx
        xor     %eax, %eax
0:      or      (%rsi), %al
        inc     %rsi
        dec     %ecx
        jnz     0b
        mov     %al, bss_check(%rip)

        /* copy hello reversed into buffer */
        lea     hello(%rip), %rsi
        mov     $hello_len, %ecx
        lea     buffer(%rip), %rdi
1:      movzbl  -1(%rsi,%rcx), %eax
        mov     %al, (%rdi)
        inc     %rdi
        dec     %ecx
        jnz     1b
        movb    $0, (%rdi)
        lea     buffer(%rip), %rdi
        call    print_str
        call    print_nl

        /* palindrome check: compare with its own reversal */
        lea     race(%rip), %rdi
        call    reverse_in_place
        lea     race(%rip), %rdi
        call    print_str
        lea     s_pal(%rip), %rdi
        call    print_str

        lea     alphabet(%rip), %rdi
        call    reverse_in_place
        lea     alphabet(%rip), %rdi
        call    print_str
        call    print_nl

        lea     s_bss(%rip), %rdi
        call    print_str
        lea     s_yes(%rip), %rdi
        cmpb    $0, bss_check(%rip)
        je      2f
        lea     s_no(%rip), %rdi
2:      call    print_str

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* reverse_in_place(rdi = NUL-terminated string) */
reverse_in_place:
        mov     %rdi, %rsi
1:      cmpb    $0, (%rsi)              # rsi -> terminating NUL
        je      2f
        inc     %rsi
        jmp     1b
2:      dec     %rsi                    # rsi -> last character
3:      cmp     %rsi, %rdi
        jae     4f
        movb    (%rdi), %al
        movb    (%rsi), %dl
        movb    %dl, (%rdi)
        movb    %al, (%rsi)
        inc     %rdi
        dec     %rsi
        jmp     3b
4:      ret

        .data
hello:    .ascii "Hello, world!"
        .equ    hello_len, . - hello
race:     .asciz "racecar"
alphabet: .asciz "ABCDEFGHIJKLMNOPQRSTUVWXYZ"

        .section .rodata
s_pal:  .asciz  " is a palindrome\n"
s_bss:  .asciz  "bss zeroed: "
s_yes:  .asciz  "yes\n"
s_no:   .asciz  "no\n"

        .bss
        .balign 16
buffer:    .zero BUF_SIZE
bss_check: .zero 1

        .text
#include "print_helpers.inc"
