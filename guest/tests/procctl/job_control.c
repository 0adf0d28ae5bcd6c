/* Job control (kernel/signal.c do_signal_stop, prepare_signal): SIGSTOP and
 * SIGTSTP stop a whole process -- every thread -- and waitpid(WUNTRACED)
 * reports it; SIGCONT continues it (WCONTINUED), SIGKILL kills a stopped
 * process; kill(-pgid, SIGSTOP) stops a whole group; SIGCHLD carries
 * CLD_STOPPED/CLD_CONTINUED unless SA_NOCLDSTOP; a stopped thread makes no
 * progress; SIGTSTP to an orphaned process group is discarded. Runs in its
 * own session; checked natively on the host.
 * CPUS: 1 2
 * STDOUT: SIGSTOP: stopped by SIGSTOP, progress while stopped 0
 * STDOUT: SIGCHLD: CLD_STOPPED status SIGSTOP
 * STDOUT: SIGCONT: continued 1, SIGCHLD CLD_CONTINUED, progress again 1
 * STDOUT: waitid(WSTOPPED): CLD_STOPPED SIGTSTP, WNOWAIT keeps it 1
 * STDOUT: SIGKILL while stopped: killed by SIGKILL
 * STDOUT: kill(-pgid, SIGSTOP): 2 stopped, kill(-pgid, SIGCONT): 2 continued
 * STDOUT: threads: both stopped 1, both run after SIGCONT 1
 * STDOUT: SA_NOCLDSTOP: no SIGCHLD for the stop 1, wait still reports it 1
 * STDOUT: sleeping child stopped: 1, its sleep goes on after SIGCONT: 1
 * STDOUT: orphaned group: SIGTSTP ignored 1, SIGSTOP still stops 1
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile long *shared;
static volatile int chld_code, chld_status, chld_count;

static void on_chld(int signo, siginfo_t *info, void *ctx) {
    (void)signo; (void)ctx;
    chld_code = info->si_code;
    chld_status = info->si_status;
    chld_count++;
}

static void nap(long ms) {
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000};
    while (nanosleep(&t, &t) < 0 && errno == EINTR)
        ;
}

/* Each child gets a process group of its own (or joins ``group``): a group
 * whose members' parent sits in another group of the session is not
 * orphaned, so SIGTSTP stops it. */
static pid_t spinner(int slot, pid_t group) {
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, group);
        for (;;)
            shared[slot]++;
    }
    setpgid(pid, group ? group : pid);
    while (!shared[slot])
        nap(1);
    return pid;
}

static void *spin_thread(void *arg) {
    long slot = (long)arg;
    for (;;)
        shared[slot]++;
    return 0;
}

static void chld_handler(int flags) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_chld;
    sa.sa_flags = SA_SIGINFO | SA_RESTART | flags;
    sigaction(SIGCHLD, &sa, 0);
}

