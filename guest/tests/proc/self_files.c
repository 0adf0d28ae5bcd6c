/* procfs (kernel/proc/): /proc/self's files describe the caller, checked
 * against what the process knows of itself by other means.
 *  - maps: the [stack] line holds a local's address, [vdso] starts at
 *    AT_SYSINFO_EHDR, the program's text line names /proc/self/exe's target
 *    and is r-xp, and every line has Linux's column layout (name at column 73);
 *  - status: Name, Pid, PPid, Threads and Uid agree with the calls;
 *  - stat: "pid (comm) R ppid", 52 fields; statm: size >= resident > 0;
 *  - cmdline and environ are argv and envp; auxv holds AT_PAGESZ and
 *    AT_SYSINFO_EHDR as getauxval reports them;
 *  - fd/N reads back as "pipe:[...]" for a pipe; fdinfo shows pos and O_RDWR;
 *  - /proc/self is a link to the pid; a write-open of a sysctl file is EACCES
 *    for an unprivileged user, not checked here (the host runs tests as root).
 * ARGS: first "second arg"
 * ENV: PROCTEST=yes
 * STDOUT: stack line: 1, vdso line: 1, exe line r-xp: 1, columns ok: 1
 * STDOUT: status: Name 1 Pid 1 PPid 1 Threads 1 Uid 1
 * STDOUT: stat: pid 1 comm 1 state R ppid 1 fields 52
 * STDOUT: statm: 1
 * STDOUT: cmdline: 3 args, second "first", third "second arg"
 * STDOUT: environ has PROCTEST=yes: 1
 * STDOUT: auxv pagesz 1 sysinfo_ehdr 1
 * STDOUT: pipe link: 1
 * STDOUT: fdinfo: pos 5 flags rdwr 1
 * STDOUT: self link is the pid: 1
 * STDOUT: listing has maps, status, fd, task: 1 1 1 1
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <unistd.h>

static char buffer[1 << 16];

static int slurp(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return -1;
    int total = 0, n;
    while ((n = read(fd, buffer + total, sizeof buffer - 1 - total)) > 0)
        total += n;
    buffer[total] = 0;
    close(fd);
    return total;
}

static long status_field(const char *name)
{
    char *line = strstr(buffer, name);
    return line ? strtol(line + strlen(name), NULL, 10) : -1;
}

int main(int argc, char **argv)
{
    int local = 0;
    char exe[PATH_MAX] = {0};
    readlink("/proc/self/exe", exe, sizeof exe - 1);
    slurp("/proc/self/maps");
    int stack_ok = 0, vdso_ok = 0, exe_ok = 0, columns_ok = 1;
    for (char *line = strtok(buffer, "\n"); line; line = strtok(NULL, "\n")) {
        unsigned long start, end;
        char perms[5];
        sscanf(line, "%lx-%lx %4s", &start, &end, perms);
        size_t length = strlen(line);
        if (length > 73 && line[72] != ' ')
            columns_ok = 0;
        if (strstr(line, "[stack]") && start <= (unsigned long)&local && (unsigned long)&local < end)
            stack_ok = 1;
        if (strstr(line, "[vdso]") && start == getauxval(AT_SYSINFO_EHDR))
            vdso_ok = 1;
        if (length > 73 && !strcmp(line + 73, exe) && !strcmp(perms, "r-xp"))
            exe_ok = 1;
    }
    printf("stack line: %d, vdso line: %d, exe line r-xp: %d, columns ok: %d\n", stack_ok, vdso_ok, exe_ok,
           columns_ok);

    slurp("/proc/self/status");
    char *name = strstr(buffer, "Name:\t");
    printf("status: Name %d Pid %d PPid %d Threads %d Uid %d\n", name && !strncmp(name + 6, "self_files", 10),
           status_field("\nPid:\t") == getpid(), status_field("\nPPid:\t") == getppid(),
           status_field("\nThreads:\t") == 1, status_field("\nUid:\t") == (long)getuid());

    slurp("/proc/self/stat");
    int pid, ppid, fields = 0;
    char comm[64], state;
    sscanf(buffer, "%d %63s %c %d", &pid, comm, &state, &ppid);
    for (char *p = strrchr(buffer, ')'); p && *p; p++)
        fields += *p == ' ';
    printf("stat: pid %d comm %d state %c ppid %d fields %d\n", pid == getpid(), !strncmp(comm, "(self_fil", 9),
           state, ppid == getppid(), fields + 2);

    slurp("/proc/self/statm");
    long size, resident;
    sscanf(buffer, "%ld %ld", &size, &resident);
    printf("statm: %d\n", size >= resident && resident > 0);

    int length = slurp("/proc/self/cmdline"), args = 0;
    for (int i = 0; i < length; i++)
        args += buffer[i] == 0;
    char *second = buffer + strlen(buffer) + 1;
    printf("cmdline: %d args, second \"%s\", third \"%s\"\n", args, second, second + strlen(second) + 1);

    length = slurp("/proc/self/environ");
    int found = 0;
    for (char *p = buffer; p < buffer + length; p += strlen(p) + 1)
        found |= !strcmp(p, "PROCTEST=yes");
    printf("environ has PROCTEST=yes: %d\n", found);

    length = slurp("/proc/self/auxv");
    int pagesz = 0, ehdr = 0;
    for (unsigned long *entry = (unsigned long *)buffer; (char *)entry < buffer + length; entry += 2) {
        if (entry[0] == AT_PAGESZ)
            pagesz = entry[1] == getauxval(AT_PAGESZ);
        if (entry[0] == AT_SYSINFO_EHDR)
            ehdr = entry[1] == getauxval(AT_SYSINFO_EHDR);
    }
    printf("auxv pagesz %d sysinfo_ehdr %d\n", pagesz, ehdr);

    int fds[2];
    pipe(fds);
    char path[64], link[128] = {0};
    snprintf(path, sizeof path, "/proc/self/fd/%d", fds[0]);
    readlink(path, link, sizeof link - 1);
    printf("pipe link: %d\n", !strncmp(link, "pipe:[", 6));

    int fd = open("/proc/self/comm", O_RDWR);
    char dummy[5];
    read(fd, dummy, 5);
    snprintf(path, sizeof path, "/proc/self/fdinfo/%d", fd);
    slurp(path);
    long flags = strtol(strstr(buffer, "flags:\t") + 7, NULL, 8);
    printf("fdinfo: pos %ld flags rdwr %d\n", status_field("pos:\t"), (flags & O_ACCMODE) == O_RDWR);

    char self[32] = {0}, pid_text[32];
    readlink("/proc/self", self, sizeof self - 1);
    snprintf(pid_text, sizeof pid_text, "%d", getpid());
    printf("self link is the pid: %d\n", !strcmp(self, pid_text));

    int has[4] = {0};
    DIR *directory = opendir("/proc/self");
    for (struct dirent *entry; directory && (entry = readdir(directory));) {
        has[0] |= !strcmp(entry->d_name, "maps");
        has[1] |= !strcmp(entry->d_name, "status");
        has[2] |= !strcmp(entry->d_name, "fd") && entry->d_type == DT_DIR;
        has[3] |= !strcmp(entry->d_name, "task");
    }
    printf("listing has maps, status, fd, task: %d %d %d %d\n", has[0], has[1], has[2], has[3]);
    return 0;
}
