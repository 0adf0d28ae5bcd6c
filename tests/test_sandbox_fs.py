"""--fs / --fs-rw: a host directory as the guest's root, and nothing outside it.

A secret file sits next to the mapped directory; the guest tries every way
out (``..`` past the root, absolute and relative symlinks pointing out,
``/proc/self/root``) and the test checks both the errors and that the
secret's bytes never appear in anything the guest printed.
"""
import os
import stat

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emu_x86.kernel.errno import SyscallError
from emu_x86.kernel.fs import SandboxFs
from tests.guestbuild import build_c, emu

SECRET = b"TOP-SECRET-HOST-DATA-7f3a"

FILE_PROBE_C = r"""
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static void try_read(const char *path) {
    char buf[256];
    int fd = open(path, O_RDONLY);
    if (fd < 0) { printf("open %s: %s\n", path, strerrorname_np(errno)); return; }
    ssize_t n = read(fd, buf, sizeof buf - 1);
    if (n < 0) { printf("read %s: %s\n", path, strerrorname_np(errno)); close(fd); return; }
    buf[n] = 0;
    printf("read %s: %zd [%s]\n", path, n, buf);
    close(fd);
}

static void report(const char *label, long value) {
    if (value < 0) printf("%s: %ld %s\n", label, value, strerrorname_np(errno));
    else printf("%s: %ld\n", label, value);
}

static void list(const char *path) {
    DIR *dir = opendir(path);
    if (!dir) { printf("opendir %s: %s\n", path, strerrorname_np(errno)); return; }
    printf("list %s:", path);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL)
        printf(" %s%s", entry->d_name, entry->d_type == DT_DIR ? "/" : entry->d_type == DT_LNK ? "@" : "");
    printf("\n");
    closedir(dir);
}

int main(int argc, char **argv) {
    const char *mode = argv[1];
    if (!strcmp(mode, "read")) {
        for (int i = 2; i < argc; i++) try_read(argv[i]);
    } else if (!strcmp(mode, "fifo")) {
        char buf[8];
        int fd = open(argv[2], O_RDONLY | O_NONBLOCK);
        report("open fifo O_RDONLY|O_NONBLOCK", fd);
        report("read it (no writer: EOF)", read(fd, buf, sizeof buf));
        report("open fifo O_WRONLY|O_NONBLOCK", open(argv[2], O_WRONLY | O_NONBLOCK));
    } else if (!strcmp(mode, "list")) {
        for (int i = 2; i < argc; i++) list(argv[i]);
    } else if (!strcmp(mode, "meta")) {
        struct stat st;
        char link[128];
        int status = stat("/greeting.txt", &st);
        printf("stat greeting: %d size=%lld reg=%d\n", status, (long long)st.st_size, S_ISREG(st.st_mode));
        status = lstat("/good_link", &st);
        printf("lstat good_link: %d lnk=%d\n", status, S_ISLNK(st.st_mode));
        ssize_t n = readlink("/rel_escape", link, sizeof link - 1);
        link[n > 0 ? n : 0] = 0;
        printf("readlink rel_escape: %zd [%s]\n", n, link);
        report("stat escape", stat("/abs_escape", &st));
        int fd = open("/greeting.txt", O_RDONLY);
        char buf[8] = {0};
        report("lseek", lseek(fd, 6, SEEK_SET));
        ssize_t got = read(fd, buf, 4);
        printf("read after lseek: %zd [%.4s]\n", got, buf);
        got = pread(fd, buf, 5, 0);
        printf("pread: %zd [%.5s]\n", got, buf);
        report("write to read-only fd", write(fd, "x", 1));
        close(fd);
        report("open for writing", open("/greeting.txt", O_WRONLY));
        report("create", open("/new.txt", O_WRONLY | O_CREAT, 0644));
        report("access W_OK", access("/greeting.txt", W_OK));
        int dirfd = open("/sub", O_RDONLY | O_DIRECTORY);
        printf("openat ../greeting.txt from /sub: %s\n",
               openat(dirfd, "../greeting.txt", O_RDONLY) >= 0 ? "ok" : strerrorname_np(errno));
        printf("openat ../../secret from /sub: %s\n",
               openat(dirfd, "../../secret.txt", O_RDONLY) >= 0 ? "ok" : strerrorname_np(errno));
        report("read a directory", read(dirfd, buf, 4));
        report("socket", socket(AF_INET, SOCK_STREAM, 0));
    } else if (!strcmp(mode, "write")) {
        int fd = open("/out/made-by-guest.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        printf("create: %s\n", fd >= 0 ? "ok" : strerrorname_np(errno));
        report("write", write(fd, "written by the guest\n", 21));
        close(fd);
        printf("create outside: %s\n",
               open("/../../escaped.txt", O_WRONLY | O_CREAT, 0644) >= 0 ? "inside root" : strerrorname_np(errno));
        printf("create through link: %s\n",
               open("/out_link/escaped.txt", O_WRONLY | O_CREAT, 0644) >= 0 ? "made" : strerrorname_np(errno));
    }
    return 0;
}
"""


