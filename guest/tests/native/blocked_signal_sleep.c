/*
 * blocked_signal_sleep.c -- a blocked signal sent to a sleeping thread stays
 * pending and does not end its sleep (signal_wake_up is only called for a
 * signal the thread does not block): nanosleep completes, sigpending shows it.
 * Expected output: the same as on Linux; exit status 0.
 */
#include <stdio.h>
#include <signal.h>
#include <pthread.h>
#include <unistd.h>
#include <time.h>
#include <errno.h>
#include <string.h>
static pthread_t main_thread;
static void *sender(void *a) { usleep(2000); pthread_kill(main_thread, SIGUSR1); return NULL; }
static void h(int s) { (void)s; }
int main(void) {
    signal(SIGUSR1, h);
    sigset_t m; sigemptyset(&m); sigaddset(&m, SIGUSR1); sigprocmask(SIG_BLOCK, &m, NULL);
    main_thread = pthread_self();
    pthread_t t; pthread_create(&t, NULL, sender, NULL);
    struct timespec ts = {0, 20000000};
    int r = nanosleep(&ts, NULL);
    printf("nanosleep with SIGUSR1 blocked: %d %s\n", r, r ? strerror(errno) : "completed");
    sigset_t p; sigpending(&p);
    printf("pending: %d\n", sigismember(&p, SIGUSR1));
    pthread_join(t, NULL);
    return 0;
}
