/* PTRACE_SEIZE with options, PTRACE_INTERRUPT (a PTRACE_EVENT_STOP), and
 * PTRACE_O_TRACECLONE: a thread the tracee creates is traced too, starts
 * with its own PTRACE_EVENT_STOP and its exit is reported to the tracer's
 * waitpid(-1, __WALL); PTRACE_O_TRACEEXIT stops both threads before they go.
 * Then a tracer that exits: its stopped tracee runs on (detach), unless it
 * used PTRACE_O_EXITKILL (the tracee is killed).
 * CPUS: 1 2
 * STDOUT: interrupt stop event=128 sig=5
 * STDOUT: clone_events=1 thread_first_stop=1 thread_exit=1 exit_events=2 msg_is_thread=1
 * STDOUT: child exited status=5
 * STDOUT: tracer exit without EXITKILL: tracee ran on=1
 * STDOUT: tracer exit with EXITKILL: tracee ran on=0
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct shared {
    volatile int go;
    volatile long counter[2];
    volatile pid_t tracee;
};
static struct shared *shared;

static void *worker(void *arg) {
    for (int i = 0; i < 3; i++)
        syscall(SYS_getpid);
    return arg;
}

static void nap(long ms) {
    struct timespec ts = {0, ms * 1000000};
    nanosleep(&ts, 0);
}

/* A tracer process seizes its own child, interrupts it, and exits. */
static int tracer_exits(int exitkill) {
    shared->go = 0;
    pid_t tracer = fork();
    if (tracer == 0) {
        pid_t tracee = fork();
        if (tracee == 0) {
            for (;;) {
                if (shared->go)
                    shared->counter[exitkill]++;
                sched_yield();
            }
        }
        shared->tracee = tracee;
        ptrace(PTRACE_SEIZE, tracee, 0, (void *)(long)(exitkill ? PTRACE_O_EXITKILL : 0));
        ptrace(PTRACE_INTERRUPT, tracee, 0, 0);
        int status;
        waitpid(tracee, &status, __WALL);
        shared->go = 1;
        _exit(0);    /* the tracee is still stopped */
    }
    waitpid(tracer, 0, 0);
    long before = shared->counter[exitkill];
    nap(20);
    long after = shared->counter[exitkill];
    kill(shared->tracee, SIGKILL);     /* an orphan now: not ours to reap */
    return after > before;
}

int main(void) {
    setvbuf(stdout, NULL, _IONBF, 0);
    shared = mmap(0, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    pid_t child = fork();
    if (child == 0) {
        while (!shared->go)
            sched_yield();
        pthread_t thread;
        pthread_create(&thread, 0, worker, 0);
        pthread_join(thread, 0);
        syscall(SYS_exit_group, 5);
    }
    ptrace(PTRACE_SEIZE, child, 0, (void *)(long)(PTRACE_O_TRACECLONE | PTRACE_O_TRACEEXIT));
    ptrace(PTRACE_INTERRUPT, child, 0, 0);
    int status;
    if (waitpid(child, &status, __WALL) != child || !WIFSTOPPED(status))
        return 10;
    printf("interrupt stop event=%d sig=%d\n", status >> 16, WSTOPSIG(status));
    shared->go = 1;
    ptrace(PTRACE_CONT, child, 0, 0);
    int clone_events = 0, first_stop = 0, thread_exit = 0, exit_events = 0, msg_ok = 0;
    unsigned long message = 0;
    pid_t thread_tid = 0;
    for (;;) {
        pid_t who = waitpid(-1, &status, __WALL);
        if (who < 0)
            return 11;
        if (who == child && WIFEXITED(status)) {
            printf("clone_events=%d thread_first_stop=%d thread_exit=%d exit_events=%d msg_is_thread=%d\n",
                   clone_events, first_stop, thread_exit, exit_events, msg_ok);
            printf("child exited status=%d\n", WEXITSTATUS(status));
            break;
        }
        if (WIFEXITED(status)) {
            thread_exit += who != child;
            continue;
        }
        int event = status >> 16;
        if (event == PTRACE_EVENT_CLONE) {
            clone_events++;
            ptrace(PTRACE_GETEVENTMSG, who, 0, &message);
        } else if (event == PTRACE_EVENT_STOP && who != child) {
            first_stop++;
            thread_tid = who;
        } else if (event == PTRACE_EVENT_EXIT) {
            exit_events++;
        }
        if (thread_tid && message)
            msg_ok = message == (unsigned long)thread_tid;
        ptrace(PTRACE_CONT, who, 0, 0);
    }
    printf("tracer exit without EXITKILL: tracee ran on=%d\n", tracer_exits(0));
    printf("tracer exit with EXITKILL: tracee ran on=%d\n", tracer_exits(1));
    return 0;
}
