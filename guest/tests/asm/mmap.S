/* mmap.S -- anonymous private mappings: mmap, touch, munmap, errors.
 *
 * Maps 16 pages read/write, checks the address is page-aligned and the
 * memory zero-filled, writes one qword per page and sums them, unmaps it;
 * maps again and checks the new memory is zero; unmaps part of a mapping
 * (the middle 4 pages) and uses what is left; and checks the error
 * returns: length 0 gives -EINVAL (-22), munmap of an unaligned address
 * gives -EINVAL.
 * Expected stdout:
 *   mmap aligned: ok
 *   zero-filled: ok
 *   sum=136
 *   munmap: ok
 *   remap zero-filled: ok
 *   partial munmap: ok
 *   remaining pages usable: ok
 *   mmap len 0: -22
 *   munmap unaligned: -22
 * Expected exit status: 0
 */
#define SYS_write 1
#define SYS_mmap 9
#define SYS_munmap 11
#define SYS_exit_group 231

        .equ    PAGE, 4096
        .equ    NPAGES, 16
        .equ    MAP_PROT_RW, 3          /* PROT_READ | PROT_WRITE */
        .equ    MAP_FLAGS_ANON, 0x22    /* MAP_PRIVATE | MAP_ANONYMOUS */

        .text
        .globl  _start
_start:
        mov     $NPAGES * PAGE, %esi
        call    map_anon
        mov     %rax, %r12
        test    $PAGE - 1, %r12         # also fails for -errno values
        lea     s_aligned(%rip), %rdi
        call    report

        mov     %r12, %rdi
        mov     $NPAGES * PAGE, %esi
        call    all_zero
        lea     s_zero(%rip), %rdi
        call    report

        /* page i gets the qword i+1 at offset 8*i; the sum is 1+...+16 */
        xor     %ecx, %ecx
1:      mov     %rcx, %rax
        shl     $12, %rax
        lea     1(%rcx), %rdx
        mov     %rdx, (%r12,%rax)
        mov     %rdx, 8(%r12,%rax)      # second qword, not summed
        inc     %ecx
        cmp     $NPAGES, %ecx
        jb      1b
        xor     %ebx, %ebx
        xor     %ecx, %ecx
2:      mov     %rcx, %rax
        shl     $12, %rax
        add     (%r12,%rax), %rbx
        inc     %ecx
        cmp     $NPAGES, %ecx
        jb      2b
        lea     s_sum(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_u64
        call    print_nl

        mov     %r12, %rdi
        mov     $NPAGES * PAGE, %esi
        mov     $SYS_munmap, %eax
        syscall
        test    %rax, %rax
        lea     s_munmap(%rip), %rdi
        call    report

        mov     $NPAGES * PAGE, %esi
        call    map_anon
        mov     %rax, %r12
        mov     %r12, %rdi
        mov     $NPAGES * PAGE, %esi
        call    all_zero
        lea     s_remap(%rip), %rdi
        call    report

        /* punch a hole: pages 6..9 */
        lea     6 * PAGE(%r12), %rdi
        mov     $4 * PAGE, %esi
        mov     $SYS_munmap, %eax
        syscall
        test    %rax, %rax
        lea     s_partial(%rip), %rdi
        call    report
        /* pages 0..5 and 10..15 stay mapped and writable */
        movq    $0x1111, (%r12)
        movq    $0x2222, 5 * PAGE + PAGE - 8(%r12)
        movq    $0x3333, 10 * PAGE(%r12)
        movq    $0x4444, NPAGES * PAGE - 8(%r12)
        mov     (%r12), %rax
        add     5 * PAGE + PAGE - 8(%r12), %rax
        add     10 * PAGE(%r12), %rax
        add     NPAGES * PAGE - 8(%r12), %rax
        cmp     $0xaaaa, %rax
        lea     s_rest(%rip), %rdi
        call    report

        xor     %esi, %esi
        call    map_anon
        mov     %rax, %rbx
        lea     s_len0(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_i64
        call    print_nl

        lea     1(%r12), %rdi
        mov     $PAGE, %esi
        mov     $SYS_munmap, %eax
        syscall
        mov     %rax, %rbx
        lea     s_unaligned(%rip), %rdi
        call    print_str
        mov     %rbx, %rdi
        call    print_i64
        call    print_nl

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

/* map_anon(rsi = length) -> rax = address or -errno */
map_anon:
        xor     %edi, %edi
        mov     $MAP_PROT_RW, %edx
        mov     $MAP_FLAGS_ANON, %r10d
        mov     $-1, %r8
        xor     %r9d, %r9d
        mov     $SYS_mmap, %eax
        syscall
        ret

/* all_zero(rdi = address, rsi = length): ZF set if every qword is zero */
all_zero:
        xor     %eax, %eax
1:      or      -8(%rdi,%rsi), %rax
        sub     $8, %rsi
        jnz     1b
        test    %rax, %rax
        ret

/* report: print the label at %rdi followed by "ok" if ZF is set, else
 * "FAILED" */
report:
        push    %rbx
        setz    %bl
        call    print_str
        lea     s_ok(%rip), %rdi
        test    %bl, %bl
        jnz     1f
        lea     s_failed(%rip), %rdi
1:      call    print_str
        pop     %rbx
        ret

        .section .rodata
s_aligned:   .asciz "mmap aligned: "
s_zero:      .asciz "zero-filled: "
s_sum:       .asciz "sum="
s_munmap:    .asciz "munmap: "
s_remap:     .asciz "remap zero-filled: "
s_partial:   .asciz "partial munmap: "
s_rest:      .asciz "remaining pages usable: "
s_len0:      .asciz "mmap len 0: "
s_unaligned: .asciz "munmap unaligned: "
s_ok:        .asciz "ok\n"
s_failed:    .asciz "FAILED\n"

        .text
#include "print_helpers.inc"
