/* The per-vCPU TLB model and Unicorn's TLB-fill hook (see tlb.h). */
#include <string.h>
#include <emmintrin.h>      /* SSE2, part of the x86-64 baseline */
#include "tlb.h"

/* uc_tlb_entry and uc_prot from unicorn.h, restated so the module does not
 * need Unicorn's headers at build time. */
struct uc_tlb_entry_abi {
    uint64_t paddr;
    int perms;
};
#define UC_PROT_READ 1
#define UC_PROT_WRITE 2
#define UC_PROT_EXEC 4
#define UC_MEM_READ 16
#define UC_MEM_WRITE 17
#define UC_MEM_FETCH 18

/* Page-table entry bits (SDM Vol. 3A §4.5, Table 4-19/4-20). */
#define PTE_PRESENT (1ull << 0)
#define PTE_WRITABLE (1ull << 1)
#define PTE_USER (1ull << 2)
#define PTE_ACCESSED (1ull << 5)
#define PTE_DIRTY (1ull << 6)
#define PTE_LARGE (1ull << 7)
#define PTE_GLOBAL (1ull << 8)
#define PTE_NX (1ull << 63)
#define MAXPHYADDR 46
#define PHYS_ADDR_MASK ((((1ull << MAXPHYADDR) - 1)) & ~0xFFFull)
#define RESERVED_HIGH_MASK ((((1ull << 52) - 1)) & ~((1ull << MAXPHYADDR) - 1))

/* #PF error code bits (§4.7). */
#define PF_PRESENT 1u
#define PF_WRITE 2u
#define PF_USER 4u
#define PF_RSVD 8u
#define PF_INSTR 16u

#define VECTOR_GP 13u
#define VECTOR_PF 14u

static inline uint64_t read_qword(struct mmu_vcpu *mmu, uint64_t paddr)
{
    uint64_t value;
    memcpy(&value, mmu->phys + paddr, 8);
    return value;
}

static inline void write_qword(struct mmu_vcpu *mmu, uint64_t paddr, uint64_t value)
{
    memcpy(mmu->phys + paddr, &value, 8);
}

static inline int is_canonical(uint64_t vaddr)
{
    uint64_t top = vaddr >> 47;
    return top == 0 || top == 0x1FFFF;
}

/* The 4-level walk with CR0.WP = 1 and EFER.NXE = 1, exactly as
 * emu/mmu/pagewalk.walk (the two are checked against each other in tests):
 * at CPL3 (user_mode = 1: the fill path) or as a supervisor access
 * (user_mode = 0: U/S is not required and the #PF error code has no U bit;
 * VCpu.translate for the kernel's XSAVES/XRSTORS on vmalloc'ed buffers).
 * Returns 0 on success, else the #PF error code is in
 * result->fault_error_code and the return is 1. */
