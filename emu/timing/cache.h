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
 * stream bandwidth. Deterministic: the state depends only on the guest's
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

struct cache_model {
    struct cache_level level[3];      /* CACHE_LEVELS */
    uint32_t l1_latency_cycles;
    uint32_t dram_latency_cycles;
    uint32_t prefetch_line_cycles_fixed;   /* a prefetched line's transfer, fixed point (hotpath.h) */
    uint32_t streams_used;                 /* <= stream_count */
    uint32_t stream_count;
    uint32_t stream_clock;
    struct cache_stream streams[32];  /* CACHE_MAX_STREAMS */
    uint64_t last_line;                    /* the previous access's line, for new streams */
    uint64_t dram_accesses;
    uint64_t prefetched;
    uint64_t accesses;
    struct hotpath_vcpu *clock;
};

void cache_on_access(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data);
uintptr_t cache_on_access_address(void);
