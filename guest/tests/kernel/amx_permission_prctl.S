/* arch_prctl's XSTATE permission interface (Linux arch/x86/kernel/fpu/xstate.c):
 * ARCH_GET_XCOMP_SUPP gives every supported user feature; ARCH_GET_XCOMP_PERM
 * gives the default features (all but the dynamic XTILEDATA) until
 * ARCH_REQ_XCOMP_PERM(18) adds it; an unsupported feature is -EOPNOTSUPP and
 * a number >= XFEATURE_MAX is -EINVAL.  Printed: SUPP, PERM, the return of
 * REQ(5), REQ(64), REQ(18), then PERM again.
 *
 * EXIT: 0
 * STDOUT: 0000000000060003
 * STDOUT: 0000000000020003
 * STDOUT: -95
 * STDOUT: -22
 * STDOUT: 0
 * STDOUT: 0000000000060003
 * STATS: syscall_counts.arch_prctl == 6
 * STATS: nm_faults == 0
 */
#include "linux_syscalls.h"
        .text
        .globl _start
_start:
        mov     $0x1021, %edi                   # ARCH_GET_XCOMP_SUPP
        call    get_mask
        mov     $0x1022, %edi                   # ARCH_GET_XCOMP_PERM
        call    get_mask
        mov     $5, %esi
        call    request
        mov     $64, %esi
        call    request
        mov     $18, %esi
        call    request
        mov     $0x1022, %edi
        call    get_mask
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

get_mask:                                       # arch_prctl(%edi, &mask); print mask
        movq    $0, mask(%rip)
        lea     mask(%rip), %rsi
        mov     $SYS_arch_prctl, %eax
        syscall
        mov     mask(%rip), %rdi
        jmp     print_hex64

request:                                        # print arch_prctl(ARCH_REQ_XCOMP_PERM, %esi)
        mov     $0x1023, %edi
        mov     $SYS_arch_prctl, %eax
        syscall
        mov     %rax, %rdi
        call    print_i64
        jmp     print_nl
#include "print_helpers.inc"
#include "hex_helpers.inc"
        .data
        .balign 8
mask:   .quad   0
