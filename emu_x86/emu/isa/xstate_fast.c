/* XSAVES/XRSTORS on a kernel fpstate in C (see xstate_fast.h). Semantics:
 * Intel SDM Vol. 1 ch. 13 -- §13.4.2 (XSAVE header), §13.4.3 (compacted
 * format), §13.6 (init and modified optimizations), §13.11 (XSAVES),
 * §13.12 (XRSTORS), §13.14 (XFD) -- exactly as emu/isa/xstate.py implements
 * them for variant="xsaves" and supervisor=True; that file stays the
 * reference and runs every case declined here. */
#include <string.h>
#include "xstate_fast.h"

#define PAGE_BYTES 4096ull
#define LEGACY_AREA_BYTES 512
#define HEADER_OFFSET 512
#define HEADER_BYTES 64
#define COMPACTED_START 576
#define COMPACTED_FORM (1ull << 63)
#define MAX_COMPONENTS 64

#define XFEATURE_X87 0
#define XFEATURE_SSE 1
#define XFEATURE_PASID 10
#define XFEATURE_XTILECFG 17
#define XFEATURE_XTILEDATA 18
#define MASK(n) (1ull << (n))
#define XFEATURE_MASK_XTILE (MASK(XFEATURE_XTILECFG) | MASK(XFEATURE_XTILEDATA))

/* Bytes of each component this file can move, and where they live. */
#define X87_BYTES 160
#define SSE_BYTES 256
#define SSE_STANDARD_OFFSET 160
#define PASID_BYTES 8
#define TILECFG_BYTES 64
#define TILEDATA_BYTES (AMX_TILES * AMX_TILE_ROWS * AMX_TILE_ROW_BYTES)

static uint32_t component_bytes[MAX_COMPONENTS];
static uint8_t component_align64[MAX_COMPONENTS];
static uint64_t known_components;   /* declared and movable by this file */

static uint32_t movable_bytes(int number)
{
    switch (number) {
    case XFEATURE_X87: return X87_BYTES;
    case XFEATURE_SSE: return SSE_BYTES;
    case XFEATURE_PASID: return PASID_BYTES;
    case XFEATURE_XTILECFG: return TILECFG_BYTES;
    case XFEATURE_XTILEDATA: return TILEDATA_BYTES;
    default: return 0;
    }
}

void xstate_fast_declare_component(int number, uint32_t size_bytes, int align64)
{
    if (number < 0 || number >= MAX_COMPONENTS)
        return;
    component_bytes[number] = size_bytes;
    component_align64[number] = (uint8_t)(align64 != 0);
    /* A component whose table size differs from the bytes this file knows
     * how to move stays with Python. */
    if (movable_bytes(number) == size_bytes && size_bytes)
        known_components |= MASK(number);
    else
        known_components &= ~MASK(number);
}

/* §13.4.3: x87 and SSE keep their legacy places; every other component of
 * `mask` follows byte 576 in ascending order, 64-byte aligned when its
 * align64 bit is set (xstate.py compacted_offsets). */
static void compacted_offsets(uint64_t mask, uint32_t offsets[MAX_COMPONENTS])
{
    uint32_t location = COMPACTED_START;
    for (int n = 0; n < MAX_COMPONENTS; n++) {
        if (!(mask >> n & 1))
            continue;
        if (n == XFEATURE_X87) { offsets[n] = 0; continue; }
        if (n == XFEATURE_SSE) { offsets[n] = SSE_STANDARD_OFFSET; continue; }
        if (component_align64[n])
            location = (location + 63) & ~63u;
        offsets[n] = location;
        location += component_bytes[n];
    }
}

/* ---- the buffer: host bytes, or guest memory through supervisor walks ---- */

#define MAX_PAGES 8
struct buffer_access {
    struct mmu_vcpu *mmu;
    uint8_t *flat;
    uint64_t flat_base, flat_size;
    int access;                         /* MMU_ACCESS_READ or MMU_ACCESS_WRITE */
    int pages;
    uint64_t page_vaddr[MAX_PAGES];     /* walked pages, in first-touch order */
    uint64_t page_paddr[MAX_PAGES];
};

