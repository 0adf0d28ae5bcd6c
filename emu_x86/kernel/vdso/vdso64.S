/* The guest's vDSO (Linux: arch/x86/entry/vdso/, lib/vdso/gettimeofday.c).
 *
 * Written for this kernel, not taken from Linux: the five calls glibc looks
 * up (dl_vdso_vsym, version LINUX_2.6) read the clock from the [vvar] page
 * that sits VVAR_PAGES pages below this image. The machine keeps the
 * running vCPU's cycle clock in its first word (Machine.set_cycle_clock_page:
 * stored before each translated block runs), so a read costs a few
 * instructions and no system call, and two runs read the same values.
 *
 * Time is derived exactly as the kernel's system calls derive it
 * (Kernel.now_ns): ns = cycles * 10^9 / tsc_hz, a 128-bit product divided
 * once, so the vDSO and the syscall agree to the nanosecond.
 * Layout of the data page: kernel/vdso/__init__.py (VVAR_*_OFFSET).
 */
        .equ    VVAR_CYCLES, 0
        .equ    VVAR_TSC_HZ, 8
        .equ    VVAR_REALTIME_NS, 16
        .equ    VVAR_TAI_NS, 24

        .equ    NSEC_PER_SEC, 1000000000
        .equ    NSEC_PER_USEC, 1000
        .equ    LOW_RES_NSEC, 4000000      /* TICK_NSEC at HZ=250: the COARSE clocks' resolution */

        .equ    SYS_gettimeofday, 96
        .equ    SYS_time, 201
        .equ    SYS_clock_gettime, 228
        .equ    SYS_clock_getres, 229
        .equ    SYS_getcpu, 309

/* Clocks answered here (lib/vdso: VDSO_HRES | VDSO_COARSE | VDSO_RAW): REALTIME 0,
 * MONOTONIC 1, MONOTONIC_RAW 4, REALTIME_COARSE 5, MONOTONIC_COARSE 6,
 * BOOTTIME 7, TAI 11. The CPU-time clocks and invalid ids take the syscall. */
        .equ    VDSO_CLOCKS, 0x8F3
        .equ    REALTIME_CLOCKS, 0x821        /* REALTIME, REALTIME_COARSE, TAI: + the epoch */
        .equ    TAI_CLOCKS, 0x800        /* TAI: the epoch + the TAI offset */
        .equ    COARSE_CLOCKS, 0x60

        .text
        .p2align 4

/* rax = nanoseconds on clock %edi (one of VDSO_CLOCKS); clobbers rcx, rdx, r8. */
vdso_clock_ns:
        leaq    vvar_page(%rip), %r8
        movq    VVAR_CYCLES(%r8), %rax
        movl    $NSEC_PER_SEC, %ecx
        mulq    %rcx
        divq    VVAR_TSC_HZ(%r8)
        movl    $REALTIME_CLOCKS, %ecx
        btl     %edi, %ecx
        jnc     1f
        addq    VVAR_REALTIME_NS(%r8), %rax
1:      movl    $TAI_CLOCKS, %ecx
        btl     %edi, %ecx
        jnc     2f
        addq    VVAR_TAI_NS(%r8), %rax
2:      ret

/* int __vdso_clock_gettime(clockid_t clock, struct timespec *ts) */
        .globl  __vdso_clock_gettime
        .type   __vdso_clock_gettime, @function
__vdso_clock_gettime:
        cmpl    $31, %edi
        ja      3f                      /* negative (CPU clocks of a pid) or too large */
        movl    $VDSO_CLOCKS, %eax
        btl     %edi, %eax
        jnc     3f
        call    vdso_clock_ns
        xorl    %edx, %edx
        movl    $NSEC_PER_SEC, %ecx
        divq    %rcx
        movq    %rax, 0(%rsi)
        movq    %rdx, 8(%rsi)
        xorl    %eax, %eax
        ret
