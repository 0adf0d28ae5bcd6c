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

/* Whether ``line`` continues a stream (then the stream advances); otherwise
 * a stream starts when this line is next to the previous access's. */
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
        /* Same line again: still covered, no advance. */
        if (s->next_line - s->direction == line) {
            s->last_use = cache->stream_clock;
            return 1;
        }
    }
    int64_t delta = (int64_t)(line - cache->last_line);
    if (delta == 1 || delta == -1) {
        uint32_t victim = 0;
        if (cache->streams_used < cache->stream_count) {
            victim = cache->streams_used++;
        } else {
            for (uint32_t i = 1; i < cache->streams_used; i++)
                if (cache->streams[i].last_use < cache->streams[victim].last_use)
                    victim = i;
        }
        cache->streams[victim] = (struct cache_stream){line + delta, delta, cache->stream_clock};
    }
    return 0;
}

void cache_on_access(void *uc, int type, uint64_t address, int size, int64_t value, void *user_data)
{
    (void)uc; (void)type; (void)size; (void)value;
    struct cache_model *cache = (struct cache_model *)user_data;
    uint64_t line = address >> 6;
    cache->accesses++;
    int streamed = prefetched(cache, line);
    cache->last_line = line;
    uint32_t latency = cache->dram_latency_cycles;
    int level;
    for (level = 0; level < CACHE_LEVELS; level++) {
        if (level_access(&cache->level[level], line)) {
            cache->level[level].hits++;
            latency = cache->level[level].latency_cycles;
            break;
        }
    }
    /* Fill the levels below the one that hit (inclusive hierarchy). */
    for (int lower = level + 1; lower < CACHE_LEVELS; lower++)
        level_access(&cache->level[lower], line);
    if (level == 0)
        return;
    struct hotpath_vcpu *clock = cache->clock;
    uint64_t fixed;
    if (streamed) {
        cache->prefetched++;
        fixed = cache->prefetch_line_cycles_fixed;
        if (level < CACHE_LEVELS - 1)
            fixed = 0;      /* in L2: the L1 prefetcher had it in time */
    } else {
        if (level == CACHE_LEVELS)
            cache->dram_accesses++;
        fixed = (uint64_t)(latency - cache->l1_latency_cycles) << HOTPATH_CYCLE_FRACTION_BITS;
    }
    uint64_t total = clock->cycle_fraction + fixed;
    clock->cycles += total >> HOTPATH_CYCLE_FRACTION_BITS;
    clock->cycle_fraction = (uint32_t)total & ((1u << HOTPATH_CYCLE_FRACTION_BITS) - 1);
}

uintptr_t cache_on_access_address(void)
{
    return (uintptr_t)&cache_on_access;
}
