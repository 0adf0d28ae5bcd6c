/* The AMX tile dot products in C (see amx_fast.h). Semantics: Intel SDM
 * Vol. 2C, TDPBSSD/TDPBSUD/TDPBUSD/TDPBUUD and TDPBF16PS (Operation), the
 * same as emu/isa/amx.py's tile_dot_product, which stays the reference and
 * the path for every case this file declines. */
#include <stdbool.h>
#include <string.h>
#include "amx_fast.h"

#define XFEATURE_MASK_XTILECFG (1ull << 17)
#define XFEATURE_MASK_XTILEDATA (1ull << 18)
#define XFEATURE_MASK_XTILE (XFEATURE_MASK_XTILECFG | XFEATURE_MASK_XTILEDATA)
/* dispatch.py reads MAX_INSTRUCTION_BYTES at RIP: declining when they would
 * cross a page keeps its page walks (and their Accessed bits) the only ones. */
#define MAX_INSTRUCTION_BYTES 15
#define TDP_INSTRUCTION_BYTES 5

typedef int (*uc_reg_fn)(void *uc, int regid, void *value);
static uc_reg_fn reg_read, reg_write;
static int rip_id;

void amx_fast_set_register_access(uintptr_t uc_reg_read_address, uintptr_t uc_reg_write_address,
                                  int rip_register_id)
{
    reg_read = (uc_reg_fn)uc_reg_read_address;
    reg_write = (uc_reg_fn)uc_reg_write_address;
    rip_id = rip_register_id;
}

static inline unsigned tile_rows(const struct amx_xstate *s, int t) { return s->tilecfg[48 + t]; }
static inline unsigned tile_colsb(const struct amx_xstate *s, int t)
{
    return s->tilecfg[16 + 2 * t] | (unsigned)s->tilecfg[17 + 2 * t] << 8;
}

/* ---- int8: DPBD (SDM: TDPBSSD "Operation") ------------------------------
 * tdest[m].dword[n] += sum over k < K, j < 4 of
 *     src1[m].byte[4k+j] * src2[k].byte[4n+j]        (32-bit wrap-around)
 * Each product is at most 255*255 < 2^16 in magnitude and there are at most
 * 64, so the sum over k is exact in int32; only the accumulation into the
 * destination wraps, which is done in uint32 (mod 2^32, as the SDM's 32-bit
 * adds; the order of the adds does not matter modulo 2^32).
 * Layout for the vectoriser: src1 widened to int16 rows a[m][i] and src2
 * transposed to int16 rows bt[n][i] (i = 4k+j), zero-padded to 64, so every
 * element is a fixed-length int16 dot product (gcc -O2 on baseline x86-64:
 * the widenings become punpck/psraw, the dot products pmaddwd). */
static inline __attribute__((always_inline)) void widen_row(int16_t *out, const uint8_t *in, int is_signed)
{
    for (unsigned i = 0; i < AMX_TILE_ROW_BYTES; i++)
        out[i] = is_signed ? (int16_t)(int8_t)in[i] : (int16_t)in[i];
}

static inline __attribute__((always_inline)) void dot_int8(
        struct amx_xstate *s, const int src1_signed, const int src2_signed, int dest, int src1, int src2,
        unsigned m_rows, unsigned k_groups, unsigned n_columns)
{
    int16_t a[AMX_TILE_ROWS][AMX_TILE_ROW_BYTES];
    int16_t bt[AMX_TILE_ROWS][AMX_TILE_ROW_BYTES];
    uint8_t transposed[AMX_TILE_ROWS][AMX_TILE_ROW_BYTES];
    /* src2 transposed dword-wise (VNNI groups stay together): transposed[n]
     * holds column n's K groups, zero from byte 4K on -- so whatever src1
     * holds beyond its colsb multiplies zero. */
    memset(transposed, 0, sizeof transposed);
    for (unsigned k = 0; k < k_groups; k++)
        for (unsigned n = 0; n < n_columns; n++)
            memcpy(&transposed[n][4 * k], &s->tiles[src2][k][4 * n], 4);
    for (unsigned n = 0; n < AMX_TILE_ROWS; n++)
        widen_row(bt[n], transposed[n], src2_signed);
    for (unsigned m = 0; m < m_rows; m++)
        widen_row(a[m], s->tiles[src1][m], src1_signed);
    for (unsigned m = 0; m < m_rows; m++) {
        uint8_t *out = s->tiles[dest][m];
        /* Four columns per pass share the loads of a[m] and one horizontal
         * reduction phase (about 1.5x faster than one column per pass);
         * columns from N up to the next multiple of 4 are computed on zero
         * rows of bt and dropped. */
        for (unsigned n = 0; n < n_columns; n += 4) {
            int32_t sum[4] = {0, 0, 0, 0}, s0 = 0, s1 = 0, s2 = 0, s3 = 0;
            for (unsigned i = 0; i < AMX_TILE_ROW_BYTES; i++) {
                int32_t x = a[m][i];
                s0 += x * bt[n][i];
                s1 += x * bt[n + 1][i];
                s2 += x * bt[n + 2][i];
                s3 += x * bt[n + 3][i];
            }
            sum[0] = s0, sum[1] = s1, sum[2] = s2, sum[3] = s3;
            for (unsigned j = 0; j < 4 && n + j < n_columns; j++) {
                uint32_t acc;
                memcpy(&acc, out + 4 * (n + j), 4);
                acc += (uint32_t)sum[j];
                memcpy(out + 4 * (n + j), &acc, 4);
            }
        }
    }
}

