# busybox's file tools on a writable root and on /tmp: mkdir -p, touch,
# ln -s, ln, mv, cp, chmod, rm -r, rmdir, mkfifo with a reader and a writer,
# stat of the results, and a background job killed and waited for. Native reference: in an empty folder owned by uid 1000,
#   env -i setpriv --reuid 1000 --regid 1000 --clear-groups busybox sh -c "$(cat busybox_files.sh)"
# FS-RW: -
# REQUIRES: busybox
# CPUS: 1 2
# STDOUT: tree: a a/b a/b/c a/b/c/file
# STDOUT: link: file-contents
# STDOUT: hard links: 2
# STDOUT: moved: file-contents
# STDOUT: mode: 640
# STDOUT: fifo: through a fifo
# STDOUT: removed: yes
# STDOUT: tmp: in tmp
# STDOUT: job killed: 1
mkdir -p a/b/c
echo file-contents > a/b/c/file
echo "tree: $(find a | sort | tr '\n' ' ' | sed 's/ $//')"
ln -s b/c/file a/link
echo "link: $(cat a/link)"
ln a/b/c/file a/hard
echo "hard links: $(stat -c %h a/hard)"
mv a/hard a/moved
echo "moved: $(cat a/moved)"
chmod 640 a/moved
echo "mode: $(stat -c %a a/moved)"
mkfifo a/fifo
(echo "through a fifo" > a/fifo) &
echo "fifo: $(cat a/fifo)"
wait
rm -r a
test -e a || echo "removed: yes"
mkdir -p /tmp/work && echo "in tmp" > /tmp/work/f && cp /tmp/work/f /tmp/work/g && echo "tmp: $(cat /tmp/work/g)"
rm -r /tmp/work
sleep 100 &
kill $!
wait $! 2>/dev/null
echo "job killed: $(( $? > 128 ))"
