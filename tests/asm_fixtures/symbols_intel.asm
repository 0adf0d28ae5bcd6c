# Symbolic operands, Intel syntax: a bare label is memory, OFFSET and label
# differences are immediates, [rip + label], disp[base] forms.
        .text
        .globl _start
_start:
        .equ    BACK, 7
        mov     eax, FWD
        mov     eax, BACK
        mov     rax, BACK
        mov     rax, offset data1
        mov     esi, offset data1
        movabs  rax, offset data1
        mov     eax, data1
        mov     eax, dword ptr data1
        mov     eax, dword ptr [data1]
        mov     rax, qword ptr [data1 + 8]
        mov     dword ptr [data1], eax
        push    offset data1
        push    BACK
        push    qword ptr [rip + fptr]
        cmp     eax, offset FWD
        cmp     byte ptr [rax], BACK
        add     rsp, BACK
        imul    ecx, eax, BACK
        shl     eax, BACK
        ret     BACK
        mov     ebx, dword ptr [rax + data1]
        mov     rcx, qword ptr [rbx*8 + data1]
        mov     rcx, [rbp + BACK]
        mov     rcx, [rbp - BACK]
        mov     rcx, [rbp + rax*4 - 8]
        mov     rcx, [4*rax + rbp]
        mov     rcx, data1[rip]
        mov     rcx, 8[rbp]
        lea     rax, [rip + data1]
        lea     rax, [rip + data1 + 8]
        lea     rax, [rip + _start]
        lea     rax, [rip + 0x10]
        mov     dword ptr [rip + data1], BACK
        mov     qword ptr [rip + data1], offset data1
        call    qword ptr [rip + fptr]
        jmp     qword ptr [rip + fptr]
        mov     rax, qword ptr fs:[0x28]
        mov     rax, fs:0x28
        mov     rax, qword ptr fs:[rax + 8]
        movzx   eax, byte ptr [rip + data1]
        movsd   xmm0, qword ptr [rip + data1]
        lock inc dword ptr [rip + data1]
        rep stosb
        movsd
        rep movsd
        mov     ecx, data2 - data1
        call    _start
        jmp     _start
        jmp     short back
back:   jne     back
        .equ    FWD, 5
        ret

        .data
data1:  .quad 0, 0
data2:  .long data2 - data1
fptr:   .quad _start
