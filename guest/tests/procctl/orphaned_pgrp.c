/* kill_orphaned_pgrp (kernel/exit.c): when a parent's exit leaves a process
 * group with a stopped member orphaned (no member has a parent in another
 * group of the session), the group gets SIGHUP then SIGCONT. A session of
 * its own: M; its child P stays in M's group; P's child C makes a group of
 * its own and stops; P exits. Checked natively on the host.
 * CPUS: 1 2
 * STDOUT: stopped job of a group orphaned by its parent's exit: SIGHUP 1, SIGCONT 1, then ran on 1
 */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
static int out;
static void on_hup(int s) { (void)s; write(out, "H", 1); }
static void on_cont(int s) { (void)s; write(out, "C", 1); }
int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    int p[2];
    pipe(p);
    pid_t m = fork();
    if (m == 0) {
        setsid();
        pid_t pp = fork();
        if (pp == 0) {
            pid_t c = fork();
            if (c == 0) {
                out = p[1];
                setpgid(0, 0);
                signal(SIGHUP, on_hup);
                signal(SIGCONT, on_cont);
                raise(SIGSTOP);
                write(out, "E", 1);
                _exit(0);
            }
            setpgid(c, c);
            int st;
            waitpid(c, &st, WUNTRACED);
            _exit(WIFSTOPPED(st) ? 0 : 1);
        }
        int st;
        waitpid(pp, &st, 0);
        close(p[1]);
        char buf[8] = {0};
        int n = 0, k;
        while (n < 3 && (k = read(p[0], buf + n, sizeof buf - 1 - n)) > 0)
            n += k;
        /* Sorted: Linux delivers both pending signals before returning to user
         * mode (the SIGCONT frame on top of SIGHUP's); emu one per return. */
        int hup = strchr(buf, 'H') != 0, cont = strchr(buf, 'C') != 0;
        printf("stopped job of a group orphaned by its parent's exit: SIGHUP %d, SIGCONT %d, then ran on %d\n",
               hup, cont, buf[2] == 'E');
        _exit(0);
    }
    close(p[1]);
    waitpid(m, 0, 0);
    return 0;
}
