"""AMX first use through XFD under every ``xstate_alloc=`` policy: one #NM per
AMX task, no large buffer for tasks that never use AMX, vfree purge IPIs
(mm/vmalloc.c's lazy purge) for vmalloc and none for the cache, SIGILL
without permission, SIGSEGV when vmalloc space runs out, the sigaltstack
size rules, bad boot parameters, determinism."""
import json

import pytest

from tests.guestbuild import REPO, build, emu

AMX_DIR = REPO / "guest" / "tests" / "amx"
FLAGS = ["-static", "-O2", "-pthread", "-mamx-tile", "-mamx-int8", "-mxsave"]
POLICIES = ["vmalloc", "vmalloc_cache", "separate", "eager", "pages_percpu"]
# xstate_alloc=vmalloc's fpstate on this machine: x87, SSE, PASID, XTILECFG,
# XTILEDATA compacted = 8896 bytes -> 3 pages + the guard page of vmalloc range.
VA_PAGES_PER_AMX_BUFFER = 4


def binary(name):
    return build((AMX_DIR / name).read_text(), ".c", FLAGS)


def run_stats(tmp_path, *args, cpus=4):
    stats_path = tmp_path / "stats.json"
    result = emu("run", "--cpus", str(cpus), "--stats", str(stats_path), *args)
    stats = json.loads(stats_path.read_text()) if stats_path.exists() else None
    return result, stats


def churn(tmp_path, policy, *guest_args, cmdline="", cpus=4):
    return run_stats(tmp_path, "--cmdline", f"xstate_alloc={policy} {cmdline}", str(binary("amx_churn.c")),
                     *guest_args, cpus=cpus)


def expected_purges(frees, lazy_max):
    """Purge whenever the lazily freed range exceeds lazy_max pages (vfree -> purge_vmap_area_lazy)."""
    purges, lazy = 0, 0
    for _ in range(frees):
        lazy += VA_PAGES_PER_AMX_BUFFER
        if lazy > lazy_max:
            purges, lazy = purges + 1, 0
    return purges


@pytest.mark.parametrize("policy", POLICIES)
def test_amx_thread_churn_under_each_policy(tmp_path, policy):
    result, stats = churn(tmp_path, policy, "32", "4", cmdline="lazy_max_pages=32")
    assert result.returncode == 0, result.stderr
    assert result.stdout == b"churn ok: 32 threads, 32 amx, 0 plain\n"
    assert stats["xstate_alloc"] == policy
    if policy == "eager":
        # Every task -- main and the 32 threads -- got the full buffer up front; no #NM.
        assert stats["nm_faults"] == 0 and stats["xstate_allocs"] == 33
    else:
        assert stats["nm_faults"] == 32 and stats["xstate_allocs"] == 32
    if policy in ("vmalloc", "separate"):
        purges = expected_purges(32, 32)
        assert purges == 3
        assert stats["vmalloc_frees"] == 32 and stats["vmalloc_lazy_pages"] == 32 * VA_PAGES_PER_AMX_BUFFER
        assert stats["vmalloc_purges"] == purges and stats["vfree_ipis"] == 3 * purges
        assert stats["vmalloc_purge_cycles"] > 0
    else:
        assert stats["vmalloc_purges"] == 0 and stats["vfree_ipis"] == 0 and stats["vmalloc_frees"] == 0
    if policy == "vmalloc_cache":
        # At most one buffer per concurrently live AMX thread comes from vmalloc; the rest are reused.
        assert stats["vmalloc_allocs"] <= 4
        assert stats["vmalloc_allocs"] + stats["xstate_cache_hits"] == 32
    if policy == "pages_percpu":
        assert stats["vmalloc_allocs"] == 4            # the per-CPU areas, at boot
    if policy == "eager":
        assert stats["vmalloc_allocs"] == 0


def test_vfree_ipis_follow_linux_lazy_max_pages_by_default(tmp_path):
    # lazy_max_pages on 4 CPUs is fls(4) * 32 MiB = 24576 pages: 64 exits free 256: no purge.
    result, stats = churn(tmp_path, "vmalloc", "64", "4")
    assert result.returncode == 0, result.stderr
    assert stats["vmalloc_frees"] == 64 and stats["vmalloc_purges"] == 0 and stats["vfree_ipis"] == 0


def test_a_small_vmalloc_area_purges_on_allocation_pressure(tmp_path):
    # Room for two AMX buffers: the third first use finds the space held by
    # lazily freed ranges and purges them (alloc_vmap_area's overflow path).
    result, stats = churn(tmp_path, "vmalloc", "16", "2", cmdline="vmalloc=32K", cpus=2)
    assert result.returncode == 0, result.stderr
    assert stats["vmalloc_failures"] == 0
    assert stats["vmalloc_purges"] >= 7 and stats["vfree_ipis"] == stats["vmalloc_purges"]


