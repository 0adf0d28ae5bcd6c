/*
 * malloc_heavy.c -- glibc malloc under load: brk-grown arena and mmap'd
 * chunks.
 *
 * Thousands of malloc/calloc/realloc/free calls of sizes from 1 byte to
 * 1 MiB, driven by a fixed LCG.  Requests above glibc's mmap threshold
 * (fixed at 128 KiB with mallopt) are served with mmap, released with munmap;
 * realloc of such chunks goes through mremap.  Every live block is filled
 * with a pattern derived from its id and verified before it is freed, so a
 * lost or aliased page shows up as "corrupt".  Output: a few summary lines
 * with a checksum that depends only on the data, then "malloc_heavy: done";
 * exit status 0 (1 if corruption is detected).
 */
#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 512
#define ROUNDS 6000

static uint64_t lcg_state = 0x2545F4914F6CDD1DULL;

static uint32_t rnd(void)
{
    lcg_state = lcg_state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(lcg_state >> 33);
}

struct slot {
    unsigned char *p;
    size_t size;
    uint32_t id;
};

static struct slot slots[SLOTS];
static uint64_t checksum;
static unsigned long corrupt, mallocs, frees, reallocs, bigs;

static unsigned char pat(uint32_t id, size_t i)
{
    return (unsigned char)(id * 131u + i * 7u + (i >> 9));
}

static void fill(struct slot *s)
{
    /* touch every byte of small blocks, one byte per 64 of large ones */
    size_t step = s->size > 65536 ? 64 : 1;
    for (size_t i = 0; i < s->size; i += step)
        s->p[i] = pat(s->id, i);
    if (s->size)
        s->p[s->size - 1] = pat(s->id, s->size - 1);
}

static void verify(struct slot *s, size_t upto)
{
    size_t step = s->size > 65536 ? 64 : 1;
    size_t n = upto < s->size ? upto : s->size;
    for (size_t i = 0; i < n; i += step) {
        if (s->p[i] != pat(s->id, i)) {
            corrupt++;
            return;
        }
        checksum = checksum * 1000003u + s->p[i];
    }
}

static size_t pick_size(void)
{
    uint32_t r = rnd() % 100;
    if (r < 60)
        return 1 + rnd() % 256;              /* tcache / fastbin sizes */
    if (r < 85)
        return 256 + rnd() % 4096;           /* small bins */
    if (r < 95)
        return 4096 + rnd() % (64 * 1024);   /* large bins */
    bigs++;
    return 128 * 1024 + rnd() % (1024 * 1024); /* mmap threshold and above */
}

int main(void)
{
    uint32_t next_id = 1;
    /* a fixed threshold turns off glibc's dynamic threshold, so every
     * request of 128 KiB or more keeps going to mmap */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    for (int round = 0; round < ROUNDS; round++) {
        struct slot *s = &slots[rnd() % SLOTS];
        uint32_t op = rnd() % 10;
        if (s->p == NULL) {
            s->size = pick_size();
            s->id = next_id++;
            if (op < 2) {
                s->p = calloc(1, s->size);
                for (size_t i = 0; s->p && i < s->size; i += 97)
                    if (s->p[i] != 0)
                        corrupt++;
            } else {
                s->p = malloc(s->size);
            }
            if (!s->p) {
                printf("allocation of %zu failed\n", s->size);
                return 1;
            }
            mallocs++;
            fill(s);
        } else if (op < 3) {
            /* realloc: old contents must survive up to min(old, new) */
            size_t nsize = pick_size();
            unsigned char *np = realloc(s->p, nsize);
            if (!np) {
                printf("realloc to %zu failed\n", nsize);
                return 1;
            }
            s->p = np;
            size_t keep = nsize < s->size ? nsize : s->size;
            verify(s, keep);
            s->size = nsize;
            s->id = next_id++;
            fill(s);
            reallocs++;
        } else {
            verify(s, s->size);
            free(s->p);
            s->p = NULL;
            frees++;
        }
    }
    /* one very large block: 8 MiB, written at the ends and every page */
    size_t huge = 8u << 20;
    unsigned char *h = malloc(huge);
    if (!h) {
        puts("huge malloc failed");
        return 1;
    }
    for (size_t i = 0; i < huge; i += 4096)
        h[i] = (unsigned char)(i >> 12);
    h[huge - 1] = 0x5a;
    uint64_t hs = 0;
    for (size_t i = 0; i < huge; i += 4096)
        hs += h[i];
    hs += h[huge - 1];
    free(h);

    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            verify(&slots[i], slots[i].size);
            free(slots[i].p);
        }
    }
    printf("mallocs=%lu reallocs=%lu frees=%lu big_requests=%lu\n", mallocs,
           reallocs, frees, bigs);
    printf("huge sum=%llu\n", (unsigned long long)hs);
    printf("checksum=%016llx\n", (unsigned long long)checksum);
    printf("corrupt=%lu\n", corrupt);
    puts("malloc_heavy: done");
    return corrupt ? 1 : 0;
}
