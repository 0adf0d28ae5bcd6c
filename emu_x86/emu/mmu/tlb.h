/* The per-vCPU TLB model and the TLB-fill path, compiled with cffi into the
 * hot-path module (emu.timing._hotpath).
 *
 * Unicorn runs in UC_TLB_VIRTUAL mode and asks mmu_on_tlb_fill() for every
 * page its own internal TLB does not hold. The fill consults this model, a
 * set-associative TLB tagged by PCID with global entries (Intel SDM Vol. 3A
 * §4.10.2), plus a small fully associative array for 2 MiB / 1 GiB pages.
 * A miss walks the 4-level page tables in guest physical memory (§4.5),
 * setting Accessed/Dirty (§4.8), and charges the walk to the vCPU's clock.
 * Entries stay until an architected invalidation (MOV CR3, INVLPG, INVPCID,
 * INVLPGB) or an eviction drops them, so a kernel that forgets a flush lets
 * the guest use a stale translation, as hardware would.
 *
 * Unicorn's internal TLB is a cache in front of this model: it only ever
 * holds translations of the current PCID and global ones that the model
 * also holds. Whenever the model drops such an entry, Unicorn's TLB must be
 * flushed (the Python side does it for invalidations; an eviction inside a
 * fill sets hotpath_vcpu.unicorn_tlb_flush_pending, which the block hook
 * acts on before the next block runs) -- unless QEMU's TLB no longer holds
 * the page and the page was never fetched (tlb.c, unicorn_forget).
 */
#pragma once
#include <stdint.h>
#include "hotpath.h"

struct tlb_entry {
    uint64_t vpn;           /* virtual page number of the page's first 4 KiB */
    uint64_t paddr;         /* physical address of the page's first byte */
    uint64_t last_use;      /* fill stamp (FIFO replacement); 0 = invalid */
    uint16_t pcid;
    uint8_t global;
    uint8_t writable;       /* R/W AND over all levels */
    uint8_t user;           /* U/S AND over all levels */
    uint8_t executable;     /* not XD at any level */
    uint8_t dirty;          /* leaf Dirty when the entry was filled */
    uint8_t page_shift;     /* 12, 21 or 30 */
    /* An instruction fetch used the entry: only then does Unicorn get
     * execute permission for the page, so only such pages can have
     * translated blocks in QEMU's jump cache (tlb.c, unicorn_forget). */
    uint8_t fetched;
};

struct tlb_counters {
    uint64_t hits;          /* fills answered by the model without a walk (host-dependent: not in stats) */
    uint64_t misses;        /* fills that walked the page tables */
    uint64_t dirty_assists; /* first write to a cached clean page: walk to set Dirty */
    uint64_t evictions;     /* valid entries replaced by a fill (FIFO in the set) */
    uint64_t invalidated;   /* entries dropped by architected invalidations */
    uint64_t walk_reads;    /* paging-structure entries read by walks */
    uint64_t faults_from_tlb; /* #PF raised from a cached entry's permissions */
};

