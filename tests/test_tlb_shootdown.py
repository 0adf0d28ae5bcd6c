"""The kernel's TLB protocol (emu_x86/kernel/mm/tlb.py, after arch/x86/mm/tlb.c) on real guests:
shootdowns keep every CPU coherent under each lazy-TLB scheme and flush transport,
a disabled remote flush is caught by the same check, INVLPGB replaces IPIs, and the
ASID/tlb_gen bookkeeping picks no-flush CR3 loads when it may."""
import json

import pytest

from emu_x86.emu.machine import Machine
from emu_x86.kernel.kernel import Kernel, KernelConfig
from emu_x86.kernel.mm.mm import MmStruct
from emu_x86.kernel.mm.tlb import CR3_NOFLUSH, kern_pcid
from tests.guestbuild import REPO, build_c, emu, native

MAP_FIXED_GENERATION = REPO / "guest" / "tests" / "tlb" / "map_fixed_generation.c"


def generation_binary():
    return build_c(MAP_FIXED_GENERATION.read_text(), "-pthread", "-O2")


def run_generation(tmp_path, cpus, cmdline, generations=40, profile="zen4"):
    stats_path = tmp_path / "stats.json"
    result = emu("run", "--profile", profile, "--cpus", str(cpus), "--cmdline", cmdline,
                 "--stats", str(stats_path), str(generation_binary()), str(cpus - 1), str(generations))
    return result, json.loads(stats_path.read_text())


def test_generation_guest_passes_natively():
    result = native(generation_binary(), "3", "200")
    assert result.returncode == 0 and result.stdout == b"ok readers=3 generations=200\n"