static int is_canonical_address(uint64_t vaddr)
{
    uint64_t top = vaddr >> 47;
    return top == 0 || top == 0x1FFFF;
}

/* The physical page of `page` (4 KiB aligned), walking it on first touch as
 * KernelBufferAccess._physical_pieces does (VCpu.translate, user_mode=False).
 * Non-canonical (#GP) and firmware-window addresses are declined. */
static int page_frame(struct buffer_access *b, uint64_t page, uint64_t *paddr)
{
    for (int i = 0; i < b->pages; i++)
        if (b->page_vaddr[i] == page) {
            *paddr = b->page_paddr[i];
            return 0;
        }
    if (b->pages == MAX_PAGES || !is_canonical_address(page)
            || page - b->mmu->firmware_vaddr < b->mmu->firmware_size)
        return -1;
    struct walk_result walk;
    if (mmu_walk_mode(b->mmu, page, b->access, 0, &walk))
        return -1;                      /* #PF: Python walks again and raises it */
    b->page_vaddr[b->pages] = page;
    b->page_paddr[b->pages++] = walk.paddr;
    *paddr = walk.paddr;
    return 0;
}

/* Copy `size` bytes between `host` and the buffer at `vaddr`, page by page.
 * Like KernelBufferAccess.write_virtual, every page of one transfer is
 * translated before any byte moves: a transfer that faults writes nothing. */
static int transfer(struct buffer_access *b, uint64_t vaddr, uint8_t *host, uint64_t size)
{
    if (b->flat) {
        uint64_t offset = vaddr - b->flat_base;
        if (vaddr < b->flat_base || offset > b->flat_size || size > b->flat_size - offset)
            return -1;
        if (b->access == MMU_ACCESS_WRITE)
            memcpy(b->flat + offset, host, size);
        else
            memcpy(host, b->flat + offset, size);
        return 0;
    }
    uint64_t frame;
    if (vaddr + size < vaddr)
        return -1;
    for (uint64_t page = vaddr & ~(PAGE_BYTES - 1); page < vaddr + size; page += PAGE_BYTES)
        if (page_frame(b, page, &frame))
            return -1;
    while (size) {
        uint64_t page_offset = vaddr & (PAGE_BYTES - 1);
        uint64_t chunk = PAGE_BYTES - page_offset < size ? PAGE_BYTES - page_offset : size;
        page_frame(b, vaddr - page_offset, &frame);        /* cached above */
        uint64_t paddr = frame | page_offset;
        if (paddr > b->mmu->phys_size || chunk > b->mmu->phys_size - paddr)
            return -1;                  /* emu/memory.py would refuse it */
        if (b->access == MMU_ACCESS_WRITE)
            memcpy(b->mmu->phys + paddr, host, chunk);
        else
            memcpy(host, b->mmu->phys + paddr, chunk);
        vaddr += chunk;
        host += chunk;
        size -= chunk;
    }
    return 0;
}

static void buffer_init(struct buffer_access *b, struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size,
                        uint64_t address, int access)
{
    b->mmu = mmu;
    b->flat = flat;
    b->flat_base = address;
    b->flat_size = flat_size;
    b->access = access;
    b->pages = 0;
}

/* ---- XSAVES ----------------------------------------------------------------- */

