/*
 * signals.c -- signal delivery to handlers in a single-threaded process.
 *
 * 1. SIGSEGV from a store to the unmapped address 0x10: an SA_SIGINFO
 *    handler sees si_signo=SIGSEGV, si_code=SEGV_MAPERR, si_addr=0x10 and
 *    siglongjmps out.
 * 2. SIGILL from ud2: si_code=ILL_ILLOPN, si_addr = address of the ud2.
 * 3. raise(SIGUSR1) (tgkill): the handler runs before raise returns, with
 *    SIGUSR1 blocked inside it (sa_mask/SA_NODEFER semantics).
 * 4. a blocked SIGUSR2 stays pending until sigprocmask unblocks it.
 * 5. SIG_IGN'd SIGUSR1 is discarded.
 * 6. SIGFPE from an integer divide by zero: si_code=FPE_INTDIV.
 * Expected output: one line per case, every verdict "ok" (never "WRONG"),
 * ending "signals: done"; exit status 0.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static sigjmp_buf jb;
static volatile sig_atomic_t got_signo, got_code, usr1_count, usr2_count, usr1_blocked;
static void *volatile got_addr;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
    (void)uc;
    got_signo = sig;
    got_code = si->si_code;
    got_addr = si->si_addr;
    siglongjmp(jb, 1);
}

static void on_usr1(int sig)
{
    sigset_t cur;
    sigprocmask(SIG_BLOCK, NULL, &cur);
    usr1_blocked = sigismember(&cur, SIGUSR1);
    usr1_count += sig == SIGUSR1;
}

static void on_usr2(int sig)
{
    usr2_count += sig == SIGUSR2;
}

extern char ud2_site[];

static const char *ok(int b)
{
    return b ? "ok" : "WRONG";
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_fault;
    sa.sa_flags = SA_SIGINFO;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGSEGV, &sa, NULL);
    sigaction(SIGILL, &sa, NULL);
    sigaction(SIGFPE, &sa, NULL);

    if (sigsetjmp(jb, 1) == 0) {
        *(volatile int *)0x10 = 1;
        puts("store to 0x10 did not fault");
    }
    printf("SIGSEGV: signo %s, code %s, addr %s\n", ok(got_signo == SIGSEGV),
           ok(got_code == SEGV_MAPERR), ok(got_addr == (void *)0x10));

    got_signo = 0;
    if (sigsetjmp(jb, 1) == 0) {
        __asm__ volatile(".globl ud2_site\nud2_site: ud2");
        puts("ud2 did not fault");
    }
    printf("SIGILL: signo %s, code %s, addr %s\n", ok(got_signo == SIGILL),
           ok(got_code == ILL_ILLOPN), ok(got_addr == (void *)ud2_site));

    got_signo = 0;
    if (sigsetjmp(jb, 1) == 0) {
        static volatile int zero = 0;
        volatile int q = 100 / zero;
        (void)q;
        puts("division by zero did not fault");
    }
    printf("SIGFPE: signo %s, code %s\n", ok(got_signo == SIGFPE),
           ok(got_code == FPE_INTDIV));

    /* the mask was restored by siglongjmp (savesigs=1): faults still work */
    got_signo = 0;
    if (sigsetjmp(jb, 1) == 0)
        *(volatile int *)0x10 = 2;
    printf("SIGSEGV again: %s\n", ok(got_signo == SIGSEGV));

    signal(SIGUSR1, on_usr1);
    raise(SIGUSR1);
    printf("SIGUSR1 via raise: count %s, blocked in handler %s\n",
           ok(usr1_count == 1), ok(usr1_blocked == 1));

    signal(SIGUSR2, on_usr2);
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    sigprocmask(SIG_BLOCK, &set, &old);
    raise(SIGUSR2);
    int before = usr2_count;
    sigset_t pend;
    sigpending(&pend);
    printf("SIGUSR2 blocked: not delivered %s, pending %s\n", ok(before == 0),
           ok(sigismember(&pend, SIGUSR2) == 1));
    sigprocmask(SIG_SETMASK, &old, NULL);
    printf("SIGUSR2 unblocked: delivered %s\n", ok(usr2_count == 1));

    signal(SIGUSR1, SIG_IGN);
    raise(SIGUSR1);
    printf("SIGUSR1 ignored: %s\n", ok(usr1_count == 1));
    puts("signals: done");
    return 0;
}
