/* AMX first use: the first tile instruction after ARCH_REQ_XCOMP_PERM takes
 * one #NM (IA32_XFD arms XTILEDATA for every new task); the kernel grows the
 * task's fpstate (xfd_enable_feature -> fpstate_realloc) and restarts the
 * instruction; every later tile instruction runs without a fault.  Ten
 * TILEZERO + TDPBUUD rounds then give the same result as one.
 *
 * CPUS: 1 2
 * EXIT: 0
 * STDOUT: 00000000 00000000 00000000 00000000
 * STDOUT: done
 * STATS: nm_faults == 1
 * STATS: xstate_allocs == 1
 * STATS: signals == 0
 * STATS: syscall_counts.arch_prctl == 1
 */
#include "linux_syscalls.h"
        .text
        .globl _start
_start:
        mov     $SYS_arch_prctl, %eax
        mov     $0x1023, %edi                   # ARCH_REQ_XCOMP_PERM
        mov     $18, %esi                       # XFEATURE_XTILEDATA
        syscall
        test    %rax, %rax
        jnz     fail
        ldtilecfg tile_config(%rip)             # the #NM arrives here (first AMX instruction)
        mov     $10, %r12d
1:      tilezero %tmm0
        tilezero %tmm1
        tilezero %tmm2
        tdpbuud %tmm2, %tmm1, %tmm0
        dec     %r12d
        jnz     1b
        lea     out(%rip), %rsi
        mov     $16, %rdx
        tilestored %tmm0, (%rsi,%rdx,1)
        tilerelease
        lea     out(%rip), %rdi
        mov     $1, %esi
        mov     $16, %edx
        mov     $16, %ecx
        mov     $4, %r8d
        call    print_hex_rows
        lea     s_done(%rip), %rdi
        call    print_str
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
fail:   mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall
#include "print_helpers.inc"
#include "hex_helpers.inc"
        .data
        .balign 64
tile_config:
        .byte   1, 0
        .zero   14
        .short  16, 16, 16, 0, 0, 0, 0, 0
        .zero   16
        .byte   1, 1, 4, 0, 0, 0, 0, 0
        .zero   8
out:    .zero   64
s_done: .asciz  "done\n"
