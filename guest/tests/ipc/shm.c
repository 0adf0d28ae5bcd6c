/* System V shared memory (ipc/shm.c): shmget with IPC_PRIVATE and keys
 * (IPC_CREAT, IPC_EXCL, size and permission checks), shmat at a kernel-chosen
 * or given address (SHM_RND, SHM_RDONLY, overlap refused), the frames shared
 * with a forked child, nattch counting attaches (fork included), IPC_STAT /
 * IPC_SET / IPC_RMID, and the segment living on after IPC_RMID until the
 * last detach.
 * CPUS: 1 2
 * STDOUT: size 0 EINVAL, missing key ENOENT, create ok, again with IPC_EXCL EEXIST, bigger EINVAL, same id yes
 * STDOUT: stat: size 10000 mode 600 nattch 0 cpid is me yes lpid 0 uid 1000
 * STDOUT: attach ok, page aligned yes, nattch 1
 * STDOUT: second attach (read-only) sees "hello", nattch 2, write faults
 * STDOUT: unaligned address EINVAL, SHM_RND , overlap EINVAL, remap without address EINVAL, bad id EINVAL
 * STDOUT: SHM_RND rounds down: yes, sees "hello"
 * STDOUT: shmdt unaligned EINVAL, not an attach EINVAL, inside one EINVAL
 * STDOUT: child: nattch 2, sees "hello"
 * STDOUT: child: after shmdt nattch 1
 * STDOUT: parent sees "from child", nattch 1
 * STDOUT: IPC_SET ok, mode now 400, rw attach EACCES, rw shmget EACCES, ro shmget ok
 * STDOUT: IPC_SET bad pointer EFAULT, bad command EINVAL, negative id EINVAL, IPC_STAT bad pointer EFAULT
 * STDOUT: IPC_RMID while attached ok, mode has SHM_DEST yes, key now private yes, still readable "from child", key lookup ENOENT
 * STDOUT: after last detach: IPC_STAT EINVAL
 * STDOUT: two IPC_PRIVATE segments differ: yes; munmap detaches: nattch 0; RMID unattached ok, then ok
 */
#define _GNU_SOURCE
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/shm.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *err(long r)
{
    static char buf[32];
    if (r >= 0) {
        snprintf(buf, sizeof buf, "ok");
        return buf;
    }
    switch (errno) {
    case EINVAL: return "EINVAL";
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case EEXIST: return "EEXIST";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EIDRM: return "EIDRM";
    default: return strerror(errno);
    }
}

static sigjmp_buf jump;

static void on_segv(int sig)
{
    (void)sig;
    siglongjmp(jump, 1);
}

static unsigned long nattch(int id)
{
    struct shmid_ds ds;
    if (shmctl(id, IPC_STAT, &ds) < 0)
        return (unsigned long)-1;
    return ds.shm_nattch;
}

