# included by directives.s (.include)
        .equ    FROM_INCLUDE, 0x42
included_label:
        .byte   FROM_INCLUDE
