/* A .S guest: the C preprocessor runs first (#include, #define with
 * arguments, #if), then the assembler. */
#include <linux_syscalls.h>
#include "fixture_defs.h"

#define STDOUT 1
#define SYSCALL3(nr, a, b, c) \
        mov $(nr), %eax ; mov a, %rdi ; lea b, %rsi ; mov c, %rdx ; syscall

        .text
        .globl  _start
_start:
        SYSCALL3(SYS_write, $STDOUT, greeting(%rip), $greeting_len)
#if FIXTURE_FLAVOUR == 2
        mov     $SYS_getpid, %eax
        syscall
#else
        ud2
#endif
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall                         # no return
        .section .rodata
greeting:
        .ascii  "hello from cpp\n"      # with a ' in a comment
        .equ    greeting_len, . - greeting
        .data
table:  .long   SYS_read, SYS_write, SYS_openat, SYS_rseq, SYS_clone3
