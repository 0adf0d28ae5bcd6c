/* AMX first use, step by step (Linux arch/x86/kernel/fpu/xstate.c, traps.c).
 * Each step prints one line; README.md walks through what the kernel does.
 *
 * EXIT: 0
 * STDOUT: 1 permitted before the request: 0000000000020003
 * STDOUT: 2 ARCH_REQ_XCOMP_PERM(XTILEDATA) returned 0
 * STDOUT: 3 permitted after the request:  0000000000060003
 * STDOUT: 4 tiles in use (XINUSE) before:  0000000000000000
 * STDOUT: 5 first tile instruction ran (after the #NM)
 * STDOUT: 6 tiles in use (XINUSE) after:   0000000000060000
 * STDOUT: 7 after TILERELEASE:             0000000000000000
 * STDOUT: 8 a second round of tile instructions: no new #NM
 * STATS: nm_faults == 1
 * STATS: xstate_allocs == 1
 * STATS: per_cpu.0.events.exception_entry == 1
 */
#include "linux_syscalls.h"
#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
        .text
        .globl _start
_start:
        /* 1. A new process may use x87, SSE and XTILECFG, not XTILEDATA:
         *    that "dynamic" feature needs a request (and a bigger buffer). */
        lea     s1(%rip), %rdi
        call    print_str
        call    print_permitted

        /* 2. Ask for it.  Linux checks every thread's sigaltstack can hold
         *    the larger signal frame, then records the permission. */
        lea     s2(%rip), %rdi
        call    print_str
        mov     $SYS_arch_prctl, %eax
        mov     $ARCH_REQ_XCOMP_PERM, %edi
        mov     $XFEATURE_XTILEDATA, %esi
        syscall
        mov     %rax, %rdi
        call    print_i64
        call    print_nl

        /* 3. Permitted now -- but nothing is allocated yet, and IA32_XFD
         *    still arms XTILEDATA for this task. */
        lea     s3(%rip), %rdi
        call    print_str
        call    print_permitted

        /* 4. XGETBV(1) reads XINUSE: no tile state yet. */
        lea     s4(%rip), %rdi
        call    print_str
        call    print_xinuse_tiles

        /* 5. The first AMX instruction raises #NM (XFD_ERR = XTILEDATA).  The
         *    kernel's handle_xfd_event: xfd_enable_feature -> fpstate_realloc
         *    (a vzalloc'ed buffer big enough for 8 KiB of tiles), clear XFD
         *    for this task, return to the same RIP: LDTILECFG runs again. */
        ldtilecfg tile_config(%rip)
        lea     s5(%rip), %rdi
        call    print_str

        tilezero %tmm0
        tilezero %tmm1
        tilezero %tmm2
        tdpbssd %tmm2, %tmm1, %tmm0

        /* 6. Tile configuration and data are in use now. */
        lea     s6(%rip), %rdi
        call    print_str
        call    print_xinuse_tiles

        /* 7. TILERELEASE puts both back in their init state, so a context
         *    switch saves (XSAVES) no tile data for this task. */
        tilerelease
        lea     s7(%rip), %rdi
        call    print_str
        call    print_xinuse_tiles

        /* 8. The buffer stays and XFD stays clear: no second #NM. */
        ldtilecfg tile_config(%rip)
        tilezero %tmm0
        tilerelease
        lea     s8(%rip), %rdi
        call    print_str

        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall

print_permitted:                                # arch_prctl(ARCH_GET_XCOMP_PERM, &mask)
        mov     $SYS_arch_prctl, %eax
        mov     $ARCH_GET_XCOMP_PERM, %edi
        lea     mask(%rip), %rsi
        syscall
        mov     mask(%rip), %rdi
        jmp     print_hex64

print_xinuse_tiles:                             # XGETBV(1) & (XTILECFG | XTILEDATA)
        mov     $1, %ecx
        xgetbv
        mov     %eax, %edi
        and     $0x60000, %edi
        jmp     print_hex64
#include "print_helpers.inc"
#include "hex_helpers.inc"
        .data
        .balign 64
tile_config:                                    # palette 1; tmm0-2: 16 rows x 64 bytes
        .byte   1, 0
        .zero   14
        .short  64, 64, 64, 0, 0, 0, 0, 0
        .zero   16
        .byte   16, 16, 16, 0, 0, 0, 0, 0
        .zero   8
mask:   .quad   0
s1:     .asciz  "1 permitted before the request: "
s2:     .asciz  "2 ARCH_REQ_XCOMP_PERM(XTILEDATA) returned "
s3:     .asciz  "3 permitted after the request:  "
s4:     .asciz  "4 tiles in use (XINUSE) before:  "
s5:     .asciz  "5 first tile instruction ran (after the #NM)\n"
s6:     .asciz  "6 tiles in use (XINUSE) after:   "
s7:     .asciz  "7 after TILERELEASE:             "
s8:     .asciz  "8 a second round of tile instructions: no new #NM\n"