/* ---- bf16: TDPBF16PS (SDM: TDPBF16PS "Operation") -----------------------
 * Inputs are treated as denormals-are-zero, each of the two products of a
 * bf16 pair is added to the fp32 accumulator in turn (round to nearest even)
 * and every sum is flushed to zero, exactly the order amx.py uses. The
 * product is an fp32 multiply of two bf16 values (exact: 8-bit mantissas),
 * not fused with the add (-ffp-contract=off in _build_hotpath.py). NaN
 * operand order is the one thing C and numpy may not agree on, so any NaN or
 * infinity among the inputs sends the instruction to Python; from finite
 * inputs a NaN arises only as the default NaN of inf - inf. */
static inline uint32_t f32_bits(float x) { uint32_t b; memcpy(&b, &x, 4); return b; }
static inline float bits_f32(uint32_t b) { float x; memcpy(&x, &b, 4); return x; }
static inline float flush_denormal(float x)
{
    uint32_t b = f32_bits(x);
    return (b & 0x7F800000u) ? x : bits_f32(b & 0x80000000u);
}
static inline float bf16_daz(const uint8_t *p)
{
    return flush_denormal(bits_f32((uint32_t)(p[0] | p[1] << 8) << 16));
}
/* Exponent not all ones, for little-endian bf16 / fp32 bytes. */
static inline int bf16_finite(const uint8_t *p) { return (p[1] & 0x7F) != 0x7F || !(p[0] & 0x80); }
static inline int f32_finite(const uint8_t *p) { return bf16_finite(p + 2); }

static int dot_bf16(struct amx_xstate *s, int dest, int src1, int src2,
                    unsigned m_rows, unsigned k_groups, unsigned n_columns)
{
    for (unsigned m = 0; m < m_rows; m++) {
        for (unsigned i = 0; i < 4 * k_groups; i += 2)
            if (!bf16_finite(&s->tiles[src1][m][i]))
                return 0;
        for (unsigned n = 0; n < n_columns; n++)
            if (!f32_finite(&s->tiles[dest][m][4 * n]))
                return 0;
    }
    for (unsigned k = 0; k < k_groups; k++)
        for (unsigned i = 0; i < 4 * n_columns; i += 2)
            if (!bf16_finite(&s->tiles[src2][k][i]))
                return 0;
    for (unsigned m = 0; m < m_rows; m++) {
        for (unsigned n = 0; n < n_columns; n++) {
            uint8_t *out = s->tiles[dest][m] + 4 * n;
            uint32_t bits;
            memcpy(&bits, out, 4);
            float acc = flush_denormal(bits_f32(bits));
            for (unsigned k = 0; k < k_groups; k++)
                for (unsigned j = 0; j < 2; j++) {
                    float product = bf16_daz(&s->tiles[src1][m][4 * k + 2 * j])
                                    * bf16_daz(&s->tiles[src2][k][4 * n + 2 * j]);
                    acc = flush_denormal(acc + product);
                }
            bits = f32_bits(acc);
            memcpy(out, &bits, 4);
        }
    }
    return 1;
}

int amx_tile_dot_product(struct amx_xstate *s, int kind, int dest, int src1, int src2)
{
    /* #UD conditions, in amx.py's order: tiles not configured (palette 0);
     * the three tiles not distinct; a tile unconfigured (rows or colsb 0);
     * colsb not a multiple of 4; M, K or N inconsistent between the tiles. */
    if (s->tilecfg[0] == 0 || dest == src1 || dest == src2 || src1 == src2)
        return 0;
    unsigned m_rows = tile_rows(s, dest), dest_colsb = tile_colsb(s, dest);
    unsigned a_rows = tile_rows(s, src1), a_colsb = tile_colsb(s, src1);
    unsigned b_rows = tile_rows(s, src2), b_colsb = tile_colsb(s, src2);
    if (!m_rows || !dest_colsb || !a_rows || !a_colsb || !b_rows || !b_colsb)
        return 0;
    if (dest_colsb % 4 || a_colsb % 4 || a_rows != m_rows || b_colsb != dest_colsb || b_rows != a_colsb / 4)
        return 0;
    /* LDTILECFG never loads more (validate_tilecfg); leave anything else to Python. */
    if (m_rows > AMX_TILE_ROWS || dest_colsb > AMX_TILE_ROW_BYTES || a_colsb > AMX_TILE_ROW_BYTES)
        return 0;
    unsigned k_groups = a_colsb / 4, n_columns = dest_colsb / 4;
    if (kind == AMX_KIND_TDPBF16PS) {
        if (!dot_bf16(s, dest, src1, src2, m_rows, k_groups, n_columns))
            return 0;
    } else {
        /* One specialisation per signedness, so every loop is branch-free. */
        switch (kind) {
        case AMX_KIND_TDPBSSD: dot_int8(s, 1, 1, dest, src1, src2, m_rows, k_groups, n_columns); break;
        case AMX_KIND_TDPBSUD: dot_int8(s, 1, 0, dest, src1, src2, m_rows, k_groups, n_columns); break;
        case AMX_KIND_TDPBUSD: dot_int8(s, 0, 1, dest, src1, src2, m_rows, k_groups, n_columns); break;
        default: dot_int8(s, 0, 0, dest, src1, src2, m_rows, k_groups, n_columns); break;
        }
    }
    /* write_row_and_zero: bytes beyond colsb and rows beyond M become zero. */
    for (unsigned m = 0; m < m_rows; m++)
        memset(s->tiles[dest][m] + dest_colsb, 0, AMX_TILE_ROW_BYTES - dest_colsb);
    memset(s->tiles[dest][m_rows], 0, (size_t)(AMX_TILE_ROWS - m_rows) * AMX_TILE_ROW_BYTES);
    /* amx.py _mark_in_use: XINUSE[18:17] set, both tile components modified. */
    s->tiles_in_use = TILES_IN_USE_BOTH;
    s->modified_since_restore |= XFEATURE_MASK_XTILE;
    return 1;
}