static inline int walk(struct mmu_vcpu *mmu, uint64_t vaddr, int access, int user_mode, struct walk_result *result)
{
    uint32_t error_base = (user_mode ? PF_USER : 0) | (access == MMU_ACCESS_WRITE ? PF_WRITE : 0)
                          | (access == MMU_ACCESS_FETCH ? PF_INSTR : 0);
    uint64_t table = mmu->cr3 & PHYS_ADDR_MASK;
    /* R/W and U/S must be set at every level, XD clear at every one (§4.6):
     * the AND and the OR of the entries used. */
    uint64_t all_entries = ~0ull, any_entry = 0;
    uint64_t visited[4], values[4];
    uint32_t levels = 0;
    int shift = 39;
    uint64_t entry = 0;
#pragma GCC unroll 4
    for (uint32_t level = 0; level < 4; level++) {
        shift = 39 - 9 * (int)level;
        uint64_t entry_paddr = table + ((vaddr >> shift) & 0x1FF) * 8;
        result->lines[level] = entry_paddr >> 6;
        levels++;
        if (entry_paddr + 8 > mmu->phys_size) {
            result->reads = levels;
            result->fault_error_code = PF_RSVD | PF_PRESENT | error_base;
            return 1;
        }
        entry = read_qword(mmu, entry_paddr);
        if (!(entry & PTE_PRESENT)) {
            result->reads = levels;
            result->fault_error_code = error_base;
            return 1;
        }
        int leaf = shift == 12;
        uint64_t reserved = entry & RESERVED_HIGH_MASK;
        if (entry & PTE_LARGE) {
            if (shift == 39) {
                reserved = 1;           /* PS is reserved in a PML4E */
            } else if (!leaf) {
                /* A 1 GiB / 2 MiB page: its bits 12..shift-1, except PAT (bit 12), are reserved. */
                leaf = 1;
                reserved |= entry & (((1ull << shift) - 1) & ~0x1FFFull);
            }
        }
        if (reserved) {
            result->reads = levels;
            result->fault_error_code = PF_RSVD | PF_PRESENT | error_base;
            return 1;
        }
        all_entries &= entry;
        any_entry |= entry;
        visited[levels - 1] = entry_paddr;
        values[levels - 1] = entry;
        if (leaf)
            break;
        table = entry & PHYS_ADDR_MASK;
    }
    result->reads = levels;
    int writable = (all_entries & PTE_WRITABLE) != 0, user = (all_entries & PTE_USER) != 0;
    int no_execute = (any_entry & PTE_NX) != 0;
    /* §4.6: a CPL3 access needs U/S everywhere; a write needs R/W (WP = 1,
     * so also at CPL0); a fetch needs XD clear everywhere. */
    if ((user_mode && !user) || (access == MMU_ACCESS_WRITE && !writable)
            || (access == MMU_ACCESS_FETCH && no_execute)) {
        result->fault_error_code = PF_PRESENT | error_base;
        return 1;
    }
    /* §4.8: Accessed on every entry used; Dirty on the leaf for a write. An
     * entry that already has them is left alone: the processor writes a
     * paging-structure entry only to set one of them. */
    for (uint32_t i = 0; i + 1 < levels; i++)
        if (!(values[i] & PTE_ACCESSED))
            write_qword(mmu, visited[i], values[i] | PTE_ACCESSED);
    uint64_t leaf_entry = entry | PTE_ACCESSED | (access == MMU_ACCESS_WRITE ? PTE_DIRTY : 0);
    if (leaf_entry != entry)
        write_qword(mmu, visited[levels - 1], leaf_entry);

    uint64_t page_mask = (1ull << shift) - 1;
    uint64_t frame = leaf_entry & PHYS_ADDR_MASK & ~page_mask;
    result->paddr = frame | (vaddr & page_mask & ~0xFFFull);
    result->writable = (uint8_t)writable;
    result->user = (uint8_t)user;
    result->executable = (uint8_t)!no_execute;
    result->dirty = (leaf_entry & PTE_DIRTY) != 0;
    result->global = (leaf_entry & PTE_GLOBAL) != 0;
    result->page_shift = (uint8_t)shift;
    result->fault_error_code = 0;
    return 0;
}

/* The reads of a fill's walk that are charged: all of them, or with
 * walk_line_reuse those whose line differs from the previous walk's at the
 * same level (struct mmu_vcpu). Fills that reach here are the modelled TLB's
 * misses, the same in every run, so the previous walk is too. */
static inline uint32_t walk_reads_charged(struct mmu_vcpu *mmu, const struct walk_result *w)
{
    if (!mmu->walk_line_reuse)
        return w->reads;
    uint32_t charged = 0;
    for (uint32_t level = 0; level < w->reads && level < 4; level++) {
        if (mmu->walk_lines[level] != w->lines[level]) {
            mmu->walk_lines[level] = w->lines[level];
            charged++;
        }
    }
    return charged;
}

int mmu_walk_mode(struct mmu_vcpu *mmu, uint64_t vaddr, int access, int user_mode, struct walk_result *result)
{
    return walk(mmu, vaddr, access, user_mode, result);
}

