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
 */
#include <setjmp.h>
#include <signal.h>
#include <stddef.h>
#include "hotpath.h"

typedef int (*uc_emu_start_fn)(void *uc, uint64_t begin, uint64_t until, uint64_t timeout, size_t count);
static uc_emu_start_fn emu_start;
static __thread sigjmp_buf *abort_return;

void hotpath_set_emu_start(uintptr_t uc_emu_start_address)
{
    emu_start = (uc_emu_start_fn)uc_emu_start_address;
}

static void return_from_abort(int signo)
{
    if (abort_return)
        siglongjmp(*abort_return, 1);
    /* Not raised inside a guarded run: die as abort() intends. */
    signal(signo, SIG_DFL);
    raise(signo);
}

int hotpath_emu_start_guarded(void *uc, uint64_t begin, uint64_t until)
{
    sigjmp_buf here;
    struct sigaction guard, previous;
    int status;

    guard.sa_handler = return_from_abort;
    sigemptyset(&guard.sa_mask);
    guard.sa_flags = 0;
    sigaction(SIGABRT, &guard, &previous);
    /* Saving the signal mask restores it on the jump: SIGABRT is blocked
     * inside the handler. */
    if (sigsetjmp(here, 1)) {
        abort_return = NULL;
        sigaction(SIGABRT, &previous, NULL);
        return HOTPATH_TRANSLATION_ABORTED;
    }
    abort_return = &here;
    status = emu_start(uc, begin, until, 0, 0);
    abort_return = NULL;
    sigaction(SIGABRT, &previous, NULL);
    return status;
}
