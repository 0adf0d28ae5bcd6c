/* munmap, then touch the page: SIGSEGV.  mmap an anonymous page, store and
 * load through it, munmap it, load again: the task dies of SIGSEGV with the
 * unmapped address; nothing after the load runs.
 *
 * EXIT: SIGSEGV
 * STDOUT: read 42
 * STDOUT: unmapped
 * CHECK-STDERR: killed by SIGSEGV at rip {{0x[0-9a-f]+}}, address {{0x[0-9a-f]+}}
 * STATS: syscall_counts.munmap == 1
 * STATS: syscall_counts.mmap == 1
 */
#include "linux_syscalls.h"
        .text
        .globl _start
_start:
        mov     $SYS_mmap, %eax
        xor     %edi, %edi
        mov     $4096, %esi
        mov     $3, %edx                        # PROT_READ | PROT_WRITE
        mov     $0x22, %r10d                    # MAP_PRIVATE | MAP_ANONYMOUS
        mov     $-1, %r8
        xor     %r9d, %r9d
        syscall
        mov     %rax, %r12
        movq    $42, (%r12)
        lea     s_read(%rip), %rdi
        call    print_str
        mov     (%r12), %rdi
        call    print_u64
        call    print_nl
        mov     $SYS_munmap, %eax
        mov     %r12, %rdi
        mov     $4096, %esi
        syscall
        test    %rax, %rax
        jnz     fail
        lea     s_unmapped(%rip), %rdi
        call    print_str
        mov     (%r12), %rdi                    # SIGSEGV here
        lea     s_alive(%rip), %rdi
        call    print_str
fail:   mov     $SYS_exit_group, %eax
        mov     $1, %edi
        syscall
#include "print_helpers.inc"
        .section .rodata
s_read:     .asciz "read "
s_unmapped: .asciz "unmapped\n"
s_alive:    .asciz "still alive\n"