int mmu_walk(struct mmu_vcpu *mmu, uint64_t vaddr, int access, struct walk_result *result)
{
    return walk(mmu, vaddr, access, 1, result);
}

/* ---- the TLB model ------------------------------------------------------ */

static inline int entry_matches_context(const struct tlb_entry *e, uint16_t pcid)
{
    /* A global entry is used whatever the current PCID (§4.10.2.4). */
    return e->global || e->pcid == pcid;
}

static inline uint32_t set_of(const struct mmu_vcpu *mmu, uint64_t vpn)
{
    return (uint32_t)(vpn & (mmu->sets - 1));
}

/* mmu_vcpu.tag_bytes' hash of a page: the top byte of a multiplicative
 * hash, since the pages of one set share their low bits (the set index) and
 * a strided sweep would repeat any other fixed bits. */
static inline uint8_t tlb_tag_byte(uint64_t vpn)
{
    return (uint8_t)((vpn * 0x9E3779B97F4A7C15ull) >> 56);
}

static struct tlb_entry *lookup(struct mmu_vcpu *mmu, uint64_t vaddr, uint16_t pcid)
{
    uint64_t vpn = vaddr >> 12;
    size_t first = (size_t)set_of(mmu, vpn) * mmu->ways;
    const uint64_t *tags = &mmu->tags[first];
    const uint8_t *bytes = &mmu->tag_bytes[first];
    uint32_t ways = mmu->ways;
    /* Sixteen ways' hash bytes at a time; only the ways whose byte matches
     * have their tag (8 bytes) and then their entry (40) read. The ways are
     * tried in order, so the first valid match wins as in a plain scan. */
    const __m128i wanted = _mm_set1_epi8((char)tlb_tag_byte(vpn));
    for (uint32_t base = 0; base < ways; base += 16) {
        uint32_t candidates = (uint32_t)_mm_movemask_epi8(
            _mm_cmpeq_epi8(_mm_loadu_si128((const __m128i *)(bytes + base)), wanted));
        if (ways - base < 16)
            candidates &= (1u << (ways - base)) - 1;
        while (__builtin_expect(candidates != 0, 0)) {
            uint32_t way = base + (uint32_t)__builtin_ctz(candidates);
            candidates &= candidates - 1;
            if (tags[way] == vpn) {
                struct tlb_entry *e = &mmu->small[first + way];
                if (entry_matches_context(e, pcid))
                    return e;
            }
        }
    }
    if (mmu->large_valid) {
        for (uint32_t i = 0; i < mmu->large_entries; i++) {
            struct tlb_entry *e = &mmu->large[i];
            if (e->last_use && entry_matches_context(e, pcid)
                    && (vaddr >> e->page_shift) == ((e->vpn << 12) >> e->page_shift))
                return e;
        }
    }
    return 0;
}

int tlb_probe(struct mmu_vcpu *mmu, uint64_t vaddr, uint16_t pcid, struct tlb_entry *out)
{
    struct tlb_entry *e = lookup(mmu, vaddr, pcid);
    if (!e)
        return 0;
    *out = *e;
    return 1;
}

/* ---- fill order (FIFO) of the small entries' sets ------------------------- */

/* Take way ``way`` out of ``set``'s fill order (it was just dropped). */
static void fifo_remove(struct mmu_vcpu *mmu, uint32_t set, uint32_t way)
{
    uint8_t *ring = &mmu->fifo[(size_t)set * mmu->ways];
    uint32_t head = mmu->fifo_head[set], count = mmu->fifo_count[set], ways = mmu->ways;
    uint32_t i = 0;
    while (i < count && ring[(head + i) % ways] != way)
        i++;
    if (i == count)
        return;
    for (; i + 1 < count; i++)
        ring[(head + i) % ways] = ring[(head + i + 1) % ways];
    mmu->fifo_count[set] = (uint8_t)(count - 1);
}

/* Rebuild ``set``'s fill order without the ways that are no longer valid
 * (after an invalidation dropped several of them). */
