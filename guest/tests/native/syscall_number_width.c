/*
 * syscall_number_width.c -- do_syscall_64 takes the number as an int: the upper
 * half of RAX is ignored, x32 numbers (bit 30) and numbers outside the table
 * are -ENOSYS.
 * Expected output: the same as on Linux; exit status 0.
 */
#include <stdio.h>
#include <unistd.h>
#include <errno.h>
#include <string.h>
static long raw(unsigned long nr, long a) { long r; __asm__ volatile("syscall" : "=a"(r) : "a"(nr), "D"(a) : "rcx","r11","memory"); return r; }
int main(void) {
    printf("getpid with upper bits: %d\n", raw((1UL << 32) | 39, 0) == getpid());
    printf("x32 bit: %ld\n", raw(0x40000000UL | 39, 0));
    printf("negative: %ld\n", raw(0xffffffffUL, 0));
    printf("past the table: %ld\n", raw(1000, 0));
    return 0;
}
