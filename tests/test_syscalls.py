"""The syscall layer: Linux numbers, arguments and errno values, seen from guest code."""
import json

from tests.guestbuild import build_asm, build_c, emu, native

# exit_group(-rax & 0xff): lets a guest report a syscall's (negated) result as its status.
EXIT_WITH_NEG_RAX = "neg %rax\nmov %rax, %rdi\nmov $231, %eax\nsyscall\n"
EXIT_WITH_RAX = "mov %rax, %rdi\nmov $231, %eax\nsyscall\n"


def asm(body: str):
    return build_asm(".globl _start\n_start:\n" + body)


def test_write_with_bad_pointer_is_efault():
    binary = asm("mov $1, %eax\nmov $1, %edi\nmov $0x10, %esi\nmov $5, %edx\nsyscall\n" + EXIT_WITH_NEG_RAX)
    assert emu("run", str(binary)).returncode == 14
    assert native(binary).returncode == 14


def test_write_with_kernel_pointer_is_efault():
    binary = asm("mov $1, %eax\nmov $1, %edi\nmovabs $0xffffffff81000000, %rsi\nmov $5, %edx\nsyscall\n"
                 + EXIT_WITH_NEG_RAX)
    assert emu("run", str(binary)).returncode == 14


def test_write_to_bad_fd_is_ebadf():
    binary = asm("mov $1, %eax\nmov $9, %edi\nlea _start(%rip), %rsi\nmov $1, %edx\nsyscall\n" + EXIT_WITH_NEG_RAX)
    assert emu("run", str(binary)).returncode == 9


def test_open_of_any_file_is_enoent():
    binary = asm("mov $2, %eax\nlea path(%rip), %rdi\nxor %esi, %esi\nsyscall\n" + EXIT_WITH_NEG_RAX
                 + '.data\npath: .asciz "/etc/passwd"\n')
    assert emu("run", str(binary)).returncode == 2


def test_unknown_syscall_is_enosys_with_one_warning():
    binary = asm("mov $400, %eax\nsyscall\nmov $400, %eax\nsyscall\n" + EXIT_WITH_NEG_RAX)
    result = emu("run", str(binary))
    assert result.returncode == 38
    assert result.stderr_lines == ["emu: unimplemented syscall 400, returning -ENOSYS"]


def test_mmap_munmap_then_access_faults():
    binary = asm("""
        mov $9, %eax; xor %edi, %edi; mov $8192, %esi; mov $3, %edx; mov $0x22, %r10d
        mov $-1, %r8; xor %r9d, %r9d; syscall
        mov %rax, %rbx
        movq $42, 4096(%rbx)          # touch the second page: demand-zero fault
        mov 4096(%rbx), %r12
        mov $11, %eax; mov %rbx, %rdi; mov $8192, %esi; syscall
        mov (%rbx), %rax               # unmapped now: SIGSEGV
    """)
    assert emu("run", str(binary)).returncode == 139
    assert native(binary).returncode == 139


def test_mprotect_read_only_then_write_faults():
    binary = asm("""
        mov $9, %eax; xor %edi, %edi; mov $4096, %esi; mov $3, %edx; mov $0x22, %r10d
        mov $-1, %r8; xor %r9d, %r9d; syscall
        mov %rax, %rbx
        movq $1, (%rbx)
        mov $10, %eax; mov %rbx, %rdi; mov $4096, %esi; mov $1, %edx; syscall
        mov (%rbx), %rcx               # still readable
        movq $2, (%rbx)                # SIGSEGV
    """)
    assert emu("run", str(binary)).returncode == 139


MREMAP_C = r"""
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
int main(void) {
    size_t small = 3 * 4096, big = 64 * 4096;
    /* Own the page after p, so growing in place is impossible and mremap must move. */
    char *p = mmap(0, small + 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS, -1, 0);
    char *blocker = mmap(p + small, 4096, PROT_READ, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
    for (size_t i = 0; i < small; i++) p[i] = (char)(i * 7);
    char *q = mremap(p, small, big, MREMAP_MAYMOVE);
    long sum = 0;
    for (size_t i = 0; i < small; i++) sum += (unsigned char)q[i];
    printf("moved=%d sum=%ld tail=%d\n", q != p, sum, q[big - 1]);
    char *fixed = mmap(q, 4096, PROT_READ|PROT_WRITE, MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED, -1, 0);
    printf("fixed-replace zeroed=%d same=%d\n", fixed[5] == 0, fixed == q);
    printf("blocker=%d\n", blocker == p + small);
    return 0;
}
"""


