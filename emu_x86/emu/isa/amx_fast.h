/* The C fast path of the AMX tile dot products (TDPBSSD, TDPBSUD, TDPBUSD,
 * TDPBUUD, TDPBF16PS), compiled with cffi into emu.timing._hotpath.
 *
 * The AMX tile state of a vCPU (TILECFG, the eight tiles, XCR0, IA32_XFD and
 * the XINUSE / modified bookkeeping the dot products update) lives in a
 * struct amx_xstate; emu/isa/state.py's ExtendedState exposes its fields as
 * Python attributes (the tiles as a numpy view of the same bytes), so Python
 * and C share one copy and nothing has to be mirrored.
 *
 * amx_fast_on_invalid() is a UC_HOOK_INSN_INVALID hook registered before the
 * Python one (VCpu._install_hooks). Unicorn 2.1.4 calls the invalid-opcode
 * hooks in registration order and stops at the first that returns true
 * (qemu/accel/tcg/cpu-exec.c, cpu_handle_exception), so returning false hands
 * the instruction, unchanged, to emu/isa/dispatch.py. The hook only takes the
 * common case: the register form of a TDPB* at RIP, every precondition met.
 * Anything else -- other bytes, a fault to raise, tracing on -- goes to
 * Python, which raises the architected exception.
 */
#pragma once
#include <stdint.h>
#include "hotpath.h"
#include "tlb.h"

#define AMX_TILES 8
#define AMX_TILE_ROWS 16
#define AMX_TILE_ROW_BYTES 64

/* Dot-product kinds: the VEX.pp field of the 5E opcode (SDM Vol. 2C, TDPBSSD/
 * TDPBSUD/TDPBUSD/TDPBUUD: bit 1 = src1 signed, bit 0 = src2 signed), and
 * TDPBF16PS (VEX.F3 5C). */
#define AMX_KIND_TDPBUUD 0
#define AMX_KIND_TDPBUSD 1
#define AMX_KIND_TDPBSUD 2
#define AMX_KIND_TDPBSSD 3
#define AMX_KIND_TDPBF16PS 4

struct amx_xstate {
    /* Tile data: tiles[t][row][byte] (XTILEDATA, component 18). */
    uint8_t tiles[8][16][64];
    /* TILECFG (component 17): palette, start_row, colsb[16] at 16, rows[16] at 48. */
    uint8_t tilecfg[64];
    uint64_t xcr0;                      /* XCR0 (XSETBV / the kernel) */
    uint64_t xfd;                       /* IA32_XFD (WRMSR) */
    uint64_t modified_since_restore;    /* components written since the last XRSTOR* */
    /* XINUSE[18:17] as bits 1:0: XTILECFG (17) and XTILEDATA (18) are
     * tracked apart (SDM Vol. 1 §13.6): XRSTOR of tile data alone leaves
     * the configuration in its init state and the data in use. */
    uint8_t tiles_in_use;
#define TILES_IN_USE_CFG 1
#define TILES_IN_USE_DATA 2
#define TILES_IN_USE_BOTH 3
#define TILES_IN_USE_SHIFT 17
};

struct amx_fastpath {
    /* Owned by Python (VCpu). */
    struct amx_xstate *state;           /* the vCPU's ExtendedState storage */
    struct mmu_vcpu *mmu;               /* CR3 and physical memory, for the code fetch */
    struct hotpath_vcpu *clock;         /* charged like VCpu.charge_instruction */
    uint64_t tdpb_d_cycles;             /* round(profile event tdpb_d) */
    uint64_t tdpbf16ps_cycles;          /* round(profile event tdpbf16ps) */
    uint32_t enabled;                   /* 0: every instruction goes to Python (tracing, tests) */
    uint32_t amx_supported;             /* the CPU model has AMX (else #UD, from Python) */
    /* Owned by the hook. */
    uint64_t executed;                  /* instructions retired here (diagnostics; not in stats) */
};

void amx_fast_set_register_access(uintptr_t uc_reg_read_address, uintptr_t uc_reg_write_address,
                                  int rip_register_id);
uintptr_t amx_fast_on_invalid_address(void);
/* The dot-product kind of the 5 bytes at `code` and its tiles, or -1 when
 * they are not the register form the hook takes (see amx_fast.c). */
int amx_fast_decode(const uint8_t *code, int *dest, int *src1, int *src2);
/* Execute one dot product on `state` when the SDM's tile checks pass (tiles
 * configured, distinct, shapes consistent): returns 1. Returns 0 without
 * touching anything when the instruction would fault, or when it is left to
 * Python (TDPBF16PS with a NaN or infinity input). XCR0/XFD are the hook's. */
int amx_tile_dot_product(struct amx_xstate *state, int kind, int dest, int src1, int src2);