static void fifo_compact(struct mmu_vcpu *mmu, uint32_t set)
{
    uint8_t *ring = &mmu->fifo[(size_t)set * mmu->ways];
    const struct tlb_entry *entries = &mmu->small[(size_t)set * mmu->ways];
    uint32_t head = mmu->fifo_head[set], count = mmu->fifo_count[set], ways = mmu->ways;
    uint8_t kept[TLB_MAX_WAYS];
    uint32_t n = 0;
    for (uint32_t i = 0; i < count; i++) {
        uint8_t way = ring[(head + i) % ways];
        if (entries[way].last_use)
            kept[n++] = way;
    }
    memcpy(ring, kept, n);
    mmu->fifo_head[set] = 0;
    mmu->fifo_count[set] = (uint8_t)n;
}

int tlb_sets_consistent(struct mmu_vcpu *mmu)
{
    for (uint32_t set = 0; set < mmu->sets; set++) {
        const uint8_t *ring = &mmu->fifo[(size_t)set * mmu->ways];
        const struct tlb_entry *entries = &mmu->small[(size_t)set * mmu->ways];
        uint32_t head = mmu->fifo_head[set], count = mmu->fifo_count[set], valid = 0;
        uint64_t previous = 0;
        const uint64_t *tags = &mmu->tags[(size_t)set * mmu->ways];
        const uint8_t *bytes = &mmu->tag_bytes[(size_t)set * mmu->ways];
        for (uint32_t way = 0; way < mmu->ways; way++) {
            valid += entries[way].last_use != 0;
            if (tags[way] != (entries[way].last_use ? entries[way].vpn : TLB_TAG_INVALID))
                return 0;
            if (entries[way].last_use && bytes[way] != tlb_tag_byte(entries[way].vpn))
                return 0;
        }
        if (count != valid || head >= mmu->ways)
            return 0;
        for (uint32_t i = 0; i < count; i++) {
            uint8_t way = ring[(head + i) % mmu->ways];
            if (way >= mmu->ways || entries[way].last_use <= previous)
                return 0;
            previous = entries[way].last_use;
        }
    }
    return 1;
}

/* Invalidate ``e``; ``keep_order`` when the caller fixes the set's fill order
 * itself. */
static inline void drop_entry(struct mmu_vcpu *mmu, struct tlb_entry *e, int keep_order)
{
    if (e->page_shift != 12) {
        mmu->large_valid--;
    } else {
        size_t index = (size_t)(e - mmu->small);
        mmu->tags[index] = TLB_TAG_INVALID;
        if (!keep_order)
            fifo_remove(mmu, (uint32_t)(index / mmu->ways), (uint32_t)(index % mmu->ways));
    }
    e->last_use = 0;
}

static inline void drop(struct mmu_vcpu *mmu, struct tlb_entry *e)
{
    drop_entry(mmu, e, 0);
}

/* The page a QEMU CPUTLBEntry translates, or all ones for an empty entry.
 * tlb_set_page_with_attrs (accel/tcg/cputlb.c) fills addr_read, addr_write
 * and addr_code from one vaddr_page, each with flags below the page bits or
 * -1 for an access it does not allow, and QEMU only ever copies or empties
 * (-1) whole entries. Every fill here allows reads (fill_from, and the
 * firmware window in mmu_on_tlb_fill), so addr_read alone is the page plus
 * flags -- what the AND of the three fields would give, for a third of the
 * loads. The flags are masked off whole: QEMU's tlb_hit_page also wants
 * TLB_INVALID_MASK clear, so this finds every entry tlb_flush_page would
 * drop, and a few more. */
static inline uint64_t qemu_tlb_entry_page(const uint8_t *entry)
{
    uint64_t read;
    memcpy(&read, entry + UNICORN_TLB_ENTRY_ADDR_READ, 8);
    return read & ~0xFFFull;
}