def test_mremap_moves_contents_and_map_fixed_replaces():
    binary = build_c(MREMAP_C)
    expected = native(binary)
    result = emu("run", str(binary))
    assert result.stdout == expected.stdout == b"moved=1 sum=1566720 tail=0\nfixed-replace zeroed=1 same=1\nblocker=1\n"
    assert result.returncode == expected.returncode == 0


BRK_C = r"""
#include <stdio.h>
#include <unistd.h>
int main(void) {
    char *start = sbrk(0);
    char *grown = sbrk(1 << 20);
    grown[(1 << 20) - 1] = 5;
    char *end = sbrk(0);
    sbrk(-(1 << 19));
    printf("grew=%ld shrunk=%ld last=%d\n", (long)(end - start), (long)((char*)sbrk(0) - start),
           grown[(1 << 19) - 1]);
    return 0;
}
"""


def test_brk_grows_and_shrinks_like_linux():
    binary = build_c(BRK_C)
    assert emu("run", str(binary)).stdout == native(binary).stdout


RANDOM_C = r"""
#include <stdio.h>
#include <sys/auxv.h>
#include <sys/random.h>
int main(void) {
    unsigned char buf[8]; getrandom(buf, sizeof buf, 0);
    const unsigned char *r = (const unsigned char *)getauxval(AT_RANDOM);
    for (int i = 0; i < 8; i++) printf("%02x", buf[i]);
    printf(" ");
    for (int i = 0; i < 16; i++) printf("%02x", r[i]);
    printf("\n");
    return 0;
}
"""


def test_getrandom_and_at_random_follow_seed():
    binary = build_c(RANDOM_C)
    first = emu("run", "--seed", "1", str(binary)).stdout
    again = emu("run", "--seed", "1", str(binary)).stdout
    other = emu("run", "--seed", "2", str(binary)).stdout
    assert first == again
    assert first != other
    assert len(first.split()[1]) == 32


CLOCK_C = r"""
#include <stdio.h>
#include <time.h>
#include <sys/time.h>
int main(void) {
    struct timespec a, b, s = {0, 5000000};
    clock_gettime(CLOCK_MONOTONIC, &a);
    nanosleep(&s, 0);
    clock_gettime(CLOCK_MONOTONIC, &b);
    long slept = (b.tv_sec - a.tv_sec) * 1000000000L + (b.tv_nsec - a.tv_nsec);
    struct timeval tv; gettimeofday(&tv, 0);
    printf("%d %d\n", slept >= 5000000, tv.tv_sec > 1700000000);
    return 0;
}
"""


def test_virtual_clocks_advance_with_sleep_and_are_deterministic():
    binary = build_c(CLOCK_C)
    result = emu("run", str(binary))
    assert result.stdout == b"1 1\n"
    assert native(binary).stdout == b"1 1\n"


def test_stats_json_and_determinism(tmp_path):
    binary = build_c(RANDOM_C)
    stats_a, stats_b = tmp_path / "a.json", tmp_path / "b.json"
    out_a = emu("run", "--stats", str(stats_a), str(binary))
    out_b = emu("run", "--stats", str(stats_b), str(binary))
    assert out_a.stdout == out_b.stdout
    a, b = json.loads(stats_a.read_text()), json.loads(stats_b.read_text())
    assert a == b
    for key in ("cycles", "instructions", "per_cpu", "context_switches", "ipis", "tlb_shootdowns",
                "tlb_flushes", "invlpgb", "nm_faults", "xstate_allocs", "xrstors_skipped", "vfree_ipis",
                "rseq_aborts", "signals"):
        assert key in a
    assert a["instructions"] > 1000
    assert a["per_cpu"][0]["instructions"] == a["instructions"]


def test_max_cycles_stops_an_infinite_loop():
    binary = asm("1: jmp 1b\n")
    result = emu("run", "--max-cycles", "100000", str(binary))
    assert result.returncode == 124
    assert result.stderr_lines == ["emu: cycle limit 100000 reached"]


def test_readlink_proc_self_exe_and_argv0():
    binary = build_c('#include <stdio.h>\n#include <unistd.h>\nint main(int c,char**v){char b[4096];'
                     'long n=readlink("/proc/self/exe",b,sizeof b);b[n>0?n:0]=0;printf("%s|%s\\n",v[0],b);return 0;}')
    result = emu("run", str(binary))
    assert result.stdout.decode().strip() == f"{binary}|{binary}"


def test_stdin_is_read():
    binary = build_c('#include <stdio.h>\nint main(void){char b[64];int t=0;while(fgets(b,sizeof b,stdin))t++;'
                     'printf("%d lines\\n",t);return 0;}')
    result = emu("run", str(binary), stdin=b"a\nb\nc\n")
    assert result.stdout == b"3 lines\n"
