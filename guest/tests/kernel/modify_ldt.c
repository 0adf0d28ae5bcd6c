/* modify_ldt(2) (arch/x86/kernel/ldt.c): reading an empty table, writing
 * entries in the new (0x11) and old (1) modes, the descriptors Linux builds
 * from struct user_desc (accessed bit, DPL 3, AVL dropped in old mode), the
 * validation errors, clearing an entry, the default LDT, the table being
 * copied by fork, and the int-sized return value (a negative errno comes back
 * zero-extended, so syscall() does not see an error).
 * CPUS: 1
 * STDOUT: read empty: 0 (raw 0)
 * STDOUT: buffer untouched: yes
 * STDOUT: write entry 2 (new mode): 0 (raw 0)
 * STDOUT: write entry 0 (old mode): 0 (raw 0)
 * STDOUT: read 5 entries: 40 (raw 0x28)
 * STDOUT:   ldt[0] = 0x12caf9345678bcde
 * STDOUT:   ldt[1] = 000000000000000000
 * STDOUT:   ldt[2] = 0x12daf3345678bcde
 * STDOUT:   ldt[3] = 000000000000000000
 * STDOUT:   ldt[4] = 000000000000000000
 * STDOUT: read 2 bytes: 2 (raw 0x2)
 * STDOUT: entry 8192: -22 (raw 0xffffffea)
 * STDOUT: bytecount 15: -22 (raw 0xffffffea)
 * STDOUT: contents 3 present: -22 (raw 0xffffffea)
 * STDOUT: contents 3 old mode: -22 (raw 0xffffffea)
 * STDOUT: contents 3 not present: 0 (raw 0)
 * STDOUT: bad pointer: -14 (raw 0xfffffff2)
 * STDOUT: read bad pointer: -14 (raw 0xfffffff2)
 * STDOUT: func 3: -38 (raw 0xffffffda)
 * STDOUT: clear entry 2 (LDT_empty): 0 (raw 0)
 * STDOUT: clear entry 0 (old mode, base 0 limit 0): 0 (raw 0)
 * STDOUT: read all: 128 (raw 0x80)
 * STDOUT:   ldt[0..3] = 0 0x12da7d345678bcde 0 0, ldt[15] = 0
 * STDOUT: default ldt, 200 bytes: 128 (raw 0x80)
 * STDOUT:   zeroed: yes
 * STDOUT: child reads 16 bytes, ldt[1] = 0x40f300100000ff
 */
#define _GNU_SOURCE
#include <asm/ldt.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static long modify_ldt(int func, void *ptr, unsigned long bytecount)
{
    errno = 0;
    return syscall(SYS_modify_ldt, func, ptr, bytecount);
}

static void show(const char *what, long r)
{
    /* The result is an int in RAX's low half. */
    printf("%s: %d (raw %#lx)\n", what, (int)r, (unsigned long)r);
}

int main(void)
{
    uint64_t table[16];
    memset(table, 0xAA, sizeof table);
    show("read empty", modify_ldt(0, table, sizeof table));
    printf("buffer untouched: %s\n", table[0] == 0xAAAAAAAAAAAAAAAAull ? "yes" : "no");

    struct user_desc d = {
        .entry_number = 2, .base_addr = 0x12345678, .limit = 0xABCDE, .seg_32bit = 1, .contents = 0,
        .read_exec_only = 0, .limit_in_pages = 1, .seg_not_present = 0, .useable = 1,
    };
    show("write entry 2 (new mode)", modify_ldt(0x11, &d, sizeof d));
    d.entry_number = 0;
    d.contents = 2;           /* code */
    d.read_exec_only = 1;
    show("write entry 0 (old mode)", modify_ldt(1, &d, sizeof d));
    memset(table, 0xAA, sizeof table);
    show("read 5 entries", modify_ldt(0, table, 5 * 8));
    for (int i = 0; i < 5; i++)
        printf("  ldt[%d] = %#018llx\n", i, (unsigned long long)table[i]);
    show("read 2 bytes", modify_ldt(0, table, 2));

    d.entry_number = 8192;
    show("entry 8192", modify_ldt(0x11, &d, sizeof d));
    d.entry_number = 1;
    show("bytecount 15", modify_ldt(0x11, &d, 15));
    d.contents = 3;
    d.seg_not_present = 0;
    show("contents 3 present", modify_ldt(0x11, &d, sizeof d));
    d.seg_not_present = 1;
    show("contents 3 old mode", modify_ldt(1, &d, sizeof d));
    show("contents 3 not present", modify_ldt(0x11, &d, sizeof d));
    show("bad pointer", modify_ldt(0x11, (void *)8, sizeof d));
    show("read bad pointer", modify_ldt(0, (void *)8, 64));
    show("func 3", modify_ldt(3, table, 8));

    d = (struct user_desc){ .entry_number = 2, .read_exec_only = 1, .seg_not_present = 1 };
    show("clear entry 2 (LDT_empty)", modify_ldt(0x11, &d, sizeof d));
    d = (struct user_desc){ .entry_number = 0, .seg_32bit = 1 };
    show("clear entry 0 (old mode, base 0 limit 0)", modify_ldt(1, &d, sizeof d));
    memset(table, 0xAA, sizeof table);
    show("read all", modify_ldt(0, table, sizeof table));
    printf("  ldt[0..3] = %#llx %#llx %#llx %#llx, ldt[15] = %#llx\n", (unsigned long long)table[0],
           (unsigned long long)table[1], (unsigned long long)table[2], (unsigned long long)table[3],
           (unsigned long long)table[15]);
    memset(table, 0xAA, sizeof table);
    show("default ldt, 200 bytes", modify_ldt(2, table, 200));
    printf("  zeroed: %s\n", table[0] == 0 && table[15] == 0 ? "yes" : "no");

    d = (struct user_desc){ .entry_number = 1, .base_addr = 0x1000, .limit = 0xFF, .seg_32bit = 1 };
    modify_ldt(0x11, &d, sizeof d);
    fflush(stdout);
    if (fork() == 0) {
        memset(table, 0, sizeof table);
        long n = modify_ldt(0, table, 16);
        printf("child reads %d bytes, ldt[1] = %#llx\n", (int)n, (unsigned long long)table[1]);
        return 0;
    }
    wait(NULL);
    return 0;
}
