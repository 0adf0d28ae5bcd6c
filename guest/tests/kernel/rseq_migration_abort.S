/* rseq: a task migrated while inside its critical section resumes at the
 * abort handler (rseq_migrate sets the event; on return to user
 * rseq_ip_fixup moves RIP to abort_ip after checking the signature before
 * it, and clears rseq->rseq_cs); cpu_id then names the new CPU.  The section
 * itself moves the task: sched_setaffinity(0, {CPU 1}).
 *
 * RUN: --cpus 2
 * EXIT: 0
 * STDOUT: aborted, rseq_cs=0 cpu_id=1
 * STATS: rseq_aborts == 1
 * STATS: migrations >= 1
 */
#include "linux_syscalls.h"
#define RSEQ_SIG 0x53053053
        .text
        .globl _start
_start:
        mov     $SYS_rseq, %eax
        lea     rseq_area(%rip), %rdi
        mov     $32, %esi
        xor     %edx, %edx
        mov     $RSEQ_SIG, %r10d
        syscall
        test    %rax, %rax
        jnz     fail
        lea     cs_descriptor(%rip), %rax
        mov     %rax, rseq_area+8(%rip)         # enter the critical section
cs_start:
        mov     $SYS_sched_setaffinity, %eax
        xor     %edi, %edi
        mov     $8, %esi
        lea     cpu1_mask(%rip), %rdx
        syscall
        movq    $1, committed(%rip)             # the commit: never reached
cs_end:
        lea     s_committed(%rip), %rdi
        call    print_str
        mov     $SYS_exit_group, %eax
        mov     $1, %edi
        syscall
        .long   RSEQ_SIG
cs_abort:
        lea     s_aborted(%rip), %rdi
        call    print_str
        mov     rseq_area+8(%rip), %rdi
        call    print_u64
        lea     s_cpu(%rip), %rdi
        call    print_str
        mov     rseq_area+4(%rip), %edi
        call    print_u64
        call    print_nl
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
fail:   mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall
#include "print_helpers.inc"
        .data
        .balign 32
rseq_area:
        .long   0, 0                            # cpu_id_start, cpu_id
        .quad   0                               # rseq_cs
        .long   0, 0, 0, 0                      # flags, node_id, mm_cid, pad
        .balign 32
cs_descriptor:
        .long   0, 0                            # version, flags
        .quad   cs_start, cs_end - cs_start, cs_abort
cpu1_mask:  .quad 2
committed:  .quad 0
s_committed: .asciz "committed (no abort)\n"
s_aborted:  .asciz "aborted, rseq_cs="
s_cpu:      .asciz " cpu_id="
