/* The cpu_opv system call of the 2017-2018 proposal (never merged), as the
 * emulator's kernel implements it with --cmdline cpu_opv=on. See
 * kernel/cpu_opv.py for the semantics and return values. */
#ifndef EMU_CPU_OPV_H
#define EMU_CPU_OPV_H

#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>

#define __NR_cpu_opv 335

#define CPU_OP_VEC_LEN_MAX 16
#define CPU_OP_DATA_LEN_MAX 4096
#define CPU_OP_VEC_DATA_LEN_MAX (4096 + 15 * 8)
#define CPU_OP_NR_FLAG 1

enum cpu_op_type {
    CPU_COMPARE_EQ_OP, CPU_COMPARE_NE_OP, CPU_MEMCPY_OP, CPU_ADD_OP, CPU_OR_OP, CPU_AND_OP,
    CPU_XOR_OP, CPU_LSHIFT_OP, CPU_RSHIFT_OP, CPU_MB_OP, NR_CPU_OPS,
};

struct cpu_op {
    int32_t op;         /* enum cpu_op_type */
    uint32_t len;       /* bytes */
    union {
        struct { uint64_t a, b; uint8_t expect_fault_a, expect_fault_b; } compare_op;
        struct { uint64_t dst, src; uint8_t expect_fault_dst, expect_fault_src; } memcpy_op;
        struct { uint64_t p; int64_t count; uint8_t expect_fault_p; } arithmetic_op;
        struct { uint64_t p; uint64_t mask; uint8_t expect_fault_p; } bitwise_op;
        struct { uint64_t p; uint32_t bits; uint8_t expect_fault_p; } shift_op;
        char padding[24];
    } u;
};

_Static_assert(sizeof(struct cpu_op) == 32, "struct cpu_op is 32 bytes");

static inline long cpu_opv(struct cpu_op *ops, int count, int cpu, int flags)
{
    return syscall(__NR_cpu_opv, ops, count, cpu, flags);
}

#endif
