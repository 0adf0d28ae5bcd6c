/* The same calls as namespace_calls.c on /tmp without any --fs: the
 * in-memory tmpfs (kernel/tmpfs.py), file data in guest frames. Checked
 * natively as uid 1000 in an empty root-owned sticky directory (mode 1777,
 * as /tmp is).
 * ARGS: /tmp
 * CPUS: 1 2
 * STDOUT: mkdir: ok, again: EEXIST, "." : EEXIST, missing parent: ENOENT, trailing slash: ok
 * STDOUT: mkdirat(dirfd): ok, stat: dir 1 mode 0750
 * STDOUT: rmdir ".": EINVAL, "..": ENOTEMPTY, non-empty: ENOTEMPTY, a file: ENOTDIR, missing: ENOENT
 * STDOUT: unlink a directory: EISDIR, trailing slash on a file: ENOTDIR, unlinkat bad flag: EINVAL
 * STDOUT: unlinkat(AT_REMOVEDIR): ok, unlink: ok, gone: ENOENT
 * STDOUT: rename: ok, contents kept: abc, old name: ENOENT
 * STDOUT: rename dir onto file: ENOTDIR, file onto dir: EISDIR, dir into itself: EINVAL, onto non-empty dir: ENOTEMPTY
 * STDOUT: renameat2 NOREPLACE onto existing: EEXIST, EXCHANGE: ok swapped 1, EXCHANGE|NOREPLACE: EINVAL, WHITEOUT: ok
 * STDOUT: link: ok nlink 2, to a directory: EPERM, onto existing: EEXIST
 * STDOUT: symlink: ok, readlink: target-name, lstat is link 1, through it: abc
 * STDOUT: readlink of a file: EINVAL, symlink onto existing: EEXIST
 * STDOUT: mknod FIFO: ok, is fifo 1; directory type: EPERM, char device: EPERM, bad type: EINVAL
 * STDOUT: FIFO: reader got "through the fifo", O_WRONLY|O_NONBLOCK without reader: ENXIO
 * STDOUT: mknod regular: ok size 0, mkfifo again: EEXIST
 * STDOUT: truncate: ok size 10, grows to 8192 with zeros 1, directory: EISDIR, negative: EINVAL
 * STDOUT: ftruncate: ok size 3, read-only fd: EINVAL, pipe: EINVAL
 * STDOUT: chmod: ok mode 0604, fchmod: ok mode 0640, fchmodat: ok mode 0600
 * STDOUT: chown to own ids: ok, fchown -1/-1: ok, lchown on a link: ok
 * STDOUT: utimensat: ok mtime 1000000000.5 atime 2000000000.25, UTIME_OMIT keeps mtime 1
 * STDOUT: utimensat bad nsec: EINVAL, bad flags: EINVAL, futimesat: ok mtime 1234567890
 */
#include "namespace_calls.c"
