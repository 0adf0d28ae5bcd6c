/* The --cache-model hierarchy: see cache.h. */
#include <string.h>
#include "hotpath.h"
#include "cache.h"

/* Look ``line`` up in one level: on a hit move it to the front of its set
 * (MRU) and return 1; on a miss insert it at the front, dropping the LRU way. */
static int level_access(struct cache_level *level, uint64_t line)
{
    uint64_t tag = line + 1;
    uint64_t *set = level->tags + (size_t)(line & (level->sets - 1)) * level->ways;
    uint32_t ways = level->ways;
    uint32_t way = 0;
    while (way < ways && set[way] != tag)
        way++;
    int hit = way < ways;
    if (!hit)
        way = ways - 1;
    memmove(set + 1, set, way * sizeof *set);
    set[0] = tag;
    return hit;
}

/* Whether ``line`` continues a stream (then the stream advances). */
static int prefetched(struct cache_model *cache, uint64_t line)
{
    cache->stream_clock++;
    for (uint32_t i = 0; i < cache->streams_used; i++) {
        struct cache_stream *s = &cache->streams[i];
        if (s->next_line == line) {
            s->next_line = line + s->direction;
            s->last_use = cache->stream_clock;
            return 1;
        }
    }
    return 0;
}

/* An L1 miss that no stream predicted: next to a recent miss, it starts a
 * stream in that direction (replacing the least recently used one). */
static void train_streams(struct cache_model *cache, uint64_t line)
{
    for (uint32_t i = 0; i < CACHE_RECENT_MISSES; i++) {
        int64_t delta = (int64_t)(line - cache->recent_misses[i]);
        if (cache->recent_misses[i] && (delta == 1 || delta == -1)) {
            uint32_t victim = 0;
            if (cache->streams_used < cache->stream_count) {
                victim = cache->streams_used++;
            } else {
                for (uint32_t j = 1; j < cache->streams_used; j++)
                    if (cache->streams[j].last_use < cache->streams[victim].last_use)
                        victim = j;
            }
            cache->streams[victim] = (struct cache_stream){line + delta, delta, cache->stream_clock};
            break;
        }
    }
    cache->recent_misses[cache->recent_next] = line;
    cache->recent_next = (cache->recent_next + 1) % CACHE_RECENT_MISSES;
}

void cache_on_access(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data)
{
    (void)uc; (void)type; (void)size; (void)value;
    struct cache_model *cache = (struct cache_model *)user_data;
    uint64_t line = address >> 6;
    cache->accesses++;
    uint32_t extra_cycles = 0;
    if (!level_access(&cache->dtlb, address >> 12)) {
        cache->dtlb_misses++;
        extra_cycles = cache->dtlb_miss_cycles;
    }
    uint32_t latency = cache->dram_latency_cycles;
    int level;
    for (level = 0; level < CACHE_LEVELS; level++) {
        if (level_access(&cache->level[level], line)) {
            cache->level[level].hits++;
            latency = cache->level[level].latency_cycles;
            break;
        }
    }
    struct hotpath_vcpu *clock = cache->clock;
    if (level == 0) {
        clock->cycles += extra_cycles;
        return;
    }
    /* Fill the levels below the one that hit (inclusive hierarchy). */
    for (int lower = level + 1; lower < CACHE_LEVELS; lower++)
        level_access(&cache->level[lower], line);
    uint64_t fixed = (uint64_t)extra_cycles << HOTPATH_CYCLE_FRACTION_BITS;
    if (prefetched(cache, line)) {
        /* The stream fetched it ahead: only its transfer is left. */
        cache->prefetched++;
        fixed += cache->prefetch_line_fixed[level - 1];
    } else {
        train_streams(cache, line);
        if (level == CACHE_LEVELS)
            cache->dram_accesses++;
        fixed += (uint64_t)(latency - cache->l1_latency_cycles) << HOTPATH_CYCLE_FRACTION_BITS;
    }
    uint64_t total = clock->cycle_fraction + fixed;
    clock->cycles += total >> HOTPATH_CYCLE_FRACTION_BITS;
    clock->cycle_fraction = (uint32_t)total & ((1u << HOTPATH_CYCLE_FRACTION_BITS) - 1);
}

uintptr_t cache_on_access_address(void)
{
    return (uintptr_t)&cache_on_access;
}