@pytest.fixture
def sandbox(tmp_path):
    """tmp/secret.txt outside; tmp/root is the guest's / with files, a subdirectory and links."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "greeting.txt").write_text("hello from the guest root\n")
    (root / "sub" / "nested.txt").write_text("nested\n")
    os.symlink(str(tmp_path / "secret.txt"), root / "host_abs_escape")   # absolute host path
    os.symlink("/secret.txt", root / "abs_escape")
    os.symlink("../secret.txt", root / "rel_escape")
    os.symlink("../../../../../secret.txt", root / "sub" / "deep_escape")
    os.symlink("greeting.txt", root / "good_link")
    os.symlink("/greeting.txt", root / "sub" / "abs_inside")
    os.symlink("loop_b", root / "loop_a")
    os.symlink("loop_a", root / "loop_b")
    os.mkfifo(root / "fifo")
    return tmp_path, root


def run_probe(*args, fs_option="--fs", root=None):
    binary = build_c(FILE_PROBE_C)
    options = [fs_option, str(root)] if root is not None else []
    return emu("run", "--timeout", "60", *options, str(binary), *args)


ESCAPES = ["../../secret.txt", "../secret.txt", "/../secret.txt", "/../../../../secret.txt",
           "/proc/self/root/secret.txt", "/proc/self/root/../secret.txt", "/proc/1/root/secret.txt",
           "abs_escape", "rel_escape", "host_abs_escape", "sub/deep_escape", "/sub/../../secret.txt",
           "/secret.txt", "sub/../../secret.txt"]


def test_escapes_fail_and_the_secret_is_never_read(sandbox):
    _, root = sandbox
    result = run_probe("read", *ESCAPES, root=root)
    assert result.returncode == 0, result.stderr
    assert SECRET not in result.stdout and SECRET not in result.stderr
    for path in ESCAPES:
        assert f"open {path}: ENOENT".encode() in result.stdout, (path, result.stdout)


def test_files_inside_the_root_are_readable_through_paths_and_links(sandbox):
    _, root = sandbox
    result = run_probe("read", "/greeting.txt", "greeting.txt", "good_link", "sub/abs_inside",
                       "sub/../greeting.txt", "/../greeting.txt", "/sub/nested.txt", "loop_a", root=root)
    lines = result.stdout.decode().splitlines()
    hello = "26 [hello from the guest root"
    assert lines[0] == f"read /greeting.txt: {hello}"
    assert f"read greeting.txt: {hello}" in lines
    assert f"read good_link: {hello}" in lines
    assert f"read sub/abs_inside: {hello}" in lines          # absolute links resolve inside the root
    assert f"read /../greeting.txt: {hello}" in lines          # ".." at the root stays there
    assert "read /sub/nested.txt: 7 [nested" in lines
    assert "open loop_a: ELOOP" in lines


def test_a_fifo_of_the_tree_is_a_kernel_pipe(sandbox):
    """The host FIFO is never opened (it could block the emulator): the guest's open
    gets the kernel pipe of that inode, with fifo_open's non-blocking answers."""
    _, root = sandbox
    result = run_probe("fifo", "/fifo", root=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "open fifo O_RDONLY|O_NONBLOCK: 3", "read it (no writer: EOF): 0", "open fifo O_WRONLY|O_NONBLOCK: 4"]


def test_getdents_lists_the_directory_sorted_with_types(sandbox):
    _, root = sandbox
    result = run_probe("list", "/", "/sub", "/proc", root=root)
    lines = result.stdout.decode().splitlines()
    # devtmpfs is mounted on /dev and procfs on /proc in every guest (emu_x86/kernel/namei.py), so / lists them too.
    assert lines[0] == ("list /: . / .. / abs_escape@ dev/ fifo good_link@ greeting.txt host_abs_escape@ loop_a@ "
                        "loop_b@ proc/ rel_escape@ sub/").replace(" / .. /", "/ ../")
    assert lines[1] == "list /sub: ./ ../ abs_inside@ deep_escape@ nested.txt"
    assert lines[2].startswith("list /proc: ./ ../ cpuinfo meminfo stat ")   # the kernel's procfs, not the host's