int xstate_xsaves(struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size, struct amx_xstate *state,
                  uint64_t address, uint64_t rfbm, uint64_t in_use, int may_skip_unmodified,
                  const uint8_t *legacy, uint64_t pasid, uint32_t *skipped, uint32_t *unmodified_skipped)
{
    if (address & 63 || rfbm & ~known_components)
        return XSTATE_FAST_PYTHON;      /* #GP(0) / a component only Python knows */
    uint32_t offsets[MAX_COMPONENTS];
    compacted_offsets(rfbm, offsets);
    struct buffer_access b;
    buffer_init(&b, mmu, flat, flat_size, address, MMU_ACCESS_WRITE);
    uint8_t *source = (uint8_t *)legacy;
    uint8_t pasid_bytes[PASID_BYTES];
    memcpy(pasid_bytes, &pasid, PASID_BYTES);   /* little-endian host, as struct.pack("<Q") */
    uint64_t xstate_bv = 0;
    uint32_t skips = 0, unmodified = 0;
    /* The component writes in xstate.py's order (ascending component number,
     * then MXCSR, then the header): the pages are walked in that order. */
    for (int n = 0; n < MAX_COMPONENTS; n++) {
        if (!(rfbm >> n & 1))
            continue;
        int used = in_use >> n & 1;
        if (used)
            xstate_bv |= MASK(n);
        if (!used) {
            skips++;                    /* init optimization: not written */
            continue;
        }
        if (may_skip_unmodified && n >= 2 && !(state->modified_since_restore >> n & 1)) {
            skips++;                    /* modified optimization: not written */
            unmodified++;
            continue;
        }
        uint64_t at = address + offsets[n];
        int failed;
        switch (n) {
        case XFEATURE_X87:
            /* Bytes 24-31 (MXCSR, MXCSR_MASK) belong to SSE (§13.5.1). */
            failed = transfer(&b, at, source, 24) || transfer(&b, at + 32, source + 32, X87_BYTES - 32);
            break;
        case XFEATURE_SSE:
            failed = transfer(&b, at, source + SSE_STANDARD_OFFSET, SSE_BYTES);
            break;
        case XFEATURE_PASID:
            failed = transfer(&b, at, pasid_bytes, PASID_BYTES);
            break;
        case XFEATURE_XTILECFG:
            failed = transfer(&b, at, state->tilecfg, TILECFG_BYTES);
            break;
        case XFEATURE_XTILEDATA:
            failed = transfer(&b, at, &state->tiles[0][0][0], TILEDATA_BYTES);
            break;
        default:
            return XSTATE_FAST_PYTHON;
        }
        if (failed)
            return XSTATE_FAST_PYTHON;
    }
    /* MXCSR and MXCSR_MASK travel with SSE state (§13.7). */
    if (rfbm & MASK(XFEATURE_SSE) && transfer(&b, address + 24, source + 24, 8))
        return XSTATE_FAST_PYTHON;
    /* §13.4.2: XSTATE_BV, XCOMP_BV = RFBM | bit 63 (§13.11), the rest zero. */
    uint8_t header[HEADER_BYTES] = {0};
    uint64_t xcomp_bv = rfbm | COMPACTED_FORM;
    memcpy(header, &xstate_bv, 8);
    memcpy(header + 8, &xcomp_bv, 8);
    if (transfer(&b, address + HEADER_OFFSET, header, HEADER_BYTES))
        return XSTATE_FAST_PYTHON;
    *skipped = skips;
    *unmodified_skipped = unmodified;
    return XSTATE_FAST_OK;
}

/* ---- XRSTORS ---------------------------------------------------------------- */