3:      movl    $SYS_clock_gettime, %eax
        syscall
        ret
        .size   __vdso_clock_gettime, . - __vdso_clock_gettime

/* int __vdso_gettimeofday(struct timeval *tv, struct timezone *tz) */
        .globl  __vdso_gettimeofday
        .type   __vdso_gettimeofday, @function
__vdso_gettimeofday:
        movq    %rdi, %r9
        testq   %r9, %r9
        jz      1f
        xorl    %edi, %edi              /* CLOCK_REALTIME */
        call    vdso_clock_ns
        xorl    %edx, %edx
        movl    $NSEC_PER_SEC, %ecx
        divq    %rcx
        movq    %rax, 0(%r9)
        movq    %rdx, %rax
        xorl    %edx, %edx
        movl    $NSEC_PER_USEC, %ecx
        divq    %rcx
        movq    %rax, 8(%r9)
1:      testq   %rsi, %rsi
        jz      2f
        movq    $0, 0(%rsi)             /* tz_minuteswest = tz_dsttime = 0 (sys_tz) */
2:      xorl    %eax, %eax
        ret
        .size   __vdso_gettimeofday, . - __vdso_gettimeofday

/* time_t __vdso_time(time_t *t) */
        .globl  __vdso_time
        .type   __vdso_time, @function
__vdso_time:
        movq    %rdi, %r9
        xorl    %edi, %edi
        call    vdso_clock_ns
        xorl    %edx, %edx
        movl    $NSEC_PER_SEC, %ecx
        divq    %rcx
        testq   %r9, %r9
        jz      1f
        movq    %rax, 0(%r9)
1:      ret
        .size   __vdso_time, . - __vdso_time

/* int __vdso_clock_getres(clockid_t clock, struct timespec *res) */
        .globl  __vdso_clock_getres
        .type   __vdso_clock_getres, @function
__vdso_clock_getres:
        cmpl    $31, %edi
        ja      3f
        movl    $VDSO_CLOCKS, %eax
        btl     %edi, %eax
        jnc     3f
        testq   %rsi, %rsi
        jz      2f
        movl    $1, %eax                /* hrtimer_resolution: high-resolution timers */
        movl    $COARSE_CLOCKS, %ecx
        btl     %edi, %ecx
        jnc     1f
        movl    $LOW_RES_NSEC, %eax
1:      movq    $0, 0(%rsi)
        movq    %rax, 8(%rsi)
2:      xorl    %eax, %eax
        ret
3:      movl    $SYS_clock_getres, %eax
        syscall
        ret
        .size   __vdso_clock_getres, . - __vdso_clock_getres

/* long __vdso_getcpu(unsigned *cpu, unsigned *node, void *unused): RDPID reads
 * IA32_TSC_AUX, which the kernel loads with (node << 12) | cpu (vdso_read_cpunode). */
        .globl  __vdso_getcpu
        .type   __vdso_getcpu, @function
__vdso_getcpu:
        rdpid   %rax
        testq   %rdi, %rdi
        jz      1f
        movl    %eax, %ecx
        andl    $0xFFF, %ecx
        movl    %ecx, 0(%rdi)
1:      testq   %rsi, %rsi
        jz      2f
        shrl    $12, %eax
        movl    %eax, 0(%rsi)
2:      xorl    %eax, %eax
        ret
        .size   __vdso_getcpu, . - __vdso_getcpu

        .weak   clock_gettime, gettimeofday, time, clock_getres, getcpu
        .set    clock_gettime, __vdso_clock_gettime
        .set    gettimeofday, __vdso_gettimeofday
        .set    time, __vdso_time
        .set    clock_getres, __vdso_clock_getres
        .set    getcpu, __vdso_getcpu

        .section .note.Linux, "a", @note
        .balign 4
        .long   6, 4, 0                 /* LINUX_VERSION_CODE note, as every vDSO carries */
        .asciz  "Linux"
        .balign 4
        .long   0x060100                /* 6.1.0: what uname(2) reports */
        .balign 4
