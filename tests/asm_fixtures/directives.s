/* A block comment
   over several lines */ .text
        .globl  _start ; .type _start, @function
_start: mov     $1, %eax ; ret      # two statements and a comment
a1: a2:  nop
.Llocal: nop
        .file   "directives.s"
        .ident  "test"
        .cfi_startproc
        .cfi_def_cfa_offset 16
        .cfi_endproc
        .size   _start, . - _start

# ---- .set/.equ/= and expressions (GNU precedence) ----
        .set    A, 3
        .equ    B, A * 4
        C = B + 1
        .set    D, 1 + 2 << 3               # << binds tighter than +: 17
        .set    E, 1 | 2 + 4                # | binds tighter than +: 7
        .set    F, (1 < 2) + (3 == 3)       # true is -1
        .set    G, !0 + ~0 + -(5) + 7 / 2 + -7 / 2 + -7 % 3 + 0b101 + 010 + 0x1F
        .set    H, 1 && 0 || 2
        .set    I, 6 ^ 3 & 5 !  2
        .equiv  J, 'A' + '\n' + '\\'
        .data
values: .byte   A, B, C, D, E, F, G, H, I, J, -1, 255, 'z
        .short  -2, 0x1234, A*100
        .hword  1
        .word   2
        .value  3
        .2byte  4
        .long   -3, 0xdeadbeef
        .int    5
        .4byte  6
        .quad   -4, 0x123456789abcdef0, values, end_of_data - values, _start
        .8byte  7
        .octa   0x0102030405060708090a0b0c0d0e0f10
        .uleb128 0, 127, 128, 624485
        .sleb128 -1, 63, 64, -129
        .float  1.5, -0.25
        .single 2.0
        .double 3.141592653589793, 0d1e10
strings:
        .ascii  "plain", "two\tparts\n"
        .asciz  "esc: \\ \" \0 \101 \x41 \x7e \r\b\f\v end"
        .string "string", ""
        .ascii  "semi;colon # hash /* not a comment */"
fills:  .zero   5
        .skip   3
        .skip   4, 0xab
        .space  2, 7
        .fill   3
        .fill   2, 2, 0x1234
        .fill   2, 8, -1
        .fill   1, 3, 0x11223344
        .balign 8
        .include "directives_inc.s"
        .incbin "directives_blob.bin"
        .incbin "directives_blob.bin", 2, 3
end_of_data:

# ---- macros and conditionals ----
        .macro  store v, w=9, rest:vararg
        .byte   \v, \w
        .ifnb   \rest
        .byte   \rest
        .endif
        .endm
        .macro  counter
        .byte   \@
        .endm
        .macro  early x
        .byte   \x
        .if     \x > 2
        .exitm
        .endif
        .byte   0xee
        .endm
        .section .rodata
macros: store   1
        store   2, 3
        store   4 5
        store   6, 7, 8, 9, 10
        store   w=11, v=12
        counter
        counter
        early   1
        early   5
        .irp    r, 1, 2, 3
        .byte   \r * 10
        .endr
        .irpc   c, 456
        .byte   \c
        .endr
        .rept   2
        .rept   3
        .byte   0x77
        .endr
        .endr
        .set    n, 0
        .rept   4
        .set    n, n + 1
        .byte   n
        .endr
        .if     A == 3
        .byte   0xa3
        .elseif A == 4
        .byte   0xa4
        .else
        .byte   0xa0
        .endif
        .if     0
        .byte   0xbad
        .elseif A
        .byte   0xe1
        .endif
        .ifdef  A
        .byte   0xdf
        .endif
        .ifndef nothere
        .byte   0xdd
        .endif
        .ifc    abc, abc
        .byte   0xcc
        .endif
        .ifnc   abc, abd
        .byte   0xcd
        .endif
        .ifeq   A - 3
        .byte   0xe0
        .endif
        .ifgt   A
        .byte   0x90
        .endif
        .iflt   A
        .byte   0x91
        .endif

# ---- sections ----
        .pushsection .data.extra, "aw", @progbits
extra:  .long   0x11111111
        .popsection
        .byte   0x55                       # back in .rodata
        .section .text.helper, "ax"
helper: ret
        .previous
        .byte   0x56                       # .rodata again
        .section .note.GNU-stack, "", @progbits
        .section .rodata.str1.1, "aMS", @progbits, 1
        .asciz  "merged"
        .bss
        .lcomm  lbuf, 12
        .comm   cbuf, 32, 16
bssvar: .zero   100
        .section .bss.more, "aw", @nobits
        .zero   7

        .text
1:      jmp     1f
1:      jmp     1b
1:      call    helper
        mov     $(end_of_data - values), %ecx
        mov     values + B(%rip), %eax
        mov     $B, %eax
        mov     B(%rax), %eax
        lea     lbuf(%rip), %rax
        lea     cbuf(%rip), %rax
        ret
