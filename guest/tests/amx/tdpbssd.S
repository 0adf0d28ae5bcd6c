/* int8 16x16x64 TDPBSSD in assembly: ask ARCH_REQ_XCOMP_PERM, configure three
 * 16x64-byte tiles, load C, A and B (VNNI layout) from .data, multiply,
 * store C and write its 1024 bytes to stdout. The data come from a fixed LCG
 * so the test can compute the same product with numpy.
 * Exit status: 0, or 3 when the permission request fails. */
#define SYS_write 1
#define SYS_arch_prctl 158
#define SYS_exit_group 231
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

        .text
        .globl _start
_start:
        mov     $SYS_arch_prctl, %eax
        mov     $ARCH_REQ_XCOMP_PERM, %edi
        mov     $XFEATURE_XTILEDATA, %esi
        syscall
        test    %rax, %rax
        jnz     no_permission

        /* Fill A and B (2048 bytes) with x = x * 1103515245 + 12345, byte = x >> 16. */
        lea     matrices(%rip), %rdi
        mov     $2048, %ecx
        mov     $1, %eax
1:      imul    $1103515245, %eax, %eax
        add     $12345, %eax
        mov     %eax, %edx
        shr     $16, %edx
        mov     %dl, (%rdi)
        inc     %rdi
        dec     %ecx
        jnz     1b

        ldtilecfg tile_config(%rip)
        mov     $64, %rdx
        lea     result(%rip), %rsi
        tileloadd (%rsi,%rdx,1), %tmm0
        lea     matrices(%rip), %rsi
        tileloadd (%rsi,%rdx,1), %tmm1
        tileloadd 1024(%rsi,%rdx,1), %tmm2
        tdpbssd %tmm2, %tmm1, %tmm0
        lea     result(%rip), %rsi
        tilestored %tmm0, (%rsi,%rdx,1)
        tilerelease

        mov     $SYS_write, %eax
        mov     $1, %edi
        lea     result(%rip), %rsi
        mov     $1024, %edx
        syscall
        mov     $SYS_exit_group, %eax
        xor     %edi, %edi
        syscall
no_permission:
        mov     $SYS_exit_group, %eax
        mov     $3, %edi
        syscall

        .data
        .balign 64
tile_config:
        .byte   1, 0
        .zero   14
        .short  64, 64, 64, 0, 0, 0, 0, 0
        .zero   16
        .byte   16, 16, 16, 0, 0, 0, 0, 0
        .zero   8
        .balign 64
result: .zero   1024
matrices: .zero 2048