@pytest.mark.parametrize("cpus", [2, 4, 8])
@pytest.mark.parametrize("transport", ["ipi", "invlpgb"])
@pytest.mark.parametrize("lazy", ["refcount", "shootdown", "hazard"])
def test_no_reader_ever_sees_a_replaced_page(tmp_path, cpus, transport, lazy):
    result, stats = run_generation(tmp_path, cpus, f"tlb_flush={transport} lazy_tlb={lazy}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == f"ok readers={cpus - 1} generations=40\n".encode()
    assert stats["tlb_shootdowns"] >= 39
    if transport == "invlpgb" and cpus > 3:
        assert stats["invlpgb"] > 0 and stats["global_asids"] == 1
    else:
        assert stats["invlpgb"] == 0


@pytest.mark.parametrize("cpus", [2, 4])
def test_skipping_the_remote_flush_makes_the_stale_read_visible(tmp_path, cpus):
    """The check above can fail: without remote shootdowns a reader reads the freed frame."""
    result, stats = run_generation(tmp_path, cpus, "tlb_remote_flush=off")
    assert result.returncode == 1
    assert result.stdout.startswith(b"stale: read ")
    assert stats["tlb_flush_ipis"] == 0


def test_invlpgb_steady_state_sends_no_flush_ipis_while_ipi_mode_grows_with_cpus(tmp_path):
    """IPIs under tlb_flush=invlpgb come only from the move to the global ASID:
    doubling the work adds none. Under tlb_flush=ipi they grow with the CPUs."""
    ipis = {}
    for generations in (30, 60):
        _, stats = run_generation(tmp_path, 4, "tlb_flush=invlpgb", generations)
        ipis[generations] = stats["tlb_flush_ipis"]
        assert stats["global_asid_transitions"] == 4     # every CPU running the mm moves over
    assert ipis[30] == ipis[60] <= 2 * 4
    per_cpu_count = {}
    for cpus in (2, 4, 8):
        _, stats = run_generation(tmp_path, cpus, "tlb_flush=ipi")
        per_cpu_count[cpus] = stats["tlb_flush_ipis"]
    assert per_cpu_count[2] < per_cpu_count[4] < per_cpu_count[8]
    assert per_cpu_count[8] >= 7 * 39      # every replacement reaches the 7 readers' CPUs


def test_invlpgb_needs_a_cpu_that_has_it():
    result = emu("run", "--profile", "spr", "--cmdline", "tlb_flush=invlpgb",
                 str(REPO / "guest" / "examples" / "hello.S"))
    assert result.returncode == 2
    assert len(result.stderr_lines) == 1 and "INVLPGB" in result.stderr_lines[0]


def test_percpu_pgd_copies_and_faults_in_top_level_entries(tmp_path):
    result, stats = run_generation(tmp_path, 4, "percpu_pgd=on")
    assert result.returncode == 0, result.stderr
    assert stats["percpu_pgd_copies"] >= 4          # one per (CPU, ASID) that ran the mm
    assert stats["percpu_pgd_faults"] >= stats["percpu_pgd_copies"]
    _, shared = run_generation(tmp_path, 4, "percpu_pgd=off")
    assert shared["percpu_pgd_copies"] == shared["percpu_pgd_faults"] == 0
    assert stats["page_faults"] > shared["page_faults"]


def test_lazy_refcount_pays_atomics_that_the_other_schemes_do_not(tmp_path):
    counts = {}
    for lazy in ("refcount", "shootdown", "hazard"):
        _, stats = run_generation(tmp_path, 4, f"lazy_tlb={lazy}")
        counts[lazy] = stats["mm_refcount_atomics"]
    assert counts["refcount"] > 0
    assert counts["shootdown"] == counts["hazard"] == 0


# ---- the ASID bookkeeping, through the kernel's API --------------------------------


def kernel_with(cmdline="", cpus=1):
    machine = Machine(cpus=cpus, memory_bytes=64 << 20)
    return Kernel(machine, KernelConfig(argv=["x"], envp=[], cmdline=cmdline))


def test_switching_back_to_a_cached_asid_loads_cr3_without_flush():
    kernel = kernel_with({})
    vcpu = kernel.machine.vcpus[0]
    tlb = kernel.tlb
    first, second = MmStruct(kernel.frames), MmStruct(kernel.frames)
    tlb.switch_mm_irqs_off(vcpu, first)
    first_pcid = vcpu.pcid
    tlb.switch_mm_irqs_off(vcpu, second)
    assert vcpu.pcid != first_pcid
    flushes = vcpu.tlb_flush_counts.get("cr3", 0)
    tlb.switch_mm_irqs_off(vcpu, first)
    assert vcpu.pcid == first_pcid
    assert vcpu.tlb_flush_counts.get("cr3", 0) == flushes, "slot still current: no flush"
    assert vcpu.tlb_flush_counts["cr3_noflush"] >= 1
    # A flush that skipped this CPU (it was not running ``second``) leaves that
    # slot behind: switching back flushes it.
    second.tlb_gen += 1
    tlb.switch_mm_irqs_off(vcpu, second)
    assert vcpu.tlb_flush_counts["cr3"] == flushes + 1


def test_more_mms_than_dynamic_asids_recycle_slots_round_robin():
    kernel = kernel_with({"nr_dyn_asids": "3"})
    vcpu = kernel.machine.vcpus[0]
    mms = [MmStruct(kernel.frames) for _ in range(4)]
    pcids = []
    for mm in mms:
        kernel.tlb.switch_mm_irqs_off(vcpu, mm)
        pcids.append(vcpu.pcid)
    # init_mm holds ASID 0 from boot; the next ASIDs are 1, 2, then 0 again.
    assert pcids == [kern_pcid(1), kern_pcid(2), kern_pcid(0), kern_pcid(1)]
    flushes = vcpu.tlb_flush_counts["cr3"]
    kernel.tlb.switch_mm_irqs_off(vcpu, mms[0])     # its slot was recycled: a new one, flushed
    assert vcpu.tlb_flush_counts["cr3"] == flushes + 1


def test_nopcid_flushes_on_every_switch():
    kernel = kernel_with({"nopcid": "on"})
    vcpu = kernel.machine.vcpus[0]
    first, second = MmStruct(kernel.frames), MmStruct(kernel.frames)
    for mm in (first, second, first, second):
        kernel.tlb.switch_mm_irqs_off(vcpu, mm)
    assert vcpu.pcid == 0 and not vcpu.cr4_pcide
    assert vcpu.tlb_flush_counts.get("cr3_noflush", 0) == 0
    assert vcpu.cr3 & CR3_NOFLUSH == 0


@pytest.mark.parametrize("bad", ["lazy_tlb=lazy", "nr_dyn_asids=0", "tlb_flush=carrier-pigeon", "bogus=1"])
def test_bad_tlb_parameters_are_one_line_usage_errors(bad):
    result = emu("run", "--cmdline", bad, str(REPO / "guest" / "examples" / "hello.S"))
    assert result.returncode == 2 and len(result.stderr_lines) == 1
    assert result.stderr_lines[0].startswith("emu: --cmdline: ")


def test_munmap_workload_sends_no_more_tlb_ipis_under_invlpgb_as_work_grows(tmp_path):
    """guest/workloads/munmap_threads.c (will-it-scale tlb_flush2-like): under
    tlb_flush=invlpgb the flush IPIs are only those before and during the move
    to the global ASID -- twice the munmaps add none; under ipi they grow with CPUs."""
    binary = build_c((REPO / "guest" / "workloads" / "munmap_threads.c").read_text(), "-pthread", "-O2")

    def stats(cpus, cmdline, rounds):
        path = tmp_path / f"{cpus}-{rounds}-{cmdline}.json"
        result = emu("run", "--profile", "zen4", "--cpus", str(cpus), "--cmdline", cmdline,
                     "--stats", str(path), str(binary), "0", str(rounds))
        assert result.returncode == 0, result.stderr
        return json.loads(path.read_text())

    short, long = stats(8, "tlb_flush=invlpgb", 10), stats(8, "tlb_flush=invlpgb", 20)
    assert long["tlb_shootdowns"] > short["tlb_shootdowns"] + 50
    assert long["tlb_flush_ipis"] == short["tlb_flush_ipis"]
    assert long["invlpgb"] > short["invlpgb"]
    ipi_mode = [stats(cpus, "tlb_flush=ipi", 10)["tlb_flush_ipis"] for cpus in (2, 4, 8)]
    assert ipi_mode[0] < ipi_mode[1] < ipi_mode[2]
