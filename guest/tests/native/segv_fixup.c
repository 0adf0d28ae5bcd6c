/* A SIGSEGV handler makes the faulting page writable with mprotect and
 * returns; the faulting store is restarted and the program carries on.
 * Expected output:
 *   fault at page offset 0x10, fixed 1 time(s), value 42
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>

static char *page;
static volatile int fixes;
static volatile long fault_offset;

static void fixup(int sig, siginfo_t *info, void *context)
{
    (void)sig;
    (void)context;
    fault_offset = (char *)info->si_addr - page;
    mprotect(page, 4096, PROT_READ | PROT_WRITE);
    fixes++;
}

int main(void)
{
    page = mmap(0, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = fixup;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGSEGV, &action, 0);
    *(volatile int *)(page + 0x10) = 42;
    printf("fault at page offset %#lx, fixed %d time(s), value %d\n", fault_offset, fixes,
           *(volatile int *)(page + 0x10));
    return 0;
}