@pytest.mark.parametrize("policy", POLICIES)
def test_tasks_that_never_use_amx_get_no_large_buffer(tmp_path, policy):
    # Threads 0, 2, 4, ... stay plain; 1, 3, 5, ... use AMX once.
    result, stats = churn(tmp_path, policy, "12", "4", "2")
    assert result.stdout == b"churn ok: 12 threads, 6 amx, 6 plain\n", result.stderr
    if policy == "eager":
        assert stats["nm_faults"] == 0 and stats["xstate_allocs"] == 13
    else:
        assert stats["nm_faults"] == 6 and stats["xstate_allocs"] == 6
    result, stats = churn(tmp_path, policy, "8", "4", "1")
    assert result.stdout == b"churn ok: 8 threads, 0 amx, 8 plain\n", result.stderr
    if policy == "eager":
        assert stats["xstate_allocs"] == 9 and stats["xstate_buffer_bytes_peak"] > 0
    else:
        assert stats["nm_faults"] == 0 and stats["xstate_allocs"] == 0 and stats["xstate_buffer_bytes_peak"] == 0
        assert stats["vmalloc_allocs"] == (4 if policy == "pages_percpu" else 0)


@pytest.mark.parametrize("policy", POLICIES)
def test_live_tiles_switched_out_and_back_take_one_nm_per_task(tmp_path, policy):
    result, stats = churn(tmp_path, policy, "8", "4", "0", "6", cpus=2)
    assert result.stdout == b"churn ok: 8 threads, 8 amx, 0 plain\n", result.stderr
    assert stats["nm_faults"] == (0 if policy == "eager" else 8)
    assert stats["context_switches"] > 8 * 6
    # The second yield saves tiles unmodified since their XRSTORS from the
    # same address: XSAVES skips them -- also from the shared per-CPU area.
    assert stats["xsave_unmodified_skipped"] > 0
    if policy == "pages_percpu":
        assert stats["xstate_copy_bytes"] > 0
    else:
        assert stats["xstate_copy_bytes"] == 0
    if policy == "separate":
        assert stats["xsaves"] > 2 * stats["context_switches"] * 0.9   # two XSAVES per AMX task switch-out


def test_churn_statistics_are_deterministic(tmp_path):
    first, first_stats = churn(tmp_path, "vmalloc", "24", "4", "3", "2", cmdline="lazy_max_pages=16")
    second, second_stats = churn(tmp_path, "vmalloc", "24", "4", "3", "2", cmdline="lazy_max_pages=16")
    assert first.returncode == 0 and first.stdout == second.stdout
    assert first_stats["vfree_ipis"] > 0
    assert first_stats == second_stats


@pytest.mark.parametrize("policy", ["vmalloc", "eager", "pages_percpu"])
def test_without_permission_the_first_tile_instruction_is_sigill(tmp_path, policy):
    tile_dot = build((AMX_DIR / "tile_dot.c").read_text(), ".c", FLAGS)
    stats_path = tmp_path / "s.json"
    result = emu("run", "--cmdline", f"xstate_alloc={policy}", "--stats", str(stats_path), str(tile_dot), "0",
                 "noperm", stdin=bytes(3072))
    assert result.returncode == 132
    assert len(result.stderr_lines) == 1
    assert result.stderr_lines[0].startswith("emu: guest killed by SIGILL at rip 0x")
    stats = json.loads(stats_path.read_text())
    assert stats["nm_faults"] == 1 and stats["xstate_allocs"] == (1 if policy == "eager" else 0)


@pytest.mark.parametrize("policy", ["vmalloc", "separate", "vmalloc_cache"])
def test_vmalloc_exhaustion_at_first_use_is_sigsegv(tmp_path, policy):
    # 12 KiB of vmalloc range cannot hold a 3-page buffer and its guard page.
    result, stats = run_stats(tmp_path, "--cmdline", f"xstate_alloc={policy} vmalloc=12K",
                              str(binary("xinuse.c")), cpus=1)
    assert result.returncode == 139
    assert len(result.stderr_lines) == 1
    assert result.stderr_lines[0].startswith("emu: guest killed by SIGSEGV at rip 0x")
    assert stats["nm_faults"] == 1 and stats["xstate_allocs"] == 0 and stats["vmalloc_failures"] == 1


def test_pages_percpu_needs_room_for_its_per_cpu_areas():
    result = emu("run", "--cpus", "2", "--cmdline", "xstate_alloc=pages_percpu vmalloc=16K",
                 str(binary("xinuse.c")))
    assert result.returncode == 2
    assert result.stderr_lines == ["emu: --cmdline: vmalloc area too small for the per-CPU xstate areas"]


def test_sigaltstack_size_rules_with_amx_permitted():
    result = emu("run", "--cpus", "2", str(binary("altstack_perm.c")))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        "small altstack before permission: 0",
        "permission with small altstack: ENOSPC",
        "permission with a thread's small altstack: ENOSPC",
        "permission: 0 perm 0x60003",
        "small altstack after permission: ENOMEM",
        "AT_MINSIGSTKSZ altstack: 0",
        "signal on altstack: 1, handler tiles init: 1, tiles intact: 1",
        "thread sees perm 0x60003, tiles: 1",
    ]


