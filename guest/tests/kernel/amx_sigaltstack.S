/* AMX permission and sigaltstack sizes (Linux xstate.c validate_sigaltstack,
 * signal.c sigaltstack_size_valid): the signal frame grows by 8 KiB of tile
 * data once XTILEDATA is permitted, so ARCH_REQ_XCOMP_PERM refuses while a
 * too-small alternate stack is installed (-ENOSPC), and afterwards
 * sigaltstack() refuses a stack that cannot hold the frame (-ENOMEM).
 * Printed: sigaltstack(2048), REQ, sigaltstack(SS_DISABLE), REQ,
 * sigaltstack(4096), sigaltstack(65536).
 *
 * EXIT: 0
 * STDOUT: 0
 * STDOUT: -28
 * STDOUT: 0
 * STDOUT: 0
 * STDOUT: -12
 * STDOUT: 0
 * STATS: syscall_counts.sigaltstack == 4
 */
#include "linux_syscalls.h"
#define SS_DISABLE 2
        .text
        .globl _start
_start:
        mov     $2048, %esi
        xor     %edx, %edx
        call    set_altstack
        call    request_tiles
        xor     %esi, %esi
        mov     $SS_DISABLE, %edx
        call    set_altstack
        call    request_tiles
        mov     $4096, %esi
        xor     %edx, %edx
        call    set_altstack
        mov     $65536, %esi
        xor     %edx, %edx
        call    set_altstack
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

set_altstack:                                   # sigaltstack({stack, %edx, %rsi}, NULL); print result
        lea     stack_t(%rip), %rdi
        lea     alt_stack(%rip), %rax
        mov     %rax, (%rdi)                    # ss_sp
        mov     %edx, 8(%rdi)                   # ss_flags
        mov     %rsi, 16(%rdi)                  # ss_size
        xor     %esi, %esi
        mov     $SYS_sigaltstack, %eax
        syscall
        jmp     print_result

request_tiles:                                  # arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)
        mov     $SYS_arch_prctl, %eax
        mov     $0x1023, %edi
        mov     $18, %esi
        syscall
print_result:
        mov     %rax, %rdi
        call    print_i64
        jmp     print_nl
#include "print_helpers.inc"
        .data
        .balign 8
stack_t:    .quad 0, 0, 0
        .bss
        .balign 64
alt_stack:  .zero 65536
