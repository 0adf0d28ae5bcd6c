/* Signals with live AMX state (Linux copy_fpstate_to_sigframe,
 * fpu__clear_user_states, restore_fpregs_from_user).  With tiles in use a
 * SIGUSR1 handler finds, in its frame's XSAVE area, the software-reserved
 * bytes (magic1 0x46505853, xfeatures = every permitted feature) and
 * XSTATE_BV with XTILECFG|XTILEDATA; inside the handler the tiles are in
 * their init state (XINUSE bits clear); after rt_sigreturn tmm0 holds its
 * data again.  A second signal after TILERELEASE carries no tile state.
 *
 * EXIT: 0
 * STDOUT: magic1 0000000046505853 xfeatures 0000000000060003 tiles in frame 0000000000060000 in handler 0000000000000000
 * STDOUT: tmm0 after sigreturn: 04030201 08070605 0c0b0a09 100f0e0d
 * STDOUT: magic1 0000000046505853 xfeatures 0000000000060003 tiles in frame 0000000000000000 in handler 0000000000000000
 * STATS: signals_delivered == 2
 * STATS: nm_faults == 1
 */
#include "linux_syscalls.h"
#define SIGUSR1 10
        .text
        .globl _start
_start:
        mov     $SYS_arch_prctl, %eax
        mov     $0x1023, %edi
        mov     $18, %esi
        syscall
        test    %rax, %rax
        jnz     fail
        lea     action(%rip), %rsi
        lea     handler(%rip), %rax
        mov     %rax, (%rsi)
        movq    $0x04000004, 8(%rsi)            # SA_RESTORER | SA_SIGINFO
        lea     restorer(%rip), %rax
        mov     %rax, 16(%rsi)
        mov     $SYS_rt_sigaction, %eax
        mov     $SIGUSR1, %edi
        xor     %edx, %edx
        mov     $8, %r10d
        syscall
        test    %rax, %rax
        jnz     fail

        ldtilecfg tile_config(%rip)
        lea     tile_data(%rip), %rsi
        mov     $16, %rdx
        tileloadd (%rsi,%rdx,1), %tmm0
        call    raise_usr1
        lea     tile_out(%rip), %rsi
        mov     $16, %rdx
        tilestored %tmm0, (%rsi,%rdx,1)
        lea     s_after(%rip), %rdi
        call    print_str
        lea     tile_out(%rip), %rdi
        mov     $1, %esi
        mov     $16, %edx
        mov     $16, %ecx
        mov     $4, %r8d
        call    print_hex_rows

        tilerelease
        call    raise_usr1
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
fail:   mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall

raise_usr1:
        mov     $SYS_getpid, %eax
        syscall
        mov     %rax, %rdi
        mov     $SYS_kill, %eax
        mov     $SIGUSR1, %esi
        syscall
        ret

handler:                                        # (signo, siginfo, ucontext in %rdx)
        push    %rbx
        push    %r12
        mov     224(%rdx), %rbx                 # uc_mcontext.fpregs: the frame's XSAVE area
        mov     $1, %ecx
        xgetbv
        mov     %eax, %r12d
        and     $0x60000, %r12d                 # XINUSE tiles inside the handler
        lea     s_magic(%rip), %rdi
        call    print_str
        mov     464(%rbx), %edi                 # sw_reserved.magic1
        call    put_line_hex
        lea     s_xfeatures(%rip), %rdi
        call    print_str
        mov     472(%rbx), %rdi                 # sw_reserved.xfeatures
        call    put_line_hex
        lea     s_frame(%rip), %rdi
        call    print_str
        mov     512(%rbx), %rdi                 # XSTATE_BV
        and     $0x60000, %edi
        call    put_line_hex
        lea     s_handler(%rip), %rdi
        call    print_str
        mov     %r12, %rdi
        call    print_hex64
        pop     %r12
        pop     %rbx
        ret

put_line_hex:                                   # %rdi as 16 hex digits, no newline
        lea     hex_line(%rip), %r10
        mov     %rdi, %rax
        mov     $16, %ecx
        call    put_hex
        jmp     flush_line

restorer:
        mov     $SYS_rt_sigreturn, %eax
        syscall
#include "print_helpers.inc"
#include "hex_helpers.inc"
        .data
        .balign 64
tile_config:                                    # palette 1; tmm0: 1 row x 16 bytes
        .byte   1, 0
        .zero   14
        .short  16
        .zero   30
        .byte   1
        .zero   15
tile_data:  .byte 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16
tile_out:   .zero 16
        .balign 8
action:     .quad 0, 0, 0, 0
s_magic:    .asciz "magic1 "
s_xfeatures: .asciz " xfeatures "
s_frame:    .asciz " tiles in frame "
s_handler:  .asciz " in handler "
s_after:    .asciz "tmm0 after sigreturn: "