def test_at_minsigstksz_is_linux_max_frame_size():
    from emu_x86.kernel import fpu
    from emu_x86.kernel.kernel import Kernel, KernelConfig
    from emu_x86.emu.machine import Machine
    from emu_x86.emu.isa import xstate
    from emu_x86.emu.isa.state import XFEATURE_MASK_SSE, XFEATURE_MASK_X87, XFEATURE_MASK_XTILE
    kernel = Kernel(Machine(cpus=1, memory_bytes=16 << 20), KernelConfig(argv=["x"], envp=[]))
    # signal.c init_sigframe_size: rt_sigframe (440) + 15 + the largest standard
    # xstate (tiles end at 2816 + 8192) + MAGIC2 (4) + 63, rounded up to 16.
    largest = xstate.standard_size(XFEATURE_MASK_X87 | XFEATURE_MASK_SSE | XFEATURE_MASK_XTILE)
    assert largest == 2816 + 8192
    assert fpu.get_sigframe_size(kernel.fpu_config) == (440 + 15 + largest + 4 + 63 + 15) // 16 * 16
    assert kernel.minsigstksz(None) == fpu.get_sigframe_size(kernel.fpu_config)


@pytest.mark.parametrize("cmdline,message", [
    ("xstate_alloc=bogus", "xstate_alloc=bogus: unknown value (one of: vmalloc, vmalloc_cache, separate, eager, "
                           "pages_percpu)"),
    ("vmalloc=12Q", "vmalloc=12Q: not a size (a number with an optional K, M, G or T)"),
    ("vmalloc=64T", "vmalloc=64T: larger than the 32T vmalloc range"),
    ("lazy_max_pages=-1", "lazy_max_pages=-1: must not be negative"),
    ("xstate_cache=many", "xstate_cache=many: not an integer"),
    ("strict_sas_size=maybe", "strict_sas_size=maybe: not a boolean (use 1/0, y/n, on/off)"),
    ("sched_quantum=fast", "sched_quantum=fast: not an integer"),
    ("nr_dyn_asids=300", "nr_dyn_asids=300: not a valid value (1 to 256)"),
    ("sysctl.vm.overcommit_memory=7", "sysctl.vm.overcommit_memory=7: not a valid value (0 to 2)"),
    ("cpu_opv=maybe", "cpu_opv=maybe: unknown value (one of: on, off)"),
])
def test_bad_boot_parameter_values_are_one_line_usage_errors(cmdline, message):
    result = emu("run", "--cmdline", cmdline, str(REPO / "guest" / "examples" / "hello.S"))
    assert result.returncode == 2
    assert result.stderr_lines == [f"emu: --cmdline: {message}"]


def test_sigaltstack_size_valid_follows_permission_and_strict_sas_size():
    from types import SimpleNamespace

    from emu_x86.emu.machine import Machine
    from emu_x86.kernel import fpu
    from emu_x86.kernel.errno import EINVAL, SyscallError
    from emu_x86.kernel.kernel import Kernel, KernelConfig

    def kernel_with(cmdline):
        return Kernel(Machine(cpus=1, memory_bytes=16 << 20), KernelConfig(argv=["x"], envp=[], cmdline=cmdline))
    relaxed, strict = kernel_with({}), kernel_with({"strict_sas_size": "1"})
    config = relaxed.fpu_config
    frame_without_xstate = fpu.get_sigframe_size(config) - fpu.fpstate_sigframe_bytes(config)
    process = SimpleNamespace(fpu_permission=fpu.new_process_permission(config), tasks=[])
    # The default permission already holds XTILECFG (only XTILEDATA is dynamic),
    # whose standard-format slot ends at 2752 + 64.
    assert process.fpu_permission.user_state_size_bytes == 2752 + 64
    legacy_needed = frame_without_xstate + 2752 + 64
    # Without the AMX permission only strict_sas_size checks the frame.
    assert fpu.sigaltstack_size_valid(relaxed, process, legacy_needed)
    assert not fpu.sigaltstack_size_valid(strict, process, legacy_needed)
    assert fpu.sigaltstack_size_valid(strict, process, legacy_needed + 1)
    assert fpu.xstate_request_perm(relaxed, process, 18) == (1 << 17) | (1 << 18)
    assert fpu.xstate_request_perm(relaxed, process, 18) == 0     # already permitted
    amx_needed = frame_without_xstate + 2816 + 8192
    assert not fpu.sigaltstack_size_valid(relaxed, process, amx_needed)
    assert fpu.sigaltstack_size_valid(relaxed, process, amx_needed + 1)
    with pytest.raises(SyscallError) as error:
        fpu.xstate_request_perm(relaxed, process, 19)
    assert error.value.errno == EINVAL
