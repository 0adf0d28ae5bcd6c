/* A guard around uc_emu_start for Unicorn's translator aborts.
 *
 * Unicorn 2.1.4's x86 translator calls abort() (tcg_abort, "tcg fatal
 * error") for a few encodings that the SDM defines as #UD: LOCK BT, and
 * LOCK BTS/BTR/BTC with a register destination, use the address temporary
 * before it is written (fixed upstream by unicorn PR #2358, not released on
 * PyPI). Random guest bytes reach them, and a guest must never kill the
 * emulator. hotpath_emu_start_guarded runs uc_emu_start with a SIGABRT
 * handler that jumps back here; the caller (VCpu._replace_aborted_unicorn)
 * then abandons that Unicorn instance, whose translator state is undefined,
 * continues on a fresh one with the same CPU state, and raises the #UD itself.
 *
 * Installing the handler costs two sigaction calls per run, and saving the
 * signal mask in sigsetjmp a third system call; a context switch ends a run.
 * So Machine.run installs the handler once for all its runs
 * (hotpath_abort_guard_install/remove): inside, a run only sets the jump
 * target. An abort outside a run while it is installed goes to the action it
 * replaced, as abort() intends. Without the installed handler (a vCPU run
 * outside Machine.run: gdb's stepi, tests), each run installs and removes it.
 */
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include "hotpath.h"

typedef int (*uc_emu_start_fn)(void *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count);
static uc_emu_start_fn emu_start;
static __thread sigjmp_buf *abort_return;
/* hotpath_abort_guard_install's state: the action it replaced. */
static int guard_installed;
static struct sigaction replaced;

void hotpath_set_emu_start(uintptr_t uc_emu_start_address)
{
    emu_start = (uc_emu_start_fn)uc_emu_start_address;
}

static void return_from_abort(int signo)
{
    if (abort_return)
        siglongjmp(*abort_return, 1);
    /* Not raised inside a guarded run: hand it to the action this handler
     * replaced (or the default), as abort() intends; it is delivered when
     * this handler returns. */
    if (guard_installed) {
        guard_installed = 0;
        sigaction(signo, &replaced, NULL);
    } else {
        signal(signo, SIG_DFL);
    }
    raise(signo);
}

static void guard_action(struct sigaction *guard)
{
    guard->sa_handler = return_from_abort;
    sigemptyset(&guard->sa_mask);
    guard->sa_flags = 0;
}

void hotpath_abort_guard_install(void)
{
    struct sigaction guard;
    if (guard_installed)
        return;
    guard_action(&guard);
    sigaction(SIGABRT, &guard, &replaced);
    guard_installed = 1;
}

void hotpath_abort_guard_remove(void)
{
    if (!guard_installed)
        return;
    guard_installed = 0;
    sigaction(SIGABRT, &replaced, NULL);
}

int hotpath_emu_start_guarded(void *uc, uint64_t begin, uint64_t until)
{
    sigjmp_buf here;
    struct sigaction guard, previous;
    int installed_here = !guard_installed;
    int status;

    if (installed_here) {
        guard_action(&guard);
        sigaction(SIGABRT, &guard, &previous);
    }
    /* The signal mask is not saved (a system call): the jump leaves SIGABRT
     * blocked, as inside the handler, and the abort path unblocks it. */
    if (sigsetjmp(here, 0)) {
        sigset_t abort_only;
        abort_return = NULL;
        sigemptyset(&abort_only);
        sigaddset(&abort_only, SIGABRT);
        sigprocmask(SIG_UNBLOCK, &abort_only, NULL);
        if (installed_here)
            sigaction(SIGABRT, &previous, NULL);
        return HOTPATH_TRANSLATION_ABORTED;
    }
    abort_return = &here;
    status = emu_start(uc, begin, until, 0, 0);
    abort_return = NULL;
    if (installed_here)
        sigaction(SIGABRT, &previous, NULL);
    return status;
}
