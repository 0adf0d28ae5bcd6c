# busybox sh: a pipeline, redirections to a file and reading it back, $(...)
# substitutions, and another static program run through execve. The run's
# root is a fresh writable folder holding bin/echo_args (built from
# helpers/echo_args.c); the guest starts in it, as the native reference did:
#   cd ROOT && env -i busybox sh -c "$(cat busybox_shell.sh)" busybox_shell.sh
# (on Linux busybox runs cat and wc by execve of /proc/self/exe).
# FS-RW: -
# INSTALL: helpers/echo_args.c /bin/echo_args
# CPUS: 1 2
# STDOUT: 1000
# STDOUT: 999
# STDOUT: 998
# STDOUT: written by busybox
# STDOUT: second line
# STDOUT: lines: 10, words: 3
# STDOUT: echo_args: 2 args: [one] [two words] GREETING=hi
# STDOUT: echo_args exit status: 3
seq 1 1000 | sort -n -r | head -3
echo "written by busybox" > out.txt
echo "second line" >> out.txt
cat out.txt
n=$(seq 1 10 | wc -l)
echo "lines: $n, words: $(echo a b c | wc -w)"
GREETING=hi bin/echo_args one "two words"
echo "echo_args exit status: $?"
