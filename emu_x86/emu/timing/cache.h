/* --cache-model: a per-access data-cache hierarchy (L1D, L2, L3, DRAM).
 *
 * Unicorn calls cache_on_access() for every data read and write once the
 * vCPU has a UC_HOOK_MEM_READ | UC_HOOK_MEM_WRITE hook with this callback
 * (emu/vcpu.py, only with --cache-model: the hook takes QEMU off its fast
 * memory path). Each level is set-associative with 64-byte lines and true
 * LRU, indexed by the guest-virtual line address (no physical indexing: the
 * model has no page colouring). An access charges the clock the latency of
 * the level that held its line beyond the L1 latency the block price already
 * holds; a line a prefetch stream predicted costs only its transfer at the
 * bandwidth of the level it came from. Deterministic: the state depends only on the guest's
 * accesses.
 */
#pragma once
#include <stdint.h>

#define CACHE_LEVELS 3
#define CACHE_MAX_STREAMS 32

struct cache_level {
    uint64_t *tags;         /* sets * ways line addresses + 1 (0: empty), each set MRU first */
    uint32_t sets;          /* power of two */
    uint32_t ways;
    uint32_t latency_cycles;
    uint64_t hits;
};

struct cache_stream {
    uint64_t next_line;     /* the line this stream expects next */
    int64_t direction;      /* +1 or -1 */
    uint32_t last_use;
};

#define CACHE_RECENT_MISSES 8

struct cache_model {
    struct cache_level level[3];      /* CACHE_LEVELS */
    /* The first-level data TLB, as a cache of 4 KiB page numbers: a miss
     * (the second-level TLB, emu/mmu/tlb.c, holds the page or walks) costs
     * dtlb_miss_cycles on top of the access. */
    struct cache_level dtlb;
    uint32_t dtlb_miss_cycles;
    uint64_t dtlb_misses;
    uint32_t l1_latency_cycles;
    uint32_t dram_latency_cycles;
    /* A prefetched line's transfer into L1, fixed point (hotpath.h), by the
     * level it came from: L2, L3, DRAM. */
    uint32_t prefetch_line_fixed[3];
    /* The last lines that missed L1 (a ring): a miss next to one of them
     * starts a stream, so interleaved streams (a copy's source and
     * destination) are each found. */
    uint64_t recent_misses[8];        /* CACHE_RECENT_MISSES */
    uint32_t recent_next;
    uint32_t streams_used;                 /* <= stream_count */
    uint32_t stream_count;
    uint32_t stream_clock;
    struct cache_stream streams[32];  /* CACHE_MAX_STREAMS */
    uint64_t dram_accesses;
    uint64_t prefetched;
    uint64_t accesses;
    struct hotpath_vcpu *clock;
};

void cache_on_access(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data);
uintptr_t cache_on_access_address(void);