/* Whether QEMU's softmmu TLB holds a translation of ``page``: the places
 * tlb_flush_page looks (accel/tcg/cputlb.c, tlb_flush_page_locked), i.e. the
 * page's slot of each MMU index's direct-mapped table (tlb_index/tlb_entry)
 * and that index's victim TLB; an index with no entry since its last full
 * flush (clear in tlb.c.dirty) is skipped. Read at the time of the question:
 * QEMU reallocates the tables when it resizes them. */
int unicorn_tlb_holds(const struct unicorn_tlb_view *view, uint64_t page)
{
    uint32_t entry_bytes = 1u << view->entry_shift;
    uint16_t dirty;
    memcpy(&dirty, view->dirty, sizeof dirty);
    for (uint32_t mode = 0; mode < view->mmu_modes; mode++) {
        if (!((dirty >> mode) & 1))
            continue;
        const uint8_t *fast = view->fast + (size_t)mode * view->fast_stride;
        uintptr_t mask, table;
        memcpy(&mask, fast, sizeof mask);          /* (entries - 1) << entry_shift */
        memcpy(&table, fast + sizeof mask, sizeof table);
        if (qemu_tlb_entry_page((const uint8_t *)table + (((page >> 12) << view->entry_shift) & mask)) == page)
            return 1;
        const uint8_t *victim = view->victim + (size_t)mode * view->desc_stride;
#pragma GCC unroll 8
        for (uint32_t k = 0; k < view->victim_entries; k++)
            if (qemu_tlb_entry_page(victim + (size_t)k * entry_bytes) == page)
                return 1;
    }
    return 0;
}

/* Unicorn's TLB may hold ``e`` (valid, of the current context) and the
 * model drops it: have it flushed before the next block. A 4 KiB entry is
 * one page of Unicorn's (QEMU fills 4 KiB entries in every MMU index, and
 * tlb_flush_page drops the page from all of them); a large entry may stand
 * behind many 4 KiB Unicorn entries, so it, like a full list, asks for the
 * whole TLB.
 * A page never fetched through ``e`` that QEMU's TLB no longer holds needs
 * nothing: QEMU has no other way to reach it without a fill. Fetched pages
 * are always flushed, because tlb_flush_page also drops the page's blocks
 * from QEMU's TB jump cache (tb_flush_jmp_cache), and a block found there
 * runs without looking at the TLB -- whether its TLB entry survived would
 * otherwise decide whether the next fetch reaches the model, and QEMU sizes
 * that TLB by wall-clock time. */
static inline void unicorn_forget(struct mmu_vcpu *mmu, const struct tlb_entry *e)
{
    struct hotpath_vcpu *clock = mmu->clock;
    if (clock->unicorn_tlb_flush_pending == HOTPATH_FLUSH_ALL)
        return;
    if (e->page_shift == 12 && !e->fetched && clock->uc_tlb.fast
            && !unicorn_tlb_holds(&clock->uc_tlb, e->vpn << 12)) {
        clock->unicorn_tlb_flushes_skipped++;
        return;
    }
    if (e->page_shift != 12 || !clock->uc_cpu
            || clock->unicorn_tlb_flush_page_count >= HOTPATH_FLUSH_PAGES_MAX) {
        clock->unicorn_tlb_flush_pending = HOTPATH_FLUSH_ALL;
        return;
    }
    clock->unicorn_tlb_flush_pages[clock->unicorn_tlb_flush_page_count++] = e->vpn << 12;
    clock->unicorn_tlb_flush_pending = HOTPATH_FLUSH_PAGES;
}

/* Evict ``slot`` (valid) to make room for a fill; the caller keeps the fill
 * order. Evicting an entry Unicorn may hold asks for a flush of Unicorn's
 * TLB before the next block, so its misses keep reaching the model. */
static inline void evict(struct mmu_vcpu *mmu, struct tlb_entry *slot)
{
    mmu->counters.evictions++;
    if (entry_matches_context(slot, mmu->pcid))
        unicorn_forget(mmu, slot);
    drop_entry(mmu, slot, 1);
}

