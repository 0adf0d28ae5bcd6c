/* Not a test itself: a small static program the busybox test installs as
 * /bin/echo_args in its root and runs through execve. Prints its arguments
 * and its parent-given environment variable GREETING. */
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char **argv)
{
	const char *greeting = getenv("GREETING");
	printf("echo_args: %d args:", argc - 1);
	for (int i = 1; i < argc; i++)
		printf(" [%s]", argv[i]);
	printf(" GREETING=%s\n", greeting ? greeting : "(unset)");
	return 3;
}
