/* vdso=0 (Linux's boot parameter): no vDSO is mapped, AT_SYSINFO_EHDR is absent,
 * and glibc's clock calls become system calls.
 * CMDLINE: vdso=0
 * STATS: syscall_counts.clock_gettime == 1000
 * STDOUT: AT_SYSINFO_EHDR: 0
 * STDOUT: vdso in maps: 0
 */
#include <stdio.h>
#include <string.h>
#include <sys/auxv.h>
#include <time.h>

int main(void)
{
    struct timespec now;
    for (int i = 0; i < 1000; i++)
        clock_gettime(CLOCK_MONOTONIC, &now);
    printf("AT_SYSINFO_EHDR: %lu\n", getauxval(AT_SYSINFO_EHDR));
    char line[512];
    int found = 0;
    FILE *maps = fopen("/proc/self/maps", "r");
    while (maps && fgets(line, sizeof line, maps))
        found |= strstr(line, "[vdso]") != NULL;
    printf("vdso in maps: %d\n", found);
    return 0;
}
