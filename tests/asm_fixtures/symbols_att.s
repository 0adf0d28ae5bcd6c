# Symbolic operands, AT&T: labels and forward references get the 32-bit
# field GNU as fills through a relocation; absolute symbols known where they
# are used get the shortest form; RIP-relative targets; two symbolic fields
# in one instruction.
        .text
        .globl _start
_start:
        .equ    BACK, 7
        .set    BIG, 0x12345
        mov     $FWD, %eax
        mov     $FWD, %rax
        mov     $BACK, %rax
        mov     $data1, %rax
        mov     $data1, %esi
        movabs  $data1, %rax
        movabs  $FWD, %rbx
        push    $data1
        push    $FWD
        push    $BACK
        cmp     $FWD, %eax
        cmp     $FWD, %al
        cmpb    $FWD, (%rax)
        cmpw    $FWD, (%rax)
        cmpw    $BACK, (%rax)
        addw    $FWD, %ax
        add     $FWD, %rsp
        sub     $BACK, %rsp
        and     $FWDNEG, %rax
        imul    $FWD, %eax, %ecx
        shl     $FWD, %eax
        rol     $FWD, %rax
        ret     $FWD
        enter   $FWD, $BACK
        int     $FWD
        in      $FWD, %al
        out     %al, $FWD
        mov     data1, %eax
        mov     data1, %rax
        mov     %eax, data1
        mov     data1+8, %al
        mov     BACK, %eax
        mov     FWD, %eax
        mov     data1(%rax), %ebx
        mov     data1(,%rbx,8), %rcx
        mov     FWD(%rbp), %rcx
        mov     BACK(%rbp), %rcx
        mov     BIG(%rbp), %rcx
        lea     data1(%rip), %rax
        lea     data1+8(%rip), %rax
        lea     _start(%rip), %rax
        lea     0x10(%rip), %rax
        lea     BACK(%rip), %rax
        movl    $FWD, data1(%rip)
        movq    $data1, data1(%rip)
        movb    $FWD, data1(%rip)
        movw    $0x1234, data1(%rip)
        cmpq    $BACK, data1(%rip)
        call    *fptr(%rip)
        jmp     *fptr(%rip)
        call    *fptr
        lea     (data2 - data1)(%rax), %rbx
        mov     $(data2 - data1), %ecx
        mov     $(end_code - _start), %ecx
        mov     $(.Lhere - _start), %ecx
.Lhere:
        mov     $'A', %al
        mov     $'\n', %al
        cmp     $'0', %dl
        movq    %fs:FWD, %rax
        movq    %fs:0x28, %rax
        movq    %fs:BACK, %rax
        mov     %gs:data1, %rax
        movzbl  data1(%rip), %eax
        movsd   data1(%rip), %xmm0
        pshufd  $FWD, %xmm0, %xmm1
        pshufd  $BACK, data1(%rip), %xmm1
        cmpxchg %ecx, data1(%rip)
        lock incl data1(%rip)
        lock addq $FWD, data1(%rip)
        rep stosb
        lea     . , %rax
        lea     .(%rip), %rax
        mov     $., %rax
        .equ    FWD, 5
        .equ    FWDNEG, -16
end_code:
        ret

        .data
data1:  .quad 0, 0
data2:  .long data2 - data1
fptr:   .quad _start