/* Insert a translation into the first invalid way, else in place of the way
 * filled longest ago (FIFO; see the hit path for why not LRU). A set's fill
 * order is its ring (mmu_vcpu.fifo): a fill into an invalid way joins the
 * tail; a full set's victim is the head, and the new entry takes its way and
 * becomes the tail -- the same victims the fill stamps would pick. */
static struct tlb_entry *insert(struct mmu_vcpu *mmu, uint64_t vaddr, const struct walk_result *w)
{
    struct tlb_entry *slot;
    if (w->page_shift == 12) {
        uint32_t set = set_of(mmu, vaddr >> 12), ways = mmu->ways;
        struct tlb_entry *entries = &mmu->small[(size_t)set * ways];
        uint8_t *ring = &mmu->fifo[(size_t)set * ways];
        uint32_t head = mmu->fifo_head[set], count = mmu->fifo_count[set];
        if (count < ways) {
            uint32_t way = 0;
            while (entries[way].last_use)
                way++;
            ring[(head + count) % ways] = (uint8_t)way;
            mmu->fifo_count[set] = (uint8_t)(count + 1);
            slot = &entries[way];
        } else {
            slot = &entries[ring[head]];
            mmu->fifo_head[set] = (uint8_t)(head + 1 == ways ? 0 : head + 1);
            evict(mmu, slot);
        }
    } else {
        struct tlb_entry *set = mmu->large;
        slot = &set[0];
        for (uint32_t i = 0; i < mmu->large_entries; i++) {
            if (!set[i].last_use) {
                slot = &set[i];
                break;
            }
            if (set[i].last_use < slot->last_use)
                slot = &set[i];
        }
        if (slot->last_use)
            evict(mmu, slot);
    }
    uint64_t page_mask = (1ull << w->page_shift) - 1;
    slot->vpn = (vaddr & ~page_mask) >> 12;
    slot->paddr = w->paddr & ~page_mask;
    slot->pcid = mmu->pcid;
    slot->global = w->global;
    slot->writable = w->writable;
    slot->user = w->user;
    slot->executable = w->executable;
    slot->dirty = w->dirty;
    slot->page_shift = w->page_shift;
    slot->fetched = 0;
    slot->last_use = ++mmu->stamp;
    if (w->page_shift != 12) {
        mmu->large_valid++;
    } else {
        mmu->tags[slot - mmu->small] = slot->vpn;
        mmu->tag_bytes[slot - mmu->small] = tlb_tag_byte(slot->vpn);
    }
    return slot;
}

static inline int overlaps(const struct tlb_entry *e, uint64_t va_start, uint64_t va_end)
{
    uint64_t start = e->vpn << 12;
    uint64_t end = start + (1ull << e->page_shift);
    return start < va_end && va_start < end;
}

static inline int should_drop(const struct tlb_entry *e, int pcid, uint64_t va_start,
                              uint64_t va_end, int include_global)
{
    if (!e->last_use)
        return 0;
    if (e->global) {
        if (!include_global)
            return 0;
    } else if (pcid >= 0 && e->pcid != (uint16_t)pcid) {
        return 0;
    }
    return va_start >= va_end || overlaps(e, va_start, va_end);
}

/* Drop ``e`` if the invalidation covers it; 1 when Unicorn's TLB could hold
 * it. A small entry's set order is left to the caller (fifo_compact). */
static inline uint32_t invalidate_if_matching(struct mmu_vcpu *mmu, struct tlb_entry *e, int pcid,
                                              uint64_t va_start, uint64_t va_end, int include_global,
                                              int current_pcid, uint32_t *dropped)
{
    if (!should_drop(e, pcid, va_start, va_end, include_global))
        return 0;
    uint32_t visible = e->global || e->pcid == (uint16_t)current_pcid;
    drop_entry(mmu, e, 1);
    mmu->counters.invalidated++;
    (*dropped)++;
    return visible;
}

