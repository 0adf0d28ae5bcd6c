/*
 * exitcode.c -- process exit: atexit handlers, stdio flush at exit, and the
 * exit status truncated to 8 bits.
 *
 * Prints three lines through buffered stdout, registers three atexit
 * handlers and calls exit(298).  Expected stdout:
 *   exitcode: start
 *   exitcode: argc=<argc>
 *   exitcode: calling exit(298)
 *   atexit 3
 *   atexit 2
 *   atexit 1
 * and exit status 42 (298 & 0xff).
 */
#include <stdio.h>
#include <stdlib.h>

static void h1(void) { puts("atexit 1"); }
static void h2(void) { puts("atexit 2"); }
static void h3(void) { puts("atexit 3"); }

int main(int argc, char **argv)
{
    (void)argv;
    puts("exitcode: start");
    printf("exitcode: argc=%d\n", argc);
    atexit(h1);
    atexit(h2);
    atexit(h3);
    puts("exitcode: calling exit(298)");
    exit(298);
}
