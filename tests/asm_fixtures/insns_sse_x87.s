# SSE, SSE4, x87 and MMX forms (register, SIB memory and RIP-relative operands),
# compared with GNU as line by line.
        .text
_start:
        movaps %xmm1, %xmm2
        movaps %xmm9, %xmm14
        movaps 16(%rax,%rbx,4), %xmm3
        movaps data(%rip), %xmm8
        movups %xmm1, %xmm2
        movups %xmm9, %xmm14
        movups 16(%rax,%rbx,4), %xmm3
        movups data(%rip), %xmm8
        movapd %xmm1, %xmm2
        movapd %xmm9, %xmm14
        movapd 16(%rax,%rbx,4), %xmm3
        movapd data(%rip), %xmm8
        movupd %xmm1, %xmm2
        movupd %xmm9, %xmm14
        movupd 16(%rax,%rbx,4), %xmm3
        movupd data(%rip), %xmm8
        movdqa %xmm1, %xmm2
        movdqa %xmm9, %xmm14
        movdqa 16(%rax,%rbx,4), %xmm3
        movdqa data(%rip), %xmm8
        movdqu %xmm1, %xmm2
        movdqu %xmm9, %xmm14
        movdqu 16(%rax,%rbx,4), %xmm3
        movdqu data(%rip), %xmm8
        addps %xmm1, %xmm2
        addps %xmm9, %xmm14
        addps 16(%rax,%rbx,4), %xmm3
        addps data(%rip), %xmm8
        addpd %xmm1, %xmm2
        addpd %xmm9, %xmm14
        addpd 16(%rax,%rbx,4), %xmm3
        addpd data(%rip), %xmm8
        addss %xmm1, %xmm2
        addss %xmm9, %xmm14
        addss 16(%rax,%rbx,4), %xmm3
        addss data(%rip), %xmm8
        addsd %xmm1, %xmm2
        addsd %xmm9, %xmm14
        addsd 16(%rax,%rbx,4), %xmm3
        addsd data(%rip), %xmm8
        subps %xmm1, %xmm2
        subps %xmm9, %xmm14
        subps 16(%rax,%rbx,4), %xmm3
        subps data(%rip), %xmm8
        subsd %xmm1, %xmm2
        subsd %xmm9, %xmm14
        subsd 16(%rax,%rbx,4), %xmm3
        subsd data(%rip), %xmm8
        mulps %xmm1, %xmm2
        mulps %xmm9, %xmm14
        mulps 16(%rax,%rbx,4), %xmm3
        mulps data(%rip), %xmm8
        mulsd %xmm1, %xmm2
        mulsd %xmm9, %xmm14
        mulsd 16(%rax,%rbx,4), %xmm3
        mulsd data(%rip), %xmm8
        divps %xmm1, %xmm2
        divps %xmm9, %xmm14
        divps 16(%rax,%rbx,4), %xmm3
        divps data(%rip), %xmm8
        divsd %xmm1, %xmm2
        divsd %xmm9, %xmm14
        divsd 16(%rax,%rbx,4), %xmm3
        divsd data(%rip), %xmm8
        sqrtps %xmm1, %xmm2
        sqrtps %xmm9, %xmm14
        sqrtps 16(%rax,%rbx,4), %xmm3
        sqrtps data(%rip), %xmm8
        sqrtsd %xmm1, %xmm2
        sqrtsd %xmm9, %xmm14
        sqrtsd 16(%rax,%rbx,4), %xmm3
        sqrtsd data(%rip), %xmm8
        maxps %xmm1, %xmm2
        maxps %xmm9, %xmm14
        maxps 16(%rax,%rbx,4), %xmm3
        maxps data(%rip), %xmm8
        maxsd %xmm1, %xmm2
        maxsd %xmm9, %xmm14
        maxsd 16(%rax,%rbx,4), %xmm3
        maxsd data(%rip), %xmm8
        minps %xmm1, %xmm2
        minps %xmm9, %xmm14
        minps 16(%rax,%rbx,4), %xmm3
        minps data(%rip), %xmm8
        minsd %xmm1, %xmm2
        minsd %xmm9, %xmm14
        minsd 16(%rax,%rbx,4), %xmm3
        minsd data(%rip), %xmm8
        andps %xmm1, %xmm2
        andps %xmm9, %xmm14
        andps 16(%rax,%rbx,4), %xmm3
        andps data(%rip), %xmm8
        andnps %xmm1, %xmm2
        andnps %xmm9, %xmm14
        andnps 16(%rax,%rbx,4), %xmm3
        andnps data(%rip), %xmm8
        orps %xmm1, %xmm2
        orps %xmm9, %xmm14
        orps 16(%rax,%rbx,4), %xmm3
        orps data(%rip), %xmm8
        xorps %xmm1, %xmm2
        xorps %xmm9, %xmm14
        xorps 16(%rax,%rbx,4), %xmm3
        xorps data(%rip), %xmm8
        andpd %xmm1, %xmm2
        andpd %xmm9, %xmm14
        andpd 16(%rax,%rbx,4), %xmm3
        andpd data(%rip), %xmm8
        xorpd %xmm1, %xmm2
        xorpd %xmm9, %xmm14
        xorpd 16(%rax,%rbx,4), %xmm3
        xorpd data(%rip), %xmm8
        unpcklps %xmm1, %xmm2
        unpcklps %xmm9, %xmm14
        unpcklps 16(%rax,%rbx,4), %xmm3
        unpcklps data(%rip), %xmm8
        unpckhps %xmm1, %xmm2
        unpckhps %xmm9, %xmm14
        unpckhps 16(%rax,%rbx,4), %xmm3
        unpckhps data(%rip), %xmm8
        unpcklpd %xmm1, %xmm2
        unpcklpd %xmm9, %xmm14
        unpcklpd 16(%rax,%rbx,4), %xmm3
        unpcklpd data(%rip), %xmm8
        unpckhpd %xmm1, %xmm2
        unpckhpd %xmm9, %xmm14
        unpckhpd 16(%rax,%rbx,4), %xmm3
        unpckhpd data(%rip), %xmm8
        cvtps2pd %xmm1, %xmm2
        cvtps2pd %xmm9, %xmm14
        cvtps2pd 16(%rax,%rbx,4), %xmm3
        cvtps2pd data(%rip), %xmm8
        cvtpd2ps %xmm1, %xmm2
        cvtpd2ps %xmm9, %xmm14
        cvtpd2ps 16(%rax,%rbx,4), %xmm3
        cvtpd2ps data(%rip), %xmm8
        cvtdq2ps %xmm1, %xmm2
        cvtdq2ps %xmm9, %xmm14
        cvtdq2ps 16(%rax,%rbx,4), %xmm3
        cvtdq2ps data(%rip), %xmm8
        cvtps2dq %xmm1, %xmm2
        cvtps2dq %xmm9, %xmm14
        cvtps2dq 16(%rax,%rbx,4), %xmm3
        cvtps2dq data(%rip), %xmm8
        cvttps2dq %xmm1, %xmm2
        cvttps2dq %xmm9, %xmm14
        cvttps2dq 16(%rax,%rbx,4), %xmm3
        cvttps2dq data(%rip), %xmm8
        cvtss2sd %xmm1, %xmm2
        cvtss2sd %xmm9, %xmm14
        cvtss2sd 16(%rax,%rbx,4), %xmm3
        cvtss2sd data(%rip), %xmm8
        cvtsd2ss %xmm1, %xmm2
        cvtsd2ss %xmm9, %xmm14
        cvtsd2ss 16(%rax,%rbx,4), %xmm3
        cvtsd2ss data(%rip), %xmm8
        comiss %xmm1, %xmm2
        comiss %xmm9, %xmm14
        comiss 16(%rax,%rbx,4), %xmm3
        comiss data(%rip), %xmm8
        comisd %xmm1, %xmm2
        comisd %xmm9, %xmm14
        comisd 16(%rax,%rbx,4), %xmm3
        comisd data(%rip), %xmm8
        ucomiss %xmm1, %xmm2
        ucomiss %xmm9, %xmm14
        ucomiss 16(%rax,%rbx,4), %xmm3
        ucomiss data(%rip), %xmm8
        ucomisd %xmm1, %xmm2
        ucomisd %xmm9, %xmm14
        ucomisd 16(%rax,%rbx,4), %xmm3
        ucomisd data(%rip), %xmm8
        paddb %xmm1, %xmm2
        paddb %xmm9, %xmm14
        paddb 16(%rax,%rbx,4), %xmm3
        paddb data(%rip), %xmm8
        paddw %xmm1, %xmm2
        paddw %xmm9, %xmm14
        paddw 16(%rax,%rbx,4), %xmm3
        paddw data(%rip), %xmm8
        paddd %xmm1, %xmm2
        paddd %xmm9, %xmm14
        paddd 16(%rax,%rbx,4), %xmm3
        paddd data(%rip), %xmm8
        paddq %xmm1, %xmm2
        paddq %xmm9, %xmm14
        paddq 16(%rax,%rbx,4), %xmm3
        paddq data(%rip), %xmm8
        psubb %xmm1, %xmm2
        psubb %xmm9, %xmm14
        psubb 16(%rax,%rbx,4), %xmm3
        psubb data(%rip), %xmm8
        psubw %xmm1, %xmm2
        psubw %xmm9, %xmm14
        psubw 16(%rax,%rbx,4), %xmm3
        psubw data(%rip), %xmm8
        psubd %xmm1, %xmm2
        psubd %xmm9, %xmm14
        psubd 16(%rax,%rbx,4), %xmm3
        psubd data(%rip), %xmm8
        psubq %xmm1, %xmm2
        psubq %xmm9, %xmm14
        psubq 16(%rax,%rbx,4), %xmm3
        psubq data(%rip), %xmm8
        pmullw %xmm1, %xmm2
        pmullw %xmm9, %xmm14
        pmullw 16(%rax,%rbx,4), %xmm3
        pmullw data(%rip), %xmm8
        pmulhw %xmm1, %xmm2
        pmulhw %xmm9, %xmm14
        pmulhw 16(%rax,%rbx,4), %xmm3
        pmulhw data(%rip), %xmm8
        pmuludq %xmm1, %xmm2
        pmuludq %xmm9, %xmm14
        pmuludq 16(%rax,%rbx,4), %xmm3
        pmuludq data(%rip), %xmm8
        pmaddwd %xmm1, %xmm2
        pmaddwd %xmm9, %xmm14
        pmaddwd 16(%rax,%rbx,4), %xmm3
        pmaddwd data(%rip), %xmm8
        pand %xmm1, %xmm2
        pand %xmm9, %xmm14
        pand 16(%rax,%rbx,4), %xmm3
        pand data(%rip), %xmm8
        pandn %xmm1, %xmm2
        pandn %xmm9, %xmm14
        pandn 16(%rax,%rbx,4), %xmm3
        pandn data(%rip), %xmm8
        por %xmm1, %xmm2
        por %xmm9, %xmm14
        por 16(%rax,%rbx,4), %xmm3
        por data(%rip), %xmm8
        pxor %xmm1, %xmm2
        pxor %xmm9, %xmm14
        pxor 16(%rax,%rbx,4), %xmm3
        pxor data(%rip), %xmm8
        pcmpeqb %xmm1, %xmm2
        pcmpeqb %xmm9, %xmm14
        pcmpeqb 16(%rax,%rbx,4), %xmm3
        pcmpeqb data(%rip), %xmm8
        pcmpeqw %xmm1, %xmm2
        pcmpeqw %xmm9, %xmm14
        pcmpeqw 16(%rax,%rbx,4), %xmm3
        pcmpeqw data(%rip), %xmm8
        pcmpeqd %xmm1, %xmm2
        pcmpeqd %xmm9, %xmm14
        pcmpeqd 16(%rax,%rbx,4), %xmm3
        pcmpeqd data(%rip), %xmm8
        pcmpgtb %xmm1, %xmm2
        pcmpgtb %xmm9, %xmm14
        pcmpgtb 16(%rax,%rbx,4), %xmm3
        pcmpgtb data(%rip), %xmm8
        pcmpgtd %xmm1, %xmm2
        pcmpgtd %xmm9, %xmm14
        pcmpgtd 16(%rax,%rbx,4), %xmm3
        pcmpgtd data(%rip), %xmm8
        packsswb %xmm1, %xmm2
        packsswb %xmm9, %xmm14
        packsswb 16(%rax,%rbx,4), %xmm3
        packsswb data(%rip), %xmm8
        packuswb %xmm1, %xmm2
        packuswb %xmm9, %xmm14
        packuswb 16(%rax,%rbx,4), %xmm3
        packuswb data(%rip), %xmm8
        packssdw %xmm1, %xmm2
        packssdw %xmm9, %xmm14
        packssdw 16(%rax,%rbx,4), %xmm3
        packssdw data(%rip), %xmm8
        punpcklbw %xmm1, %xmm2
        punpcklbw %xmm9, %xmm14
        punpcklbw 16(%rax,%rbx,4), %xmm3
        punpcklbw data(%rip), %xmm8
        punpckhbw %xmm1, %xmm2
        punpckhbw %xmm9, %xmm14
        punpckhbw 16(%rax,%rbx,4), %xmm3
        punpckhbw data(%rip), %xmm8
        punpcklwd %xmm1, %xmm2
        punpcklwd %xmm9, %xmm14
        punpcklwd 16(%rax,%rbx,4), %xmm3
        punpcklwd data(%rip), %xmm8
        punpckldq %xmm1, %xmm2
        punpckldq %xmm9, %xmm14
        punpckldq 16(%rax,%rbx,4), %xmm3
        punpckldq data(%rip), %xmm8
        punpcklqdq %xmm1, %xmm2
        punpcklqdq %xmm9, %xmm14
        punpcklqdq 16(%rax,%rbx,4), %xmm3
        punpcklqdq data(%rip), %xmm8
        punpckhqdq %xmm1, %xmm2
        punpckhqdq %xmm9, %xmm14
        punpckhqdq 16(%rax,%rbx,4), %xmm3
        punpckhqdq data(%rip), %xmm8
        pavgb %xmm1, %xmm2
        pavgb %xmm9, %xmm14
        pavgb 16(%rax,%rbx,4), %xmm3
        pavgb data(%rip), %xmm8
        pminub %xmm1, %xmm2
        pminub %xmm9, %xmm14
        pminub 16(%rax,%rbx,4), %xmm3
        pminub data(%rip), %xmm8
        pmaxub %xmm1, %xmm2
        pmaxub %xmm9, %xmm14
        pmaxub 16(%rax,%rbx,4), %xmm3
        pmaxub data(%rip), %xmm8
        psadbw %xmm1, %xmm2
        psadbw %xmm9, %xmm14
        psadbw 16(%rax,%rbx,4), %xmm3
        psadbw data(%rip), %xmm8
        pshufb %xmm1, %xmm2
        pshufb %xmm9, %xmm14
        pshufb 16(%rax,%rbx,4), %xmm3
        pshufb data(%rip), %xmm8
        pmulld %xmm1, %xmm2
        pmulld %xmm9, %xmm14
        pmulld 16(%rax,%rbx,4), %xmm3
        pmulld data(%rip), %xmm8
        pminsd %xmm1, %xmm2
        pminsd %xmm9, %xmm14
        pminsd 16(%rax,%rbx,4), %xmm3
        pminsd data(%rip), %xmm8
        pmaxsd %xmm1, %xmm2
        pmaxsd %xmm9, %xmm14
        pmaxsd 16(%rax,%rbx,4), %xmm3
        pmaxsd data(%rip), %xmm8
        pminud %xmm1, %xmm2
        pminud %xmm9, %xmm14
        pminud 16(%rax,%rbx,4), %xmm3
        pminud data(%rip), %xmm8
        pmaxud %xmm1, %xmm2
        pmaxud %xmm9, %xmm14
        pmaxud 16(%rax,%rbx,4), %xmm3
        pmaxud data(%rip), %xmm8
        ptest %xmm1, %xmm2
        ptest %xmm9, %xmm14
        ptest 16(%rax,%rbx,4), %xmm3
        ptest data(%rip), %xmm8
        pabsd %xmm1, %xmm2
        pabsd %xmm9, %xmm14
        pabsd 16(%rax,%rbx,4), %xmm3
        pabsd data(%rip), %xmm8
        phaddd %xmm1, %xmm2
        phaddd %xmm9, %xmm14
        phaddd 16(%rax,%rbx,4), %xmm3
        phaddd data(%rip), %xmm8
        haddps %xmm1, %xmm2
        haddps %xmm9, %xmm14
        haddps 16(%rax,%rbx,4), %xmm3
        haddps data(%rip), %xmm8
        hsubps %xmm1, %xmm2
        hsubps %xmm9, %xmm14
        hsubps 16(%rax,%rbx,4), %xmm3
        hsubps data(%rip), %xmm8
        addsubps %xmm1, %xmm2
        addsubps %xmm9, %xmm14
        addsubps 16(%rax,%rbx,4), %xmm3
        addsubps data(%rip), %xmm8
        movshdup %xmm1, %xmm2
        movshdup %xmm9, %xmm14
        movshdup 16(%rax,%rbx,4), %xmm3
        movshdup data(%rip), %xmm8
        movsldup %xmm1, %xmm2
        movsldup %xmm9, %xmm14
        movsldup 16(%rax,%rbx,4), %xmm3
        movsldup data(%rip), %xmm8
        movddup %xmm1, %xmm2
        movddup %xmm9, %xmm14
        movddup 16(%rax,%rbx,4), %xmm3
        movddup data(%rip), %xmm8
        lddqu 16(%rax,%rbx,4), %xmm3
        lddqu data(%rip), %xmm8
        pmovzxbw %xmm1, %xmm2
        pmovzxbw %xmm9, %xmm14
        pmovzxbw 16(%rax,%rbx,4), %xmm3
        pmovzxbw data(%rip), %xmm8
        pmovsxbd %xmm1, %xmm2
        pmovsxbd %xmm9, %xmm14
        pmovsxbd 16(%rax,%rbx,4), %xmm3
        pmovsxbd data(%rip), %xmm8
        pmovzxdq %xmm1, %xmm2
        pmovzxdq %xmm9, %xmm14
        pmovzxdq 16(%rax,%rbx,4), %xmm3
        pmovzxdq data(%rip), %xmm8
        packusdw %xmm1, %xmm2
        packusdw %xmm9, %xmm14
        packusdw 16(%rax,%rbx,4), %xmm3
        packusdw data(%rip), %xmm8
        pcmpeqq %xmm1, %xmm2
        pcmpeqq %xmm9, %xmm14
        pcmpeqq 16(%rax,%rbx,4), %xmm3
        pcmpeqq data(%rip), %xmm8
        pcmpgtq %xmm1, %xmm2
        pcmpgtq %xmm9, %xmm14
        pcmpgtq 16(%rax,%rbx,4), %xmm3
        pcmpgtq data(%rip), %xmm8
        movntdqa 16(%rax,%rbx,4), %xmm3
        movntdqa data(%rip), %xmm8
        pshufd $5, %xmm1, %xmm2
        pshufd $0x1b, (%rax), %xmm10
        pshufhw $5, %xmm1, %xmm2
        pshufhw $0x1b, (%rax), %xmm10
        pshuflw $5, %xmm1, %xmm2
        pshuflw $0x1b, (%rax), %xmm10
        shufps $5, %xmm1, %xmm2
        shufps $0x1b, (%rax), %xmm10
        shufpd $5, %xmm1, %xmm2
        shufpd $0x1b, (%rax), %xmm10
        cmpps $5, %xmm1, %xmm2
        cmpps $0x1b, (%rax), %xmm10
        cmpsd $5, %xmm1, %xmm2
        cmpsd $0x1b, (%rax), %xmm10
        roundps $5, %xmm1, %xmm2
        roundps $0x1b, (%rax), %xmm10
        roundsd $5, %xmm1, %xmm2
        roundsd $0x1b, (%rax), %xmm10
        blendps $5, %xmm1, %xmm2
        blendps $0x1b, (%rax), %xmm10
        blendpd $5, %xmm1, %xmm2
        blendpd $0x1b, (%rax), %xmm10
        pblendw $5, %xmm1, %xmm2
        pblendw $0x1b, (%rax), %xmm10
        palignr $5, %xmm1, %xmm2
        palignr $0x1b, (%rax), %xmm10
        pcmpestri $5, %xmm1, %xmm2
        pcmpestri $0x1b, (%rax), %xmm10
        pcmpistri $5, %xmm1, %xmm2
        pcmpistri $0x1b, (%rax), %xmm10
        dpps $5, %xmm1, %xmm2
        dpps $0x1b, (%rax), %xmm10
        mpsadbw $5, %xmm1, %xmm2
        mpsadbw $0x1b, (%rax), %xmm10
        insertps $5, %xmm1, %xmm2
        insertps $0x1b, (%rax), %xmm10
        movss %xmm1, (%rax)
        movsd %xmm1, (%rax)
        movlps (%rax), %xmm1
        movhps %xmm1, (%rax)
        movhlps %xmm1, %xmm2
        movlhps %xmm1, %xmm2
        movd %eax, %xmm1
        movd %xmm1, (%rax)
        movq %rax, %xmm9
        movq %xmm9, %r10
        movq (%rax), %xmm1
        movq %xmm1, (%rax)
        movq %xmm1, %xmm2
        cvtsi2ss %eax, %xmm1
        cvtsi2sd %r9, %xmm1
        cvtsi2sdq (%rax), %xmm1
        cvtsi2ssl (%rax), %xmm1
        cvttss2si %xmm1, %eax
        cvtsd2si %xmm1, %r8
        cvttsd2si (%rax), %rax
        pextrw $3, %xmm1, %eax
        pinsrw $3, %eax, %xmm1
        pextrb $3, %xmm1, %eax
        pinsrb $3, %eax, %xmm1
        pextrq $1, %xmm1, %rax
        pinsrq $1, %rax, %xmm1
        extractps $1, %xmm1, %eax
        psllq $3, %xmm1
        psrlq $3, %xmm1
        psrad $3, %xmm1
        pslldq $4, %xmm1
        psrldq $4, %xmm1
        psllw %xmm2, %xmm1
        pmovmskb %xmm1, %eax
        movmskpd %xmm1, %eax
        maskmovdqu %xmm1, %xmm2
        movntps %xmm1, (%rax)
        movntpd %xmm1, (%rax)
        cmpeqps %xmm1, %xmm2
        cmpltsd %xmm1, %xmm2
        cmpneqss (%rax), %xmm2
        crc32l (%rax), %eax
        crc32b %al, %r9d
        popcnt (%rax), %eax
        fld %st(1)
        fld1
        fldpi
        fadd %st(1), %st
        fadd %st, %st(2)
        faddp %st, %st(1)
        fsubrp
        fmul %st(3)
        fdivs (%rax)
        fdivl (%rax)
        fidivl (%rax)
        fistps (%rax)
        fistpll (%rax)
        fisttpl (%rax)
        fcomi %st(1), %st
        fucompp
        fnstsw %ax
        fstps 4(%rsp)
        fldl (%rsp)
        fsin
        fcos
        fptan
        fyl2x
        f2xm1
        fscale
        fprem
        fxam
        ftst
        fcmovb %st(1), %st
        ffree %st(2)
        fincstp
        fnsave (%rax)
        frstor (%rax)
        fnstenv (%rax)
        fldenv (%rax)
        fbld (%rax)
        fbstp (%rax)
        emms
        movq %mm0, %mm1
        paddd %mm1, %mm0
        movd %eax, %mm3
        pshufw $3, %mm1, %mm2
        movntq %mm1, (%rax)
        .data
data:   .zero 16