def test_metadata_calls_and_read_only_mount(sandbox):
    _, root = sandbox
    result = run_probe("meta", root=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "stat greeting: 0 size=26 reg=1",
        "lstat good_link: 0 lnk=1",
        "readlink rel_escape: 13 [../secret.txt]",
        "stat escape: -1 ENOENT",
        "lseek: 6",
        "read after lseek: 4 [from]",
        "pread: 5 [hello]",
        "write to read-only fd: -1 EBADF",
        "open for writing: -1 EROFS",
        "create: -1 EROFS",
        "access W_OK: -1 EROFS",
        "openat ../greeting.txt from /sub: ok",
        "openat ../../secret from /sub: ENOENT",
        "read a directory: -1 EISDIR",
        "socket: -1 EACCES",
    ]
    assert not (root / "new.txt").exists()


def test_fs_rw_creates_files_inside_the_root_only(sandbox):
    outside, root = sandbox
    (root / "out").mkdir()
    os.symlink(str(outside), root / "out_link")       # a link to the host directory above the root
    result = run_probe("write", fs_option="--fs-rw", root=root)
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "create: ok", "write: 21", "create outside: inside root", "create through link: ENOENT"]
    assert (root / "out" / "made-by-guest.txt").read_text() == "written by the guest\n"
    assert (root / "escaped.txt").exists()              # "/../../escaped.txt" is "/escaped.txt"
    assert not (outside / "escaped.txt").exists()
    assert not (outside.parent / "escaped.txt").exists()


def test_without_fs_there_are_no_files(sandbox):
    _, root = sandbox
    result = run_probe("read", str(root / "greeting.txt"), "/etc/passwd", root=None)
    assert result.stdout.decode().splitlines() == [
        f"open {root / 'greeting.txt'}: ENOENT", "open /etc/passwd: ENOENT"]


def test_fs_option_must_name_a_directory(tmp_path):
    result = emu("run", "--fs", str(tmp_path / "missing"), "x")
    assert result.returncode == 2 and len(result.stderr_lines) == 1
    assert "not a directory" in result.stderr_lines[0]


# ---- the resolver on its own, against random paths -----------------------------------------------

COMPONENTS = ["..", ".", "", "sub", "abs_escape", "rel_escape", "host_abs_escape", "deep_escape", "secret.txt",
              "greeting.txt", "good_link", "abs_inside", "proc", "self", "root", "loop_a", "nested.txt"]


@pytest.fixture(scope="module")
def resolver_tree(tmp_path_factory):
    base = tmp_path_factory.mktemp("resolver")
    (base / "secret.txt").write_bytes(SECRET)
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "greeting.txt").write_text("hello\n")
    (root / "sub" / "nested.txt").write_text("nested\n")
    os.symlink(str(base / "secret.txt"), root / "host_abs_escape")
    os.symlink("/secret.txt", root / "abs_escape")
    os.symlink("../secret.txt", root / "rel_escape")
    os.symlink("../../../secret.txt", root / "sub" / "deep_escape")
    os.symlink("greeting.txt", root / "good_link")
    os.symlink("/greeting.txt", root / "sub" / "abs_inside")
    os.symlink("loop_a", root / "loop_a")
    return base, root


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(st.sampled_from(COMPONENTS), min_size=1, max_size=10), absolute=st.booleans())
def test_every_resolved_path_stays_inside_the_root(resolver_tree, parts, absolute):
    _, root = resolver_tree
    path = ("/" if absolute else "") + "/".join(parts)
    fs = SandboxFs(str(root))
    try:
        parent, name, components = fs.resolve((), path.encode(), follow_last=True)
    except SyscallError:
        fs.close_all()
        return
    try:
        where = os.readlink(f"/proc/self/fd/{parent}")
        assert where == str(root) or where.startswith(str(root) + os.sep), (path, where)
        info = os.stat(name, dir_fd=parent, follow_symlinks=False)
        assert not stat.S_ISLNK(info.st_mode)                # links are resolved, never handed out
        if stat.S_ISREG(info.st_mode):
            fd = os.open(name, os.O_RDONLY, dir_fd=parent)
            assert SECRET not in os.read(fd, 4096)
            os.close(fd)
        assert ".." not in components
    finally:
        os.close(parent)
        fs.close_all()