int xstate_xrstors(struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size, struct amx_xstate *state,
                   uint64_t address, uint64_t rfbm, uint64_t enabled, uint32_t mxcsr_mask,
                   uint8_t *legacy_out, uint64_t *load_out, uint64_t *pasid_out)
{
    if (address & 63 || rfbm & ~known_components)
        return XSTATE_FAST_PYTHON;
    struct buffer_access b;
    buffer_init(&b, mmu, flat, flat_size, address, MMU_ACCESS_READ);
    uint8_t header[HEADER_BYTES];
    if (transfer(&b, address + HEADER_OFFSET, header, HEADER_BYTES))
        return XSTATE_FAST_PYTHON;
    uint64_t xstate_bv, xcomp_bv;
    memcpy(&xstate_bv, header, 8);
    memcpy(&xcomp_bv, header + 8, 8);
    /* §13.12 header checks, each #GP(0): the compacted form is required;
     * XCOMP_BV within XCR0 | IA32_XSS; XSTATE_BV within XCOMP_BV; bytes
     * 16-63 zero; XSTATE_BV[63] clear. */
    if (!(xcomp_bv & COMPACTED_FORM) || xcomp_bv & ~COMPACTED_FORM & ~enabled
            || xstate_bv & ~xcomp_bv & ~COMPACTED_FORM || xstate_bv & COMPACTED_FORM)
        return XSTATE_FAST_PYTHON;
    for (int i = 16; i < HEADER_BYTES; i++)
        if (header[i])
            return XSTATE_FAST_PYTHON;
    uint64_t xcomp = xcomp_bv & ~COMPACTED_FORM;
    if (xcomp & ~known_components)
        return XSTATE_FAST_PYTHON;
    uint64_t load = rfbm & xstate_bv;
    if (load & state->xfd)
        return XSTATE_FAST_PYTHON;      /* #NM with IA32_XFD_ERR (§13.14) */
    uint32_t offsets[MAX_COMPONENTS];
    compacted_offsets(xcomp, offsets);
    if (transfer(&b, address, legacy_out, LEGACY_AREA_BYTES))
        return XSTATE_FAST_PYTHON;
    uint32_t mxcsr;
    memcpy(&mxcsr, legacy_out + 24, 4);
    if (rfbm & MASK(XFEATURE_SSE) && mxcsr & ~mxcsr_mask)
        return XSTATE_FAST_PYTHON;      /* #GP(0): reserved MXCSR bits */
    /* Read every component before changing anything, so a fault leaves the
     * state untouched. */
    uint8_t tilecfg[TILECFG_BYTES];
    static __thread uint8_t tiles[TILEDATA_BYTES];
    uint64_t pasid = 0;
    if (load & MASK(XFEATURE_PASID) && transfer(&b, address + offsets[XFEATURE_PASID], (uint8_t *)&pasid, PASID_BYTES))
        return XSTATE_FAST_PYTHON;
    if (load & MASK(XFEATURE_XTILECFG) && transfer(&b, address + offsets[XFEATURE_XTILECFG], tilecfg, TILECFG_BYTES))
        return XSTATE_FAST_PYTHON;
    if (load & MASK(XFEATURE_XTILEDATA) && transfer(&b, address + offsets[XFEATURE_XTILEDATA], tiles, TILEDATA_BYTES))
        return XSTATE_FAST_PYTHON;
    /* Components in RFBM: loaded when XSTATE_BV has them, else initialised. */
    if (rfbm & MASK(XFEATURE_XTILECFG)) {
        if (load & MASK(XFEATURE_XTILECFG))
            memcpy(state->tilecfg, tilecfg, TILECFG_BYTES);
        else
            memset(state->tilecfg, 0, TILECFG_BYTES);
    }
    if (rfbm & MASK(XFEATURE_XTILEDATA)) {
        if (load & MASK(XFEATURE_XTILEDATA))
            memcpy(state->tiles, tiles, TILEDATA_BYTES);
        else
            memset(state->tiles, 0, TILEDATA_BYTES);
    }
    /* XINUSE of each tile component in RFBM (xstate.py xrstor): XTILECFG in
     * use when loaded with a palette, XTILEDATA whenever it was loaded. */
    if (rfbm & MASK(XFEATURE_XTILECFG)) {
        state->tiles_in_use &= ~TILES_IN_USE_CFG;
        if (load & MASK(XFEATURE_XTILECFG) && state->tilecfg[0] != 0)
            state->tiles_in_use |= TILES_IN_USE_CFG;
    }
    if (rfbm & MASK(XFEATURE_XTILEDATA)) {
        state->tiles_in_use &= ~TILES_IN_USE_DATA;
        if (load & MASK(XFEATURE_XTILEDATA))
            state->tiles_in_use |= TILES_IN_USE_DATA;
    }
    /* The modified optimization starts over from this restore (§13.6). */
    state->modified_since_restore = 0;
    *load_out = load;
    *pasid_out = pasid;
    return XSTATE_FAST_OK;
}

/* ---- XRSTORS's x87/SSE registers ------------------------------------------- */

typedef int (*uc_reg_batch_fn)(void *uc, int *regs, void *const *vals, int count);
static uc_reg_batch_fn reg_read_batch, reg_write_batch;
static int legacy_register_ids[XSTATE_LEGACY_REGISTERS];

void xstate_fast_set_register_access(uintptr_t uc_reg_read_batch_address, uintptr_t uc_reg_write_batch_address,
                                     const int *register_ids)
{
    reg_read_batch = (uc_reg_batch_fn)uc_reg_read_batch_address;
    reg_write_batch = (uc_reg_batch_fn)uc_reg_write_batch_address;
    memcpy(legacy_register_ids, register_ids, sizeof legacy_register_ids);
}

