/* AMX first use on TILELOADD: XRSTOR loads only TILECFG (component 17, which
 * XFD does not cover), so the first instruction touching TILEDATA is the
 * TILELOADD. It takes #NM (XFD[18] armed), the kernel allocates the larger
 * fpstate and disarms XFD, and the TILELOADD runs again.
 * The trace golden file (tests/golden/amx_first_use.trace.jsonl) shows it.
 * Exit status: 0, or 3 when the permission request fails. */
#define SYS_arch_prctl 158
#define SYS_exit_group 231
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18
#define XTILECFG_OFFSET 2752

        .text
        .globl _start
_start:
        mov     $SYS_arch_prctl, %eax
        mov     $ARCH_REQ_XCOMP_PERM, %edi
        mov     $XFEATURE_XTILEDATA, %esi
        syscall
        test    %rax, %rax
        jnz     no_permission
        xor     %edx, %edx
        mov     $0x20000, %eax          /* RFBM = XTILECFG only */
        xrstor  xsave_area(%rip)
        mov     $64, %rdx
        lea     matrix(%rip), %rsi
        tileloadd (%rsi,%rdx,1), %tmm0
        tilestored %tmm0, (%rsi,%rdx,1)
        tilerelease
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
no_permission:
        mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall

        .data
        .balign 64
xsave_area:
        .zero   512
        .quad   0x20000                 /* XSTATE_BV: XTILECFG */
        .zero   56
        .zero   XTILECFG_OFFSET - 576
        .byte   1, 0                    /* palette 1 */
        .zero   14
        .short  64                      /* tmm0: 64 bytes per row */
        .zero   30
        .byte   2                       /* tmm0: 2 rows */
        .zero   15
        .balign 64
matrix: .fill   128, 1, 7
