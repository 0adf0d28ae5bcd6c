/*
 * qsort.c -- qsort and bsearch from glibc.
 *
 * Sorts 4000 ints from a fixed LCG (glibc's qsort is a merge sort into a
 * malloc'd buffer, and asks sysconf(_SC_PHYS_PAGES) how big it may be),
 * checks the order, sorts structs by two keys and strings with strcmp,
 * then bsearches for present and absent keys.  Output: sample elements,
 * counts and a checksum, then "qsort: done"; exit status 0.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define N 4000

static uint32_t state = 12345;

static uint32_t lcg(void)
{
    state = state * 1103515245u + 12345u;
    return (state >> 16) & 0x7fff;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

static int cmp_int_desc(const void *a, const void *b)
{
    return cmp_int(b, a);
}

struct rec {
    int key;
    int seq;
    char name[12];
};

static int cmp_rec(const void *a, const void *b)
{
    const struct rec *x = a, *y = b;
    if (x->key != y->key)
        return (x->key > y->key) - (x->key < y->key);
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int v[N];
static struct rec recs[N];

int main(void)
{
    for (int i = 0; i < N; i++)
        v[i] = (int)(lcg() << 8 | lcg() >> 7) - 4000000;
    qsort(v, N, sizeof v[0], cmp_int);
    int sorted = 1;
    uint64_t sum = 0;
    for (int i = 0; i < N; i++) {
        if (i && v[i - 1] > v[i])
            sorted = 0;
        sum = sum * 31 + (uint32_t)v[i];
    }
    printf("ints sorted=%d min=%d median=%d max=%d\n", sorted, v[0], v[N / 2], v[N - 1]);
    printf("first:");
    for (int i = 0; i < 8; i++)
        printf(" %d", v[i]);
    printf("\nchecksum=%016llx\n", (unsigned long long)sum);

    int hits = 0, misses = 0;
    for (int i = 0; i < 1000; i++) {
        int key = (int)(lcg() << 8 | lcg() >> 7) - 4000000;
        if (i % 3 == 0)
            key = v[lcg() % N];
        int *p = bsearch(&key, v, N, sizeof v[0], cmp_int);
        if (p) {
            hits++;
            if (*p != key)
                puts("bsearch returned wrong element");
        } else {
            misses++;
        }
    }
    printf("bsearch hits=%d misses=%d\n", hits, misses);

    qsort(v, N, sizeof v[0], cmp_int_desc);
    printf("descending: %d %d ... %d\n", v[0], v[1], v[N - 1]);

    /* records with many equal keys: (key, seq) order is total, so the
     * result is unique whatever the algorithm's stability */
    for (int i = 0; i < N; i++) {
        recs[i].key = lcg() % 50;
        recs[i].seq = i;
        snprintf(recs[i].name, sizeof recs[i].name, "r%d", i);
    }
    qsort(recs, N, sizeof recs[0], cmp_rec);
    printf("recs: [%d,%d,%s] [%d,%d,%s] [%d,%d,%s]\n", recs[0].key, recs[0].seq,
           recs[0].name, recs[N / 2].key, recs[N / 2].seq, recs[N / 2].name,
           recs[N - 1].key, recs[N - 1].seq, recs[N - 1].name);
    struct rec probe = recs[N / 2];
    struct rec *found = bsearch(&probe, recs, N, sizeof recs[0], cmp_rec);
    printf("rec bsearch index=%ld\n", found ? (long)(found - recs) : -1L);

    const char *words[] = {"pear", "apple", "fig", "banana", "cherry", "date",
                           "elderberry", "grape", "kiwi", "lemon", "apricot"};
    size_t nw = sizeof words / sizeof *words;
    qsort(words, nw, sizeof *words, cmp_str);
    for (size_t i = 0; i < nw; i++)
        printf("%s%c", words[i], i + 1 < nw ? ' ' : '\n');
    const char *key = "grape";
    const char **w = bsearch(&key, words, nw, sizeof *words, cmp_str);
    printf("grape at %ld\n", w ? (long)(w - words) : -1L);

    /* degenerate inputs */
    int one = 7;
    qsort(&one, 1, sizeof one, cmp_int);
    printf("one: %d\n", one);
    for (int i = 0; i < N; i++)
        v[i] = i % 3;
    qsort(v, N, sizeof v[0], cmp_int);
    printf("few-distinct: %d %d %d\n", v[0], v[N / 2], v[N - 1]);
    puts("qsort: done");
    return 0;
}