/* One x87 register as the binding passes it: 64-bit mantissa, then sign and
 * exponent, in a 16-byte slot (registers.py's "QH6x"). */
struct fp_slot {
    uint64_t mantissa;
    uint16_t exponent;
    uint8_t reserved[6];
};

/* FXSAVE's abridged tag -> the tag word: empty (11b) when the abridged bit
 * is clear, else zero (01b), special (10b) or valid (00b) from the value
 * (§10.5.1.1; xstate.py _full_tag). */
static uint16_t full_tag(uint8_t abridged, const struct fp_slot physical[8])
{
    uint16_t tag = 0;
    for (int p = 0; p < 8; p++) {
        uint16_t exponent = physical[p].exponent & 0x7FFF;
        uint64_t mantissa = physical[p].mantissa;
        unsigned value;
        if (!(abridged >> p & 1))
            value = 3;
        else if (exponent == 0 && mantissa == 0)
            value = 1;
        else if (exponent == 0 || exponent == 0x7FFF || !(mantissa >> 63))
            value = 2;
        else
            value = 0;
        tag |= (uint16_t)(value << (2 * p));
    }
    return tag;
}

/* The batch's value pointers in legacy_register_ids order: FCW, FSW, the
 * tag word, the eight x87 registers by physical number, XMM0-15, MXCSR. */
static void point_at_legacy_registers(void **values, uint64_t *fcw, uint64_t *fsw, uint64_t *tag,
                                      struct fp_slot *physical, uint8_t (*xmm)[16], uint64_t *mxcsr)
{
    values[0] = fcw;
    values[1] = fsw;
    values[2] = tag;
    for (int i = 0; i < 8; i++)
        values[3 + i] = &physical[i];
    for (int i = 0; i < 16; i++)
        values[11 + i] = xmm[i];
    values[27] = mxcsr;
}

int xstate_write_legacy_registers(void *uc, const uint8_t *legacy, uint64_t load)
{
    uint64_t fcw = 0x037F, fsw = 0, tag = 0xFFFF, mxcsr = 0;
    struct fp_slot physical[8];
    uint8_t xmm[16][16];
    memset(physical, 0, sizeof physical);
    memset(xmm, 0, sizeof xmm);
    if (load & MASK(XFEATURE_X87)) {
        uint16_t word;
        memcpy(&word, legacy, 2);
        fcw = word;
        memcpy(&word, legacy + 2, 2);
        fsw = word;
        unsigned top = (unsigned)(fsw >> 11) & 7;
        /* The legacy region holds ST(i) at 32 + 16 i; FPi is physical register i = (TOP + i) mod 8. */
        for (unsigned i = 0; i < 8; i++) {
            memcpy(&physical[(top + i) & 7].mantissa, legacy + 32 + 16 * i, 8);
            memcpy(&physical[(top + i) & 7].exponent, legacy + 40 + 16 * i, 2);
        }
        tag = full_tag(legacy[4], physical);
    }
    if (load & MASK(XFEATURE_SSE))
        memcpy(xmm, legacy + 160, sizeof xmm);
    uint32_t mxcsr_value;
    memcpy(&mxcsr_value, legacy + 24, 4);
    mxcsr = mxcsr_value;
    void *values[XSTATE_LEGACY_REGISTERS];
    point_at_legacy_registers(values, &fcw, &fsw, &tag, physical, xmm, &mxcsr);
    return reg_write_batch(uc, legacy_register_ids, (void *const *)values, XSTATE_LEGACY_REGISTERS);
}