static int body(void) {
    int status;
    chld_handler(0);
    pid_t c = spinner(0, 0);
    kill(c, SIGSTOP);
    waitpid(c, &status, WUNTRACED);
    long before = shared[0];
    nap(30);
    printf("SIGSTOP: stopped by %s, progress while stopped %d\n",
           WIFSTOPPED(status) && WSTOPSIG(status) == SIGSTOP ? "SIGSTOP" : "?", shared[0] != before);
    while (chld_count < 1)
        nap(1);
    printf("SIGCHLD: %s status %s\n", chld_code == CLD_STOPPED ? "CLD_STOPPED" : "?",
           chld_status == SIGSTOP ? "SIGSTOP" : "?");
    kill(c, SIGCONT);
    waitpid(c, &status, WCONTINUED);
    while (chld_count < 2)
        nap(1);
    before = shared[0];
    nap(30);
    printf("SIGCONT: continued %d, SIGCHLD %s, progress again %d\n", WIFCONTINUED(status),
           chld_code == CLD_CONTINUED ? "CLD_CONTINUED" : "?", shared[0] != before);
    kill(c, SIGTSTP);
    siginfo_t info;
    memset(&info, 0, sizeof info);
    waitid(P_PID, c, &info, WSTOPPED | WNOWAIT);
    int first = info.si_code == CLD_STOPPED && info.si_status == SIGTSTP;
    memset(&info, 0, sizeof info);
    waitid(P_PID, c, &info, WSTOPPED);
    printf("waitid(WSTOPPED): %s %s, WNOWAIT keeps it %d\n", info.si_code == CLD_STOPPED ? "CLD_STOPPED" : "?",
           info.si_status == SIGTSTP ? "SIGTSTP" : "?", first);
    kill(c, SIGKILL);
    waitpid(c, &status, 0);
    printf("SIGKILL while stopped: killed by %s\n", WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "SIGKILL" : "?");

    /* A group of two spinners. */
    shared[1] = shared[2] = 0;
    pid_t g1 = spinner(1, 0);
    pid_t g2 = spinner(2, g1);
    kill(-g1, SIGSTOP);
    int stopped = 0, continued = 0;
    for (int i = 0; i < 2; i++) {
        waitpid(-g1, &status, WUNTRACED);
        stopped += WIFSTOPPED(status);
    }
    kill(-g1, SIGCONT);
    for (int i = 0; i < 2; i++) {
        waitpid(-g1, &status, WCONTINUED);
        continued += WIFCONTINUED(status);
    }
    printf("kill(-pgid, SIGSTOP): %d stopped, kill(-pgid, SIGCONT): %d continued\n", stopped, continued);
    kill(-g1, SIGKILL);
    waitpid(g1, 0, 0);
    waitpid(g2, 0, 0);

    /* Two threads: both stop. */
    shared[3] = shared[4] = 0;
    c = fork();
    if (c == 0) {
        pthread_t t;
        pthread_create(&t, 0, spin_thread, (void *)3);
        spin_thread((void *)4);
    }
    while (!shared[3] || !shared[4])
        nap(1);
    kill(c, SIGSTOP);
    waitpid(c, &status, WUNTRACED);
    long b3 = shared[3], b4 = shared[4];
    nap(30);
    int both_stopped = shared[3] == b3 && shared[4] == b4;
    kill(c, SIGCONT);
    nap(30);
    printf("threads: both stopped %d, both run after SIGCONT %d\n", both_stopped, shared[3] != b3 && shared[4] != b4);
    kill(c, SIGKILL);
    waitpid(c, 0, 0);

    chld_handler(SA_NOCLDSTOP);
    chld_count = 0;
    c = spinner(5, 0);
    kill(c, SIGSTOP);
    waitpid(c, &status, WUNTRACED);
    nap(20);
    printf("SA_NOCLDSTOP: no SIGCHLD for the stop %d, wait still reports it %d\n", chld_count == 0, WIFSTOPPED(status));
    kill(c, SIGKILL);
    waitpid(c, 0, 0);

    /* A child sleeping in nanosleep stops, and its sleep is not cut short. */
    c = fork();
    if (c == 0) {
        struct timespec t = {0, 200000000}, rem = {0, 0};
        int rc = nanosleep(&t, &rem);
        shared[6] = rc == 0 ? 1 : 2;
        _exit(0);
    }
    nap(20);
    kill(c, SIGSTOP);
    waitpid(c, &status, WUNTRACED);
    int sleeping_stopped = WIFSTOPPED(status);
    kill(c, SIGCONT);
    waitpid(c, &status, 0);
    printf("sleeping child stopped: %d, its sleep goes on after SIGCONT: %d\n", sleeping_stopped, shared[6] == 1);
    return 0;
}

int main(void) {
    setvbuf(stdout, 0, _IONBF, 0);
    shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t pid = fork();
    if (pid == 0) {
        setsid();
        _exit(body());
    }
    int status;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        return 1;
    /* An orphaned group: a child in a new session, whose parent (us) is in
     * another session, stops itself with SIGTSTP (ignored) then SIGSTOP. */
    pid = fork();
    if (pid == 0) {
        setsid();
        raise(SIGTSTP);
        shared[7] = 1;
        raise(SIGSTOP);
        shared[8] = 1;
        _exit(0);
    }
    waitpid(pid, &status, WUNTRACED);
    printf("orphaned group: SIGTSTP ignored %d, SIGSTOP still stops %d\n", shared[7] == 1,
           WIFSTOPPED(status) && shared[8] == 0);
    kill(pid, SIGCONT);
    waitpid(pid, &status, 0);
    return 0;
}
