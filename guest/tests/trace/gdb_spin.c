/* For the gdb Ctrl-C test: spins until a debugger sets `go`, then exits
 * with the number of loop rounds modulo 2 plus 5 (so 5 or 6).
 * Build: gcc -static -O1 -g */
volatile int go;
volatile unsigned long rounds;

int main(void)
{
    while (!go)
        rounds++;
    return 5 + (int)(rounds & 1);
}
