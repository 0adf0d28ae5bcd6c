/* mremap as mm/mremap.c: MREMAP_FIXED onto an overlapping or identical
 * destination is EINVAL and leaves the source mapped; a fixed move to a free
 * place carries the contents; MREMAP_DONTUNMAP moves the pages and leaves the
 * old range mapped and empty (zero-filled on touch); the flag checks; a
 * shrink of an unmapped range succeeds; EFAULT across mappings. Checked
 * natively on the host.
 * STDOUT: FIXED onto itself: EINVAL, source intact 1
 * STDOUT: FIXED overlapping: EINVAL, source intact 1
 * STDOUT: FIXED elsewhere: moved 1, contents 1, old range gone 1
 * STDOUT: DONTUNMAP: moved 1, contents 1, old range reads 0 and is mapped 1
 * STDOUT: DONTUNMAP resize: EINVAL, without MAYMOVE: EINVAL
 * STDOUT: FIXED without MAYMOVE: EINVAL, unknown flag: EINVAL, unaligned: EINVAL, new size 0: EINVAL
 * STDOUT: FIXED unaligned destination: EINVAL
 * STDOUT: shrink of an unmapped range: EFAULT
 * STDOUT: grow across a mapping's end: EFAULT
 * STDOUT: grow in place without MAYMOVE where blocked: ENOMEM
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

static const char *err(void *p) {
    if (p != MAP_FAILED) return "ok";
    return errno == EINVAL ? "EINVAL" : errno == EFAULT ? "EFAULT" : errno == ENOMEM ? "ENOMEM" : strerror(errno);
}

static int mapped(void *p) {
    unsigned char v;
    return mincore(p, 4096, &v) == 0;
}

int main(void) {
    const size_t page = 4096;
    char *area = mmap(0, 16 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    munmap(area + 8 * page, 8 * page);              /* area: 8 pages, a free hole after */
    memset(area, 'a', 4 * page);
    void *r = mremap(area, 2 * page, 2 * page, MREMAP_MAYMOVE | MREMAP_FIXED, area);
    printf("FIXED onto itself: %s, source intact %d\n", err(r), area[0] == 'a' && mapped(area));
    r = mremap(area, 2 * page, 2 * page, MREMAP_MAYMOVE | MREMAP_FIXED, area + page);
    printf("FIXED overlapping: %s, source intact %d\n", err(r), area[page] == 'a' && mapped(area + page));
    r = mremap(area, 2 * page, 2 * page, MREMAP_MAYMOVE | MREMAP_FIXED, area + 10 * page);
    printf("FIXED elsewhere: moved %d, contents %d, old range gone %d\n", r == area + 10 * page,
           ((char *)r)[page] == 'a', !mapped(area));
    r = mremap(area + 2 * page, 2 * page, 2 * page, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0);
    printf("DONTUNMAP: moved %d, contents %d, old range reads %d and is mapped %d\n", r != MAP_FAILED && r != area + 2 * page,
           r != MAP_FAILED && ((char *)r)[0] == 'a', area[2 * page], mapped(area + 2 * page));
    printf("DONTUNMAP resize: %s", err(mremap(area + 4 * page, page, 2 * page, MREMAP_MAYMOVE | MREMAP_DONTUNMAP, 0)));
    printf(", without MAYMOVE: %s\n", err(mremap(area + 4 * page, page, page, MREMAP_DONTUNMAP, 0)));
    printf("FIXED without MAYMOVE: %s", err(mremap(area + 4 * page, page, page, MREMAP_FIXED, area + 12 * page)));
    printf(", unknown flag: %s", err(mremap(area + 4 * page, page, page, 8, 0)));
    printf(", unaligned: %s", err(mremap(area + 4 * page + 1, page, page, 0, 0)));
    printf(", new size 0: %s\n", err(mremap(area + 4 * page, page, 0, 0, 0)));
    printf("FIXED unaligned destination: %s\n",
           err(mremap(area + 4 * page, page, page, MREMAP_MAYMOVE | MREMAP_FIXED, area + 12 * page + 8)));
    printf("shrink of an unmapped range: %s\n", err(mremap(area + 13 * page, 2 * page, page, 0, 0)));
    printf("grow across a mapping's end: %s\n", err(mremap(area + 6 * page, 4 * page, 5 * page, MREMAP_MAYMOVE, 0)));
    char *block = mmap(area + 8 * page, page, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    (void)block;
    printf("grow in place without MAYMOVE where blocked: %s\n", err(mremap(area + 6 * page, 2 * page, 3 * page, 0, 0)));
    return 0;
}