int main(void)
{
    key_t key = 0x5EED0000 + (getpid() & 0xFFFF);
    printf("size 0 %s, ", err(shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600)));
    printf("missing key %s, ", err(shmget(key, 4096, 0600)));
    int id = shmget(key, 10000, IPC_CREAT | IPC_EXCL | 0600);
    printf("create %s, ", err(id));
    printf("again with IPC_EXCL %s, ", err(shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600)));
    printf("bigger %s, ", err(shmget(key, 20000, 0600)));
    printf("same id %s\n", shmget(key, 4096, 0) == id ? "yes" : "no");

    struct shmid_ds ds;
    shmctl(id, IPC_STAT, &ds);
    printf("stat: size %zu mode %o nattch %lu cpid is me %s lpid %d uid %u\n", ds.shm_segsz,
           ds.shm_perm.mode, ds.shm_nattch, ds.shm_cpid == getpid() ? "yes" : "no", ds.shm_lpid,
           ds.shm_perm.uid);

    char *a = shmat(id, NULL, 0);
    printf("attach %s, page aligned %s, nattch %lu\n", a == (void *)-1 ? err(-1) : "ok",
           ((uintptr_t)a & 4095) == 0 ? "yes" : "no", nattch(id));
    strcpy(a, "hello");
    strcpy(a + 9999, "");
    char *b = shmat(id, NULL, SHM_RDONLY);
    printf("second attach (read-only) sees \"%s\", nattch %lu, ", b, nattch(id));
    signal(SIGSEGV, on_segv);
    if (!sigsetjmp(jump, 1)) {
        b[0] = 'x';
        printf("write went through\n");
    } else {
        printf("write faults\n");
    }
    printf("unaligned address %s, SHM_RND %s, overlap %s, remap without address %s, bad id %s\n",
           err((long)shmat(id, a + 1, 0)), "", err((long)shmat(id, a, 0)), err((long)shmat(id, NULL, SHM_REMAP)),
           err((long)shmat(id + 1, NULL, 0)));
    char *c = shmat(id, a + 0x100000 + 5, SHM_RND);
    printf("SHM_RND rounds down: %s, sees \"%s\"\n", c == a + 0x100000 ? "yes" : "no", c);
    shmdt(c);
    printf("shmdt unaligned %s, not an attach %s, inside one %s\n", err(shmdt(a + 1)), err(shmdt(&ds)),
           err(shmdt(a + 4096)));
    shmdt(b);
    fflush(stdout);

    pid_t child = fork();
    if (child == 0) {
        printf("child: nattch %lu, sees \"%s\"\n", nattch(id), a);
        strcpy(a, "from child");
        shmdt(a);
        printf("child: after shmdt nattch %lu\n", nattch(id));
        fflush(stdout);
        _exit(0);
    }
    waitpid(child, NULL, 0);
    printf("parent sees \"%s\", nattch %lu\n", a, nattch(id));

    ds.shm_perm.mode = 0400;
    printf("IPC_SET %s, ", err(shmctl(id, IPC_SET, &ds)));
    shmctl(id, IPC_STAT, &ds);
    printf("mode now %o, ", ds.shm_perm.mode);
    printf("rw attach %s, ", err((long)shmat(id, NULL, 0)));
    printf("rw shmget %s, ", err(shmget(key, 0, 0600)));
    printf("ro shmget %s\n", shmget(key, 0, 0400) == id ? "ok" : "wrong");
    printf("IPC_SET bad pointer %s, bad command %s, negative id %s, IPC_STAT bad pointer %s\n",
           err(shmctl(id, IPC_SET, (void *)8)), err(shmctl(id, 99, &ds)), err(shmctl(-1, IPC_STAT, &ds)),
           err(shmctl(id, IPC_STAT, (void *)8)));

    printf("IPC_RMID while attached %s, ", err(shmctl(id, IPC_RMID, NULL)));
    shmctl(id, IPC_STAT, &ds);
    printf("mode has SHM_DEST %s, key now private %s, still readable \"%s\", ", ds.shm_perm.mode & SHM_DEST ? "yes" : "no",
           ds.shm_perm.__key == IPC_PRIVATE ? "yes" : "no", a);
    printf("key lookup %s\n", err(shmget(key, 0, 0400)));
    shmdt(a);
    printf("after last detach: IPC_STAT %s\n", err(shmctl(id, IPC_STAT, &ds)));

    int priv = shmget(IPC_PRIVATE, 4096, 0600);
    int priv2 = shmget(IPC_PRIVATE, 4096, 0600);
    printf("two IPC_PRIVATE segments differ: %s; ", priv != priv2 ? "yes" : "no");
    char *p = shmat(priv, NULL, 0);
    p[0] = 1;
    munmap(p, 4096);
    printf("munmap detaches: nattch %lu; ", nattch(priv));
    printf("RMID unattached %s, then %s\n", err(shmctl(priv, IPC_RMID, NULL)), err(shmctl(priv, IPC_STAT, &ds)));
    shmctl(priv2, IPC_RMID, NULL);
    return 0;
}