struct mmu_vcpu {
    /* Configuration (Python, at creation). */
    struct hotpath_vcpu *clock;     /* cycles charged for walks; flush-pending flag */
    uint8_t *phys;                  /* host address of guest physical memory */
    uint64_t phys_size;
    uint64_t firmware_vaddr;        /* the firmware window has a fixed translation */
    uint64_t firmware_size;
    uint64_t firmware_writable_from; /* offset of the first writable firmware byte */
    uint64_t walk_cycles_per_read;  /* cost of one paging-structure read */
    /* Charged on top of the walk when a data access misses the modelled TLB
     * (the profile's [memory] tlb_miss_data_proxy_cycles, 0 with --cache-model):
     * the default path's stand-in for the cache miss such an access takes. */
    uint64_t miss_data_cycles;
    struct tlb_entry *small;        /* sets * ways entries, set-major */
    struct tlb_entry *large;        /* large_entries entries */
    uint32_t sets;                  /* power of two */
    uint32_t ways;                  /* at most TLB_MAX_WAYS */
    uint32_t large_entries;
    /* Each set's valid ways in fill order, oldest first, as a ring of way
     * numbers: way i of the order is fifo[set * ways + (fifo_head[set] + i) % ways],
     * i < fifo_count[set]. So a full set's FIFO victim is its head, found
     * without comparing the entries' fill stamps; the order is always the
     * valid ways sorted by last_use (tlb_sets_consistent). Zeroed at creation
     * (Python), then owned by tlb.c. */
    uint8_t *fifo;                  /* sets * ways */
    /* small[i].vpn while small[i] is valid, else TLB_TAG_INVALID (Python
     * fills it so at creation; zero would be page 0): lookup compares these,
     * 8 bytes a way, before touching an entry of 40. */
    uint64_t *tags;                 /* sets * ways */
    /* A one-byte hash of each way's page (tlb_tag_byte), written when the
     * way is filled and left stale when it is dropped: lookup compares 16
     * ways' bytes in one SSE2 instruction and reads tags only where a byte
     * matches (tags decide). sets * ways + 15 bytes: the last set's 16-byte
     * load may read past it. */
    uint8_t *tag_bytes;
    uint8_t *fifo_head;             /* sets */
    uint8_t *fifo_count;            /* sets */
    /* Architectural state (Python). */
    uint64_t cr3;                   /* page-table root (bits 51:12) */
    uint16_t pcid;                  /* current PCID (0 when CR4.PCIDE = 0) */
    /* Model state. */
    uint64_t stamp;
    uint32_t large_valid;           /* number of valid large entries (skip the scan when 0) */
    /* The fault the last failed fill reports (Python reads it after emu_start). */
    uint32_t fault_vector;          /* 0 none, 13 #GP, 14 #PF */
    uint32_t fault_error_code;
    uint64_t fault_address;
    struct tlb_counters counters;
    /* Walk-line reuse (a profile's [tlb] walk_line_reuse): a paging-structure
     * read in the same 64-byte line as the previous walk's read at that level
     * is not charged -- the line is still in the L1 (and its upper-level
     * entries in the page-walk cache), as in a sequential sweep, where eight
     * pages share a PTE line and 16 MiB share a PDE line. 0: every read costs
     * walk_cycles_per_read (Python sets it at creation). */
    uint32_t walk_line_reuse;
    uint64_t walk_lines[4];         /* the previous walk's line per level (physical address >> 6) */
};

/* One-page result of a software walk, for tests and the kernel. */
struct walk_result {
    uint64_t paddr;         /* physical address of the translated 4 KiB page */
    uint32_t fault_error_code;  /* valid when the walk returns nonzero */
    uint8_t writable, user, executable, dirty, global, page_shift;
    uint32_t reads;         /* paging-structure entries read */
    uint64_t lines[4];      /* the 64-byte line (physical address >> 6) of each read, by level */
};

/* No virtual page number is this large (they have at most 52 bits). */
#define TLB_TAG_INVALID 0xFFFFFFFFFFFFFFFFull

/* Way numbers are bytes in mmu_vcpu.fifo. */
#define TLB_MAX_WAYS 255

/* Access kinds, as in emu/mmu/pagewalk.py. */
#define MMU_ACCESS_READ 0
#define MMU_ACCESS_WRITE 1
#define MMU_ACCESS_FETCH 2

int mmu_walk(struct mmu_vcpu *mmu, uint64_t vaddr, int access, struct walk_result *result);  /* at CPL3 */
/* user_mode = 0: a supervisor access (CR0.WP = 1); no TLB model or counter is touched. */
int mmu_walk_mode(struct mmu_vcpu *mmu, uint64_t vaddr, int access, int user_mode, struct walk_result *result);
int mmu_on_tlb_fill(void *uc, uint64_t vaddr, int uc_mem_type, void *entry, void *user_data);
uintptr_t mmu_on_tlb_fill_address(void);
uintptr_t bench_identity_tlb_fill_address(void);   /* the benchmark's baseline fill */

/* Whether QEMU's softmmu TLB described by ``view`` holds a translation of the
 * 4 KiB page at ``page`` in any MMU index, main table or victim TLB. */
int unicorn_tlb_holds(const struct unicorn_tlb_view *view, uint64_t page);

/* For tests: 1 when every set's fifo ring lists exactly its valid ways in
 * increasing last_use order and its tags (and tag bytes) are its valid
 * entries' pages, 0 otherwise. */
int tlb_sets_consistent(struct mmu_vcpu *mmu);
/* Look up without side effects (for tests): 1 and *out filled when cached. */
int tlb_probe(struct mmu_vcpu *mmu, uint64_t vaddr, uint16_t pcid, struct tlb_entry *out);

/* Drop entries. pcid < 0: every PCID. [va_start, va_end) page range, or every
 * address when va_start >= va_end. include_global: also global entries (which
 * match regardless of PCID); otherwise global entries stay. Returns the number
 * of dropped entries Unicorn's TLB could hold (global, or of current_pcid). */
uint32_t tlb_invalidate(struct mmu_vcpu *mmu, int pcid, uint64_t va_start, uint64_t va_end,
                        int include_global, int current_pcid);
