/* A tile instruction without ARCH_REQ_XCOMP_PERM: the #NM finds no
 * permission (xfd_enable_feature -> -EPERM) and the task gets SIGILL
 * (ILL_ILLOPC at the faulting RIP); no fpstate is allocated.
 *
 * EXIT: SIGILL
 * CHECK: before
 * CHECK-NOT: after
 * CHECK-STDERR: killed by SIGILL
 * STATS: nm_faults == 1
 * STATS: xstate_allocs == 0
 */
#include "linux_syscalls.h"
        .text
        .globl _start
_start:
        lea     s_before(%rip), %rdi
        call    print_str
        ldtilecfg tile_config(%rip)
        lea     s_after(%rip), %rdi
        call    print_str
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
#include "print_helpers.inc"
        .data
        .balign 64
tile_config:
        .byte   1, 0
        .zero   14
        .short  64
        .zero   30
        .byte   16
        .zero   15
s_before: .asciz "before\n"
s_after:  .asciz "after\n"