int xstate_read_legacy_registers(void *uc, uint32_t mxcsr_mask, uint8_t *legacy_out, uint64_t *in_use)
{
    uint64_t fcw = 0, fsw = 0, tag = 0, mxcsr = 0;
    struct fp_slot physical[8];
    uint8_t xmm[16][16];
    memset(physical, 0, sizeof physical);
    memset(xmm, 0, sizeof xmm);
    void *values[XSTATE_LEGACY_REGISTERS];
    point_at_legacy_registers(values, &fcw, &fsw, &tag, physical, xmm, &mxcsr);
    int status = reg_read_batch(uc, legacy_register_ids, (void *const *)values, XSTATE_LEGACY_REGISTERS);
    if (status)
        return status;
    uint8_t *area = legacy_out;
    memset(area, 0, LEGACY_AREA_BYTES);
    uint16_t word = (uint16_t)fcw;
    memcpy(area, &word, 2);
    word = (uint16_t)fsw;
    memcpy(area + 2, &word, 2);
    uint8_t abridged = 0;              /* bit i set unless register i is empty (11b) */
    for (int p = 0; p < 8; p++)
        if ((tag >> (2 * p) & 3) != 3)
            abridged |= (uint8_t)(1u << p);
    area[4] = abridged;
    uint32_t dword = (uint32_t)mxcsr;
    memcpy(area + 24, &dword, 4);
    memcpy(area + 28, &mxcsr_mask, 4);
    unsigned top = (unsigned)(fsw >> 11) & 7;
    for (unsigned i = 0; i < 8; i++) {
        memcpy(area + 32 + 16 * i, &physical[(top + i) & 7].mantissa, 8);
        memcpy(area + 40 + 16 * i, &physical[(top + i) & 7].exponent, 2);
    }
    memcpy(area + 160, xmm, sizeof xmm);
    uint64_t used = 0;
    if (fcw != 0x037F || fsw != 0 || tag != 0xFFFF)
        used |= MASK(XFEATURE_X87);
    int xmm_nonzero = 0;
    for (size_t i = 0; i < sizeof xmm; i++)
        xmm_nonzero |= ((const uint8_t *)xmm)[i];
    if (mxcsr != 0x1F80 || xmm_nonzero)
        used |= MASK(XFEATURE_SSE);
    *in_use = used;
    return 0;
}


/* ---- the context switch's calls: registers and instruction together --------- */

int xstate_xsaves_registers(void *uc, uint32_t mxcsr_mask, struct mmu_vcpu *mmu, uint8_t *flat,
                            uint64_t flat_size, struct amx_xstate *state, uint64_t address, uint64_t rfbm,
                            int may_skip_unmodified, uint64_t pasid, uint32_t *skipped,
                            uint32_t *unmodified_skipped)
{
    uint8_t legacy[LEGACY_AREA_BYTES];
    uint64_t legacy_in_use;
    int status = xstate_read_legacy_registers(uc, mxcsr_mask, legacy, &legacy_in_use);
    if (status)
        return XSTATE_FAST_UC_ERROR + status;
    /* XINUSE as xstate.py xinuse() computes it; a component armed in IA32_XFD counts as init. */
    uint64_t in_use = (legacy_in_use | ((uint64_t)(state->tiles_in_use & TILES_IN_USE_BOTH) << TILES_IN_USE_SHIFT)
                       | (pasid ? MASK(XFEATURE_PASID) : 0)) & ~state->xfd;
    return xstate_xsaves(mmu, flat, flat_size, state, address, rfbm, in_use, may_skip_unmodified, legacy,
                         pasid, skipped, unmodified_skipped);
}

int xstate_xrstors_registers(void *uc, struct mmu_vcpu *mmu, uint8_t *flat, uint64_t flat_size,
                             struct amx_xstate *state, uint64_t address, uint64_t rfbm, uint64_t enabled,
                             uint32_t mxcsr_mask, uint8_t *legacy_out, uint64_t *load, uint64_t *pasid)
{
    int status = xstate_xrstors(mmu, flat, flat_size, state, address, rfbm, enabled, mxcsr_mask, legacy_out,
                                load, pasid);
    if (status != XSTATE_FAST_OK)
        return status;
    if ((rfbm & (MASK(XFEATURE_X87) | MASK(XFEATURE_SSE))) != (MASK(XFEATURE_X87) | MASK(XFEATURE_SSE)))
        return XSTATE_FAST_OK;              /* Python writes the subset */
    status = xstate_write_legacy_registers(uc, legacy_out, *load);
    return status ? XSTATE_FAST_UC_ERROR + status : XSTATE_FAST_OK;
}