/* Apply the invalidation to one set of small entries. */
static uint32_t invalidate_set(struct mmu_vcpu *mmu, uint32_t set, int pcid, uint64_t va_start,
                               uint64_t va_end, int include_global, int current_pcid)
{
    struct tlb_entry *entries = &mmu->small[(size_t)set * mmu->ways];
    uint32_t visible = 0, dropped = 0;
    for (uint32_t way = 0; way < mmu->ways; way++)
        visible += invalidate_if_matching(mmu, &entries[way], pcid, va_start, va_end, include_global,
                                          current_pcid, &dropped);
    if (dropped)
        fifo_compact(mmu, set);
    return visible;
}

uint32_t tlb_invalidate(struct mmu_vcpu *mmu, int pcid, uint64_t va_start, uint64_t va_end,
                        int include_global, int current_pcid)
{
    uint32_t visible = 0, dropped = 0;
    uint64_t pages = va_start < va_end ? (va_end - va_start + 0xFFF) >> 12 : UINT64_MAX;
    if (pages <= mmu->sets) {
        /* A short range: visit only the sets its pages index. */
        for (uint64_t va = va_start & ~0xFFFull; va < va_end; va += 0x1000)
            visible += invalidate_set(mmu, set_of(mmu, va >> 12), pcid, va_start, va_end, include_global,
                                      current_pcid);
    } else {
        for (uint32_t set = 0; set < mmu->sets; set++)
            visible += invalidate_set(mmu, set, pcid, va_start, va_end, include_global, current_pcid);
    }
    for (uint32_t i = 0; i < mmu->large_entries && mmu->large_valid; i++) {
        struct tlb_entry *e = &mmu->large[i];
        visible += invalidate_if_matching(mmu, e, pcid, va_start, va_end, include_global, current_pcid, &dropped);
    }
    return visible;
}

/* ---- the fill hook ------------------------------------------------------- */

static int fail(struct mmu_vcpu *mmu, uint32_t vector, uint64_t vaddr, uint32_t error_code)
{
    mmu->fault_vector = vector;
    mmu->fault_address = vaddr;
    mmu->fault_error_code = error_code;
    return 0;
}

static int fill_from(struct uc_tlb_entry_abi *out, struct tlb_entry *e, uint64_t vaddr, int access)
{
    uint64_t page_mask = (1ull << e->page_shift) - 1;
    out->paddr = e->paddr | (vaddr & page_mask & ~0xFFFull);
    /* Execute permission only once a fetch has used the entry, so QEMU can
     * have translated blocks only for pages the model knows were fetched
     * (see unicorn_forget). */
    if (access == MMU_ACCESS_FETCH)
        e->fetched = 1;
    /* Write is granted only once the page is dirty, so the first write to a
     * clean page comes back here and sets Dirty (§4.8). */
    out->perms = UC_PROT_READ | (e->writable && e->dirty ? UC_PROT_WRITE : 0)
                 | (e->executable && e->fetched ? UC_PROT_EXEC : 0);
    return 1;
}

