/* sendfile(2) takes its input only from a file with splice_read: a pipe or
 * FIFO as in_fd is EINVAL (do_splice_direct), so busybox cat falls back to
 * read/write -- the regression: a sendfile from a FIFO into a pipe woke its
 * own wait queue until the emulator's stack ran out. Checked natively.
 * STDOUT: pipe -> pipe: EINVAL
 * STDOUT: /dev/zero -> pipe: 5
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/sendfile.h>
#include <unistd.h>

int main(void) {
    int a[2], b[2];
    pipe(a);
    pipe(b);
    write(a[1], "hello", 5);
    ssize_t n = sendfile(b[1], a[0], 0, 5);
    printf("pipe -> pipe: %s\n", n < 0 ? (errno == EINVAL ? "EINVAL" : strerror(errno)) : "accepted");
    int zero = open("/dev/zero", O_RDONLY);
    printf("/dev/zero -> pipe: %zd\n", sendfile(b[1], zero, 0, 5));
    return 0;
}
