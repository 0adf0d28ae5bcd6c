/* Two threads by raw clone(2): the child stores 42 and exits; the parent
 * spins a while (so an idle CPU picks the child up), then futex-waits on the
 * CLONE_CHILD_CLEARTID word and exits with the value the child stored. */
.globl _start
_start:
    mov $56, %eax                       # clone
    mov $(0x100|0x200|0x400|0x800|0x10000|0x40000|0x200000|0x100000), %edi
    lea stack_top(%rip), %rsi
    lea ctid(%rip), %rdx                # PARENT_SETTID writes the tid before the child runs
    lea ctid(%rip), %r10
    xor %r8d, %r8d
    syscall
    test %rax, %rax
    jz child
    mov $20000, %ecx
3:  dec %ecx
    jnz 3b
1:  mov ctid(%rip), %edx
    test %edx, %edx
    jz 2f
    mov $202, %eax                      # futex(&ctid, FUTEX_WAIT, edx)
    lea ctid(%rip), %rdi
    xor %esi, %esi
    xor %r10d, %r10d
    syscall
    jmp 1b
2:  mov shared(%rip), %edi
    mov $231, %eax
    syscall
child:
    movl $42, shared(%rip)
    mov $60, %eax
    xor %edi, %edi
    syscall
.data
shared: .long 0
ctid: .long 0
.bss
.balign 16
stack: .zero 8192
stack_top:
