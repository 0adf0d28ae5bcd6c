/*
 * strings.c -- string.h and stdio formatting functions.
 *
 * Exercises glibc's (IFUNC-selected, SIMD) string routines at many lengths
 * and alignments, strtok, strstr, memmove with overlap, strto*, snprintf
 * truncation, qualifiers and widths.  Output is fully deterministic; it ends
 * with the line "strings: done" and exit status 0.
 */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static char big[8192 + 64];

static unsigned long fnv1a(const void *p, size_t n)
{
    const unsigned char *s = p;
    unsigned long h = 1469598103934665603UL;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211UL;
    }
    return h;
}

static void lengths_and_alignments(void)
{
    /* strlen / strchr / memchr / strrchr at every alignment 0..31 for a
     * range of lengths that straddles 16/32/64-byte vector boundaries. */
    unsigned long acc = 0;
    for (int align = 0; align < 32; align++) {
        for (int len = 0; len < 300; len += 7) {
            char *s = big + align;
            memset(big, 'x', sizeof big);
            for (int i = 0; i < len; i++)
                s[i] = 'a' + (i % 26);
            s[len] = '\0';
            acc = acc * 31 + strlen(s);
            char *c = strchr(s, 'q');
            acc = acc * 31 + (c ? (unsigned long)(c - s) : 999);
            c = strrchr(s, 'c');
            acc = acc * 31 + (c ? (unsigned long)(c - s) : 999);
            c = memchr(s, 'z', len);
            acc = acc * 31 + (c ? (unsigned long)(c - s) : 999);
            acc = acc * 31 + (strchr(s, '\0') == s + len);
        }
    }
    printf("scan checksum: %lu\n", acc);

    /* strcmp / memcmp / strncmp with the difference at every position */
    long cmpsum = 0;
    static char a[200], b[200];
    for (int pos = 0; pos < 150; pos++) {
        memset(a, 'm', sizeof a);
        memset(b, 'm', sizeof b);
        a[160] = b[160] = '\0';
        b[pos] = (pos & 1) ? 'a' : 'z';
        int r1 = strcmp(a, b), r2 = memcmp(a, b, 160), r3 = strncmp(a, b, pos);
        cmpsum = cmpsum * 3 + (r1 > 0) - (r1 < 0);
        cmpsum = cmpsum * 3 + (r2 > 0) - (r2 < 0);
        cmpsum += (r3 == 0);
        cmpsum %= 1000000007L;
    }
    printf("compare checksum: %ld\n", cmpsum);
}

static void tokens(void)
{
    char line[] = "  alpha, beta;gamma  ,,delta ;epsilon  ";
    int n = 0;
    for (char *t = strtok(line, " ,;"); t; t = strtok(NULL, " ,;"))
        printf("token %d: [%s] len=%zu\n", n++, t, strlen(t));

    char csv[] = "k1=v1&k2=v2&&k3=";
    char *save, *p = csv;
    while ((save = strsep(&p, "&")) != NULL)
        printf("strsep: [%s]\n", save);

    char path[] = "/usr/local/lib/x86_64";
    char *ctx;
    for (char *t = strtok_r(path, "/", &ctx); t; t = strtok_r(NULL, "/", &ctx))
        printf("strtok_r: %s\n", t);
}

static void search(void)
{
    const char *hay = "the quick brown fox jumps over the lazy dog; the end";
    const char *needles[] = {"the", "fox", "lazy dog", "cat", "", "end", "d", "the end"};
    for (size_t i = 0; i < sizeof needles / sizeof *needles; i++) {
        const char *r = strstr(hay, needles[i]);
        printf("strstr(%s) = %ld\n", needles[i], r ? (long)(r - hay) : -1L);
    }
    printf("strspn=%zu strcspn=%zu\n", strspn(hay, "the "), strcspn(hay, "xyz"));
    printf("strpbrk=%s\n", strpbrk(hay, "jz"));
    printf("strcasecmp=%d %d\n", strcasecmp("HeLLo", "hello") == 0,
           strcasecmp("abc", "ABD") < 0);
    printf("strncasecmp=%d\n", strncasecmp("PREFIXrest", "prefixREST", 6) == 0);

    /* long needle / haystack: the two-way algorithm path */
    memset(big, 'a', 5000);
    memcpy(big + 4000, "aaab", 4);
    big[5000] = '\0';
    char needle[300];
    memset(needle, 'a', 299);
    needle[296] = 'b';
    needle[297] = '\0';
    const char *r = strstr(big, needle);
    printf("long strstr = %ld\n", r ? (long)(r - big) : -1L);
}

static void moves(void)
{
    char buf[64] = "0123456789abcdefghijklmnopqrstuvwxyz";
    memmove(buf + 5, buf, 20);   /* overlap forward */
    printf("memmove fwd: %s\n", buf);
    memmove(buf, buf + 10, 20);  /* overlap backward */
    printf("memmove bwd: %s\n", buf);

    /* large overlapping moves through the vector / rep movsb paths */
    for (int i = 0; i < 8192; i++)
        big[i] = (char)(i * 7 + 3);
    unsigned long h = 0;
    for (int shift = 1; shift < 200; shift += 13) {
        memmove(big + shift, big, 4000);
        h ^= fnv1a(big, 8192);
        memmove(big, big + shift, 4000);
        h ^= fnv1a(big, 8192) * 3;
    }
    printf("big memmove hash: %lx\n", h);

    char dst[32];
    memset(dst, '#', sizeof dst);
    strncpy(dst, "short", 10);
    printf("strncpy pads: %d %d %c\n", dst[5] == 0, dst[9] == 0, dst[10]);
    strcpy(dst, "cat");
    strcat(dst, "alog");
    strncat(dst, "ue-and-more", 2);
    printf("strcat: %s\n", dst);
    char *d = strdup("duplicate me");
    d[0] = toupper((unsigned char)d[0]);
    printf("strdup: %s\n", d);
    free(d);
    char *nd = strndup("abcdefgh", 3);
    printf("strndup: %s\n", nd);
    free(nd);
    printf("stpcpy end offset: %ld\n", (long)(stpcpy(dst, "hello") - dst));
}

static void numbers(void)
{
    char *end;
    printf("strtol: %ld %ld %ld\n", strtol("  -12345xyz", &end, 10),
           strtol("0x7fff", NULL, 0), strtol("0777", NULL, 0));
    printf("strtol end: [%s]\n", end);
    printf("strtoul: %lu\n", strtoul("18446744073709551615", NULL, 10));
    printf("strtoll base36: %lld\n", strtoll("zz", NULL, 36));
    printf("atoi: %d\n", atoi("  42abc"));

    char out[16];
    int n = snprintf(out, sizeof out, "%s-%d-%s", "truncated", 123456, "tail");
    printf("snprintf ret=%d out=[%s]\n", n, out);
    n = snprintf(NULL, 0, "%08.3f|%x", 3.14159, 255u);
    printf("snprintf(NULL) ret=%d\n", n);
    printf("[%5d] [%-5d] [%05d] [%+d] [% d]\n", 42, 42, 42, 42, 42);
    printf("[%x] [%X] [%#x] [%o] [%#o]\n", 3054u, 3054u, 3054u, 8u, 8u);
    printf("[%10s] [%-10s] [%.3s] [%c%c]\n", "right", "left", "precision", 'o', 'k');
    printf("[%lld] [%llu] [%hhd] [%hd]\n", -9223372036854775807LL - 1,
           18446744073709551615ULL, (signed char)200, (short)70000);
    printf("[%zu] [%td] [%jd] [%%]\n", sizeof(long double), (ptrdiff_t)-7,
           (intmax_t)1 << 40);
    printf("[%*d] [%-*d] [%.*s]\n", 6, 7, 4, 8, 2, "xyz");

    char upper[] = "Mixed Case 123!";
    for (char *p = upper; *p; p++)
        *p = toupper((unsigned char)*p);
    printf("toupper: %s\n", upper);
    int counts[4] = {0};
    for (const char *p = "Hello, World 2024\t\n"; *p; p++) {
        counts[0] += isalpha((unsigned char)*p) != 0;
        counts[1] += isdigit((unsigned char)*p) != 0;
        counts[2] += isspace((unsigned char)*p) != 0;
        counts[3] += ispunct((unsigned char)*p) != 0;
    }
    printf("ctype: alpha=%d digit=%d space=%d punct=%d\n", counts[0], counts[1],
           counts[2], counts[3]);
}

int main(void)
{
    lengths_and_alignments();
    tokens();
    search();
    moves();
    numbers();
    puts("strings: done");
    return 0;
}