int mmu_on_tlb_fill(void *uc, uint64_t vaddr, int uc_mem_type, void *entry, void *user_data)
{
    (void)uc;
    struct mmu_vcpu *mmu = (struct mmu_vcpu *)user_data;
    struct uc_tlb_entry_abi *out = (struct uc_tlb_entry_abi *)entry;
    uint64_t firmware_offset = vaddr - mmu->firmware_vaddr;
    if (firmware_offset < mmu->firmware_size) {
        /* The trampoline window has its own fixed translation (firmware.py). */
        out->paddr = firmware_offset & ~0xFFFull;
        out->perms = UC_PROT_READ | UC_PROT_EXEC
                     | (firmware_offset >= mmu->firmware_writable_from ? UC_PROT_WRITE : 0);
        return 1;
    }
    int access = uc_mem_type == UC_MEM_WRITE ? MMU_ACCESS_WRITE
                 : uc_mem_type == UC_MEM_FETCH ? MMU_ACCESS_FETCH : MMU_ACCESS_READ;
    /* A non-canonical address is #GP, not #PF (SDM Vol. 3A §3.3.7.1). */
    if (!is_canonical(vaddr))
        return fail(mmu, VECTOR_GP, vaddr, 0);

    struct tlb_entry *e = lookup(mmu, vaddr, mmu->pcid);
    struct tlb_entry *assisted = 0;     /* dropped for a dirty assist; drop() left its fields */
    uint8_t fetched = 0;
    if (e) {
        uint32_t error = PF_PRESENT | PF_USER | (access == MMU_ACCESS_WRITE ? PF_WRITE : 0)
                         | (access == MMU_ACCESS_FETCH ? PF_INSTR : 0);
        if (!e->user || (access == MMU_ACCESS_WRITE && !e->writable)
                || (access == MMU_ACCESS_FETCH && !e->executable)) {
            /* The cached permissions forbid the access: the processor may
             * fault without re-walking, and a #PF invalidates the address's
             * entries (§4.10.4.1), so the retried access walks afresh. This is
             * the spurious fault a kernel must tolerate after relaxing a PTE
             * without a flush. */
            mmu->counters.faults_from_tlb++;
            unicorn_forget(mmu, e);
            drop(mmu, e);
            return fail(mmu, VECTOR_PF, vaddr, error);
        }
        if (access != MMU_ACCESS_WRITE || e->dirty) {
            /* No LRU update on a hit: which hits reach this hook depends on
             * QEMU's softmmu TLB, which it resizes by wall-clock time, so
             * letting them reorder the set would make evictions (and cycles)
             * depend on the host. Replacement is by fill order (FIFO). */
            mmu->counters.hits++;
            return fill_from(out, e, vaddr, access);
        }
        /* A write to a cached clean page: the processor walks to set Dirty
         * (§4.8), and that walk sees the current paging structures. Unicorn
         * keeps what it holds of the page (the new entry replaces it in
         * place), so the new entry inherits whether it was fetched. */
        mmu->counters.dirty_assists++;
        assisted = e;
        fetched = e->fetched;
        drop(mmu, e);
    } else {
        mmu->counters.misses++;
    }
    struct walk_result w;
    int faulted = walk(mmu, vaddr, access, 1, &w);
    mmu->counters.walk_reads += w.reads;
    mmu->clock->cycles += walk_reads_charged(mmu, &w) * mmu->walk_cycles_per_read;
    if (faulted) {
        /* No entry replaces the one the dirty assist dropped, so Unicorn's
         * copy of it must go too. */
        if (assisted)
            unicorn_forget(mmu, assisted);
        return fail(mmu, VECTOR_PF, vaddr, w.fault_error_code);
    }
    if (!e && access != MMU_ACCESS_FETCH)
        mmu->clock->cycles += mmu->miss_data_cycles;
    struct tlb_entry *slot = insert(mmu, vaddr, &w);
    slot->fetched = fetched;
    return fill_from(out, slot, vaddr, access);
}

uintptr_t mmu_on_tlb_fill_address(void)
{
    return (uintptr_t)&mmu_on_tlb_fill;
}

/* The benchmark's baseline (bench/__main__.py): Unicorn in UC_TLB_VIRTUAL mode
 * with the cheapest possible fill, an identity translation with every right. */
int bench_identity_tlb_fill(void *uc, uint64_t vaddr, int uc_mem_type, void *entry, void *user_data)
{
    (void)uc; (void)uc_mem_type; (void)user_data;
    struct uc_tlb_entry_abi *out = (struct uc_tlb_entry_abi *)entry;
    out->paddr = vaddr & ~0xFFFull;
    out->perms = UC_PROT_READ | UC_PROT_WRITE | UC_PROT_EXEC;
    return 1;
}

uintptr_t bench_identity_tlb_fill_address(void)
{
    return (uintptr_t)&bench_identity_tlb_fill;
}
