/*
 * stdin_echo.c -- reading fd 0 to end of file, through stdio and read(2).
 *
 * Reads the first line with fgets, then the rest with read(2) in small
 * chunks (mixing the two: stdio's buffer may already hold more than the
 * first line, so that part is taken from stdio first), and prints each line
 * upper-cased and numbered, then line, byte and word counts and a
 * checksum; with stdin "hello world\nsecond line\n" the output ends with
 *   lines=2 bytes=24 words=4
 * then "stdin_echo: done"; exit status 0.  A second read after EOF must
 * return 0 again.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static char data[1 << 16];

int main(void)
{
    size_t n = 0;
    if (fgets(data, sizeof data, stdin))
        n = strlen(data);
    /* whatever stdio read ahead */
    int c;
    while (stdin->_IO_read_ptr < stdin->_IO_read_end && (c = getc(stdin)) != EOF)
        data[n++] = (char)c;
    for (;;) {
        ssize_t r = read(0, data + n, 7 < sizeof data - n ? 7 : sizeof data - n);
        if (r < 0) {
            puts("read error");
            return 1;
        }
        if (r == 0)
            break;
        n += (size_t)r;
    }
    ssize_t again = read(0, data + n, 1);
    printf("read after EOF: %zd\n", again);

    unsigned lines = 0, words = 0, inword = 0;
    unsigned long sum = 0;
    size_t start = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)data[i];
        sum = sum * 257 + ch;
        if (isspace(ch)) {
            inword = 0;
        } else if (!inword) {
            inword = 1;
            words++;
        }
        if (ch == '\n' || i + 1 == n) {
            size_t end = ch == '\n' ? i : i + 1;
            printf("%3u: ", ++lines);
            for (size_t j = start; j < end; j++)
                putchar(toupper((unsigned char)data[j]));
            putchar('\n');
            start = i + 1;
        }
    }
    printf("lines=%u bytes=%zu words=%u\n", lines, n, words);
    printf("checksum=%lx\n", sum);
    puts("stdin_echo: done");
    return 0;
}
