# Instruction forms, GNU-as Intel syntax (assembled as if the file began
# with .intel_syntax noprefix), compared with GNU as byte for byte.
_start:
        mov rax, rbx
        mov eax, 10
        mov rax, 1
        mov rax, -1
        mov rax, 0x80000000
        movabs rax, 1
        mov r8, 1
        mov qword ptr [rax], 5
        mov dword ptr [rax], 5
        mov word ptr [rax], 5
        mov byte ptr [rax], 5
        mov rbx, qword ptr [rax + 8]
        mov rbx, [rax + 8]
        mov rbx, [rbp - 8]
        mov rcx, [rax + rbx*4 + 16]
        mov rcx, [rbx*8]
        mov rcx, [rbx*8 + 16]
        mov rax, [rsp]
        mov rax, [r13]
        mov rax, [rip + 0x10]
        mov rax, qword ptr fs:[0x28]
        mov rax, fs:[0x28]
        mov rax, qword ptr fs:0x28
        mov eax, dword ptr [0x1000]
        mov rbx, qword ptr [0x1000]
        mov dword ptr [0x1000], eax
        lea rcx, [rax + rbx*2]
        lea eax, [rax + 1]
        add rax, 1
        add al, 1
        add rax, 300
        add qword ptr [rax], 1
        sub rsp, 8
        and rsp, -16
        cmp byte ptr [rsi + rdx], 0
        cmp rax, -1
        test al, 1
        imul rax, rax, 10
        imul eax, eax, 1103515245
        shl rax, 3
        shl rax, cl
        shr edx, 16
        sar rax, 63
        push rax
        push 1
        push 1000
        push qword ptr [rax]
        pop rbx
        call rax
        call qword ptr [rax + rbx*8]
        jmp rax
        jmp qword ptr [rdx + rax*8]
        ret
        ret 8
        movzx eax, byte ptr [rbx]
        movzx eax, al
        movzx rax, word ptr [rax]
        movsx eax, al
        movsx rax, byte ptr [rax]
        movsxd rax, eax
        movsxd rax, dword ptr [rax]
        rep movsb
        rep stosq
        repne scasb
        movsb
        movsq
        movsd
        stosb
        lock xadd dword ptr [rbx], eax
        lock inc qword ptr [rax]
        xchg rax, rbx
        cmovne rbx, rax
        sete al
        movq rax, xmm0
        movq xmm0, rax
        movd xmm1, eax
        movdqa xmm0, xmmword ptr [rax]
        movdqa xmmword ptr [rax], xmm0
        movdqu xmm8, [rax]
        paddd xmm0, xmm1
        pshufd xmm1, xmm0, 0x1b
        movsd xmm0, qword ptr [rax]
        movsd qword ptr [rax], xmm0
        movss xmm0, dword ptr [rax]
        cvtsi2sd xmm0, rax
        cvttsd2si rax, xmm0
        fld qword ptr [rax]
        fstp qword ptr [rax]
        fxch st(1)
        faddp st(1), st
        fild qword ptr [rax]
        nop dword ptr [rax]
        nop word ptr [rax + rax*1]
        int 0x80
        syscall
        mov byte ptr [rsi + 1], dl
        mov byte ptr [rsi + 2], 10
        mov qword ptr [rsp - 8], rcx
        add al, 0x30
        div rcx
        cqo
        cdqe
        xor eax, eax
        mov ax, ds
        mov ds, ax
        in al, 0x60
        out 0x80, al
        enter 16, 0
