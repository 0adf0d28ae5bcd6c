# Instruction forms, AT&T: each line is compared with GNU as byte for byte
# (tests/test_assembler.py).  Many forms here are ones keystone 0.9.2 gets
# wrong on its own: mov $imm to a 64-bit register, absolute memory operands,
# nop with an operand, segment-register moves, prefix order, movsxd, endbr64.
        .text
_start:
        mov %rax, %rbx
        mov %eax, %ebx
        mov %ax, %bx
        mov %al, %bl
        mov %ah, %bh
        mov %sil, %dil
        mov %r8, %r15
        mov %r8d, %r9d
        mov %r10w, %r11w
        mov %r12b, %r13b
        mov $0, %eax
        mov $1, %rax
        mov $-1, %rax
        mov $127, %rax
        mov $128, %rax
        mov $-2147483648, %rax
        mov $2147483647, %rax
        mov $4294967295, %eax
        mov $0x7fffffffffffffff, %rax
        movabs $1, %rax
        movq $1, %rax
        movl $1, %eax
        movw $1, %ax
        movb $1, %al
        mov $1, %r8
        mov $1, %r8d
        movq $5, (%rax)
        movl $5, (%rax)
        movw $5, (%rax)
        movb $5, (%rax)
        movq $-1, 8(%rsp)
        mov (%rax), %rbx
        mov 8(%rax), %rbx
        mov -8(%rbp), %rbx
        mov 200(%rax), %rbx
        mov (%rax,%rbx), %rcx
        mov (%rax,%rbx,4), %rcx
        mov 16(%rax,%rbx,8), %rcx
        mov (,%rbx,8), %rcx
        mov 16(,%rbx,8), %rcx
        mov (%rsp), %rax
        mov (%rbp), %rax
        mov (%r12), %rax
        mov (%r13), %rax
        mov 0x10(%rip), %rax
        mov %fs:0, %rax
        mov %fs:0x28, %rax
        mov %gs:8, %rax
        mov %fs:(%rax), %rbx
        mov 0x1000, %eax
        mov 0x1000, %rbx
        mov %eax, 0x1000
        mov %al, 0x1000
        mov %ax, 0x1000
        mov 0x1000, %rax
        lea (%rax,%rbx,2), %rcx
        lea 1(%rax), %eax
        lea -1(%rax,%rax,4), %rax
        add $1, %rax
        add $1, %eax
        add $1, %al
        add $1, %bl
        add $300, %rax
        add $300, %ax
        add $300, %bx
        add $-128, %rax
        add $128, %rax
        add %rax, (%rbx)
        add (%rbx), %rax
        addq $1, (%rax)
        addl $1, (%rax)
        addw $1, (%rax)
        addb $1, (%rax)
        sub $8, %rsp
        sub $0x1000, %rsp
        and $-16, %rsp
        and $0xff, %eax
        or $1, %eax
        xor %eax, %eax
        xor %r8d, %r8d
        cmp $0, %rax
        cmpb $0, (%rsi,%rdx)
        cmpq $-1, %rax
        cmp $-1, %rax
        test %rax, %rax
        test $1, %al
        test $1, %eax
        test $0x100, %eax
        testb $1, (%rax)
        inc %rax
        inc %eax
        dec %rsi
        incq (%rax)
        incl (%rax)
        neg %rdi
        not %rax
        imul %rcx, %rax
        imul $10, %rax, %rax
        imul $1000, %rax, %rax
        imul $1103515245, %eax, %eax
        imul %rbx
        mul %rcx
        div %rcx
        idiv %rcx
        divq (%rax)
        shl $1, %rax
        shl $3, %rax
        shl %cl, %rax
        shr $16, %edx
        sar $63, %rax
        sal $2, %eax
        rol $1, %eax
        ror %cl, %eax
        shld $4, %rax, %rbx
        shrd %cl, %rax, %rbx
        push %rax
        push %r12
        pop %rbx
        pop %r15
        push $1
        push $1000
        pushq $1
        push (%rax)
        pushq 8(%rsp)
        pushf
        popf
        pushfq
        popfq
        call *%rax
        call *(%rax)
        call *8(%rax,%rbx,8)
        jmp *%rax
        jmp *(%rdx,%rax,8)
        jmpq *%rax
        callq *%rax
        ret
        retq
        ret $8
        leave
        leaveq
        nop
        nopl (%rax)
        nopw 0(%rax,%rax,1)
        hlt
        cld
        std
        clc
        stc
        cmc
        cqo
        cltq
        cdq
        cltd
        cwtl
        cbw
        cwd
        cdqe
        cqto
        syscall
        sysenter
        int $0x80
        int3
        ud2
        rdtsc
        cpuid
        pause
        mfence
        lfence
        sfence
        movzbl (%rbx), %eax
        movzbq %al, %rax
        movzwl %ax, %eax
        movzwq (%rax), %rax
        movsbl %al, %eax
        movsbq (%rax), %rax
        movswl %ax, %eax
        movslq %eax, %rax
        movsxd %eax, %rax
        movzx %al, %eax
        movsx %al, %eax
        movsb
        movsw
        movsl
        movsq
        rep movsb
        rep movsq
        rep stosb
        rep stosq
        rep stosl
        repne scasb
        repe cmpsb
        stosb
        lodsb
        lodsq
        scasb
        cmpsb
        lock incq (%rax)
        lock xadd %eax, (%rbx)
        lock cmpxchg %rcx, (%rdx)
        xchg %rax, %rbx
        xchg %eax, %eax
        xchg %rax, (%rbx)
        cmpxchg %ecx, (%rdx)
        bswap %eax
        bswap %rax
        bsf %rax, %rbx
        bsr %rax, %rbx
        bt $3, %rax
        bts %rax, (%rbx)
        popcnt %rax, %rbx
        lzcnt %rax, %rbx
        tzcnt %rax, %rbx
        sete %al
        setne %cl
        setg (%rax)
        seta %r8b
        cmove %rax, %rbx
        cmovne %eax, %ebx
        cmovl (%rax), %rbx
        cmovbe %ax, %bx
        movq %xmm0, %rax
        movq %rax, %xmm0
        movd %eax, %xmm1
        movd %xmm1, %eax
        movq %xmm1, %xmm2
        movq (%rax), %xmm0
        movdqa (%rax), %xmm0
        movdqa %xmm0, (%rax)
        movdqu (%rax), %xmm8
        movaps %xmm0, %xmm1
        movups (%rsi), %xmm15
        paddd %xmm1, %xmm0
        paddq %xmm1, %xmm0
        psubd %xmm1, %xmm0
        pshufd $0x1b, %xmm0, %xmm1
        pxor %xmm0, %xmm0
        pcmpeqb %xmm1, %xmm0
        pmovmskb %xmm0, %eax
        addsd %xmm1, %xmm0
        mulsd (%rax), %xmm0
        divsd %xmm1, %xmm0
        sqrtsd %xmm1, %xmm0
        cvtsi2sd %rax, %xmm0
        cvtsi2sdq %rax, %xmm0
        cvtsi2sdl %eax, %xmm0
        cvttsd2si %xmm0, %rax
        cvtsd2ss %xmm0, %xmm1
        ucomisd %xmm1, %xmm0
        comisd %xmm1, %xmm0
        addps %xmm1, %xmm0
        mulps %xmm1, %xmm0
        xorps %xmm0, %xmm0
        andpd %xmm1, %xmm0
        shufps $0x44, %xmm1, %xmm0
        unpcklps %xmm1, %xmm0
        movss (%rax), %xmm0
        movsd (%rax), %xmm0
        movsd %xmm0, (%rax)
        movhlps %xmm1, %xmm0
        pinsrd $1, %eax, %xmm0
        pextrd $1, %xmm0, %eax
        pshufb %xmm1, %xmm0
        palignr $4, %xmm1, %xmm0
        ptest %xmm1, %xmm0
        pmulld %xmm1, %xmm0
        pminud %xmm1, %xmm0
        movmskps %xmm0, %eax
        stmxcsr (%rsp)
        ldmxcsr (%rsp)
        fldz
        fld1
        fldl (%rax)
        fstpl (%rax)
        faddp
        fxch %st(1)
        fildq (%rax)
        fistpq (%rax)
        fnstcw (%rsp)
        fldcw (%rsp)
        fninit
        fwait
        xsave (%rax)
        xrstor (%rax)
        xsaveopt (%rax)
        xgetbv
        rdtscp
        rdrand %rax
        rdseed %rax
        crc32b %al, %eax
        crc32q %rax, %rax
        prefetcht0 (%rax)
        prefetchnta (%rax)
        clflush (%rax)
        enter $16, $0
        adc $1, %rax
        sbb %rax, %rax
        in $0x60, %al
        out %al, $0x80
        in %dx, %al
        xlat
        lahf
        sahf
        movbe (%rax), %eax
        andn %rax, %rbx, %rcx
        bextr %rax, %rbx, %rcx
        shlx %rax, %rbx, %rcx
        mov %cs, %ax
        mov %ds, %eax
        mov %ax, %ds
        mov %ss, %rax
        movnti %eax, (%rax)
        movntdq %xmm0, (%rax)
        fs movq (%rax), %rax
        data16 nop
        addr32 mov (%eax), %eax
        mov (%eax), %eax
        mov (%eax,%ebx,4), %ecx
        lea 0(%rip), %rax
        mov %cr0, %rax
        wrmsr
        rdmsr
        swapgs
        iretq
        sysretq
        invlpg (%rax)
        lgdt (%rax)
        endbr64
        notrack jmp *%rax
        rdfsbase %rax
        wrgsbase %rax
        endbr64
        endbr32
        wbinvd
        wbnoinvd
        clac
        stac
        xend
        xtest
        monitor
        mwait
        rdpkru
        wrpkru
        clwb (%rax)
        clflushopt (%rax)
        lfence
        pause
        mov %ds, %ax
        mov %ds, %eax
        mov %ds, %rax
        mov %ax, %ds
        mov %eax, %ds
        mov %rax, %ds
        movw %ds, (%rax)
        mov (%rax), %ds
        nop %eax
        nopw %ax
        nopl 8(%rax,%rbx,4)
        nopq (%rax)
        movq $-1, %rax
        movq $0x11223344, %rax
        movq $-0x1, %rax
        movslq %eax, %rax
        movslq (%rax), %rax
        lock addw $1, (%rax)
        rep stosw
        movq %rax, %mm0
        emms
        fnstsw %ax
        fstsw %ax
        fnclex
        frndint
        fsqrt
        fabs
        fchs
        fcomip %st(1), %st
        fucomip %st(1), %st
        fstp %st(0)
        fldt (%rax)
        fstpt (%rax)
        fisttpq (%rax)
        fxsave (%rax)
        fxrstor (%rax)
        fxsave64 (%rax)
        xsave64 (%rax)
        xsavec (%rax)
        xsaves (%rax)
        rdpid %rax
        serialize
        tlbsync
        invlpgb
        tilerelease
        cmpxchg16b (%rax)
        cmpxchg8b (%rax)
        prefetchw (%rax)
        sfence
        jmp *0x10(%rip)
        call *0x10(%rip)
        loop .
        jrcxz .
        xchg %rax, %rax
        mov $0xffffffff, %rax
        mov $0xffffffffffffffff, %rax