/* Recognise the register form (SDM Vol. 2C; checked against GNU as 2.40):
 *   C4 E2 [W=0 vvvv~ L=0 pp] 5E [11 reg rm]   TDPB{UU,US,SU,SS}D by pp
 *   C4 E2 [W=0 vvvv~ L=0 10] 5C [11 reg rm]   TDPBF16PS
 * with no prefix, VEX.R~ = X~ = B~ = 1 and vvvv~ >= 8 (tmm0..7): tmmdest =
 * ModRM.reg, tmmsrc1 = ModRM.rm, tmmsrc2 = VEX.vvvv. Returns the kind or -1. */
int amx_fast_decode(const uint8_t *b, int *dest, int *src1, int *src2)
{
    if (b[0] != 0xC4 || b[1] != 0xE2 || (b[2] & 0xC4) != 0x40 || (b[4] & 0xC0) != 0xC0)
        return -1;
    int pp = b[2] & 3, kind;
    if (b[3] == 0x5E)
        kind = pp;
    else if (b[3] == 0x5C && pp == 2)
        kind = AMX_KIND_TDPBF16PS;
    else
        return -1;
    *dest = b[4] >> 3 & 7;
    *src1 = b[4] & 7;
    *src2 = ~b[2] >> 3 & 7;
    return kind;
}

static bool amx_fast_on_invalid(void *uc, void *user_data)
{
    struct amx_fastpath *fp = (struct amx_fastpath *)user_data;
    struct amx_xstate *s = fp->state;
    if (!fp->enabled || !s)
        return false;
    uint64_t rip;
    if (reg_read(uc, rip_id, &rip) != 0)
        return false;
    struct mmu_vcpu *mmu = fp->mmu;
    if ((rip & 0xFFF) > 0x1000 - MAX_INSTRUCTION_BYTES || rip - mmu->firmware_vaddr < mmu->firmware_size)
        return false;
    /* Fetch through the page tables as dispatch.py does (a CPL3 fetch walk:
     * same checks, same Accessed bits). */
    struct walk_result w;
    if (mmu_walk(mmu, rip, MMU_ACCESS_FETCH, &w))
        return false;
    uint64_t paddr = w.paddr | (rip & 0xFFF);
    if (paddr + TDP_INSTRUCTION_BYTES > mmu->phys_size)
        return false;
    int dest, src1, src2;
    int kind = amx_fast_decode(mmu->phys + paddr, &dest, &src1, &src2);
    if (kind < 0)
        return false;
    /* require_amx: the CPU has AMX, XCR0[18:17] = 11b (else #UD); XFD[18]
     * clear (else #NM with XFD_ERR) -- SDM Vol. 1 §13.14. Python raises them. */
    if (!fp->amx_supported || (s->xcr0 & XFEATURE_MASK_XTILE) != XFEATURE_MASK_XTILE
            || (s->xfd & XFEATURE_MASK_XTILEDATA))
        return false;
    if (!amx_tile_dot_product(s, kind, dest, src1, src2))
        return false;
    uint64_t next_rip = rip + TDP_INSTRUCTION_BYTES;
    reg_write(uc, rip_id, &next_rip);
    /* VCpu.charge_instruction(EVENT_COSTS[mnemonic]). */
    fp->clock->cycles += kind == AMX_KIND_TDPBF16PS ? fp->tdpbf16ps_cycles : fp->tdpb_d_cycles;
    fp->clock->instructions += 1;
    fp->executed++;
    return true;
}

uintptr_t amx_fast_on_invalid_address(void)
{
    return (uintptr_t)&amx_fast_on_invalid;
}
