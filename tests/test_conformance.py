"""The selftest oracle's own logic (conformance/): the catalog's argument sets,
classifying exit statuses, pulling the evidence out of a failing run, and the
report with hand-written reasons. Hermetic: no download, no emu run."""
from __future__ import annotations

from conformance import catalog, execute, report


def test_catalog_covers_the_listed_suites_with_their_run_scripts_argument_sets():
    cases = catalog.all_cases()
    names = {case.name for case in cases}
    for expected in ("rseq/basic_test", "rseq/basic_percpu_ops_test", "rseq/basic_percpu_ops_mm_cid_test",
                     "rseq/param_test", "rseq/param_test_mm_cid", "membarrier/membarrier_test_single_thread",
                     "membarrier/membarrier_test_multi_thread", "futex/futex_requeue_pi", "futex/futex_waitv",
                     "x86/amx_64", "x86/sigreturn_64", "x86/test_mremap_vdso_64"):
        assert expected in names
    param = [case for case in cases if case.name == "rseq/param_test"]
    labels = [case.label for case in param]
    # run_param_test.sh's eight TEST_LIST sets, each with -r and 6 x NR_CPUS threads
    assert labels[:8] == [f"-T {t} -r 100 -t 6×NR_CPUS" for t in ("s", "l", "b", "b -M", "m", "m -M", "i", "r")]
    assert param[0].argv(4) == ["-T", "s", "-r", "100", "-t", "24"]
    # futex/functional/run.sh's 20 requeue_pi lines less its two duplicates
    assert sum(case.name == "futex/futex_requeue_pi" for case in cases) == 18
    keys = [f"{case.name} {case.label}" for case in cases]
    assert len(keys) == len(set(keys))


def test_tests_missing_from_the_tree_are_dropped_and_named():
    available = {f"x86/{name}.c" for name in catalog.X86_TESTS if name != "xstate"}
    assert "x86/xstate_64" not in {case.name for case in catalog.all_cases(available)}
    assert catalog.missing_tests(available) == ["x86/xstate"]
    assert {case.name for case in catalog.select(catalog.all_cases(available), ["membarrier"])} == {
        "membarrier/membarrier_test_single_thread", "membarrier/membarrier_test_multi_thread"}


def test_exit_statuses_are_classified_as_kselftest_and_emu_mean_them():
    assert execute.classify(0, False, True, False) == "pass"
    assert execute.classify(4, False, True, False) == "skip"
    assert execute.classify(125, False, True, False) == "timeout"          # emu --timeout
    assert execute.classify(70, False, True, False) == "emu-error"
    assert execute.classify(254, False, True, False) == "fail"             # futex's RET_ERROR (-2)
    assert execute.classify(139, False, True, True) == "signal"
    assert execute.classify(137, True, False, True) == "timeout"


def test_evidence_names_unimplemented_syscalls_and_the_first_real_failure():
    stdout = ("ok 2 sys membarrier invalid command test: errno = 22. Failed as expected\n"
              "not ok 3 futex_requeue simple returned: 38\n")
    stderr = ("emu: unimplemented syscall 449, returning -ENOSYS\nemu: unimplemented syscall 29, returning -ENOSYS\n"
              "emu: unimplemented syscall 449, returning -ENOSYS\n"
              "t-basic_test-0123456789abcdef: /root/.cache/x/linux-source-6.12/tools/a.h:5: f: Assertion 'x' failed.\n")
    unimplemented, first, tail = execute.evidence(stdout, stderr)
    assert unimplemented == [449, 29]
    assert first == "not ok 3 futex_requeue simple returned: 38"
    assert tail[-1] == "basic_test: linux/tools/a.h:5: f: Assertion 'x' failed."


def _entry(test, args, native, emu_runs):
    return {"test": test, "args": args, "note": "", "date": "2026-12-07",
            "native_uid1000": execute.Run(*native).to_json(),
            "emu": {cpus: execute.Run(*run).to_json() for cpus, run in emu_runs.items()}}


def test_report_counts_over_natively_passing_runs_and_merges_reasons():
    results = {
        "futex/a": _entry("futex/a", "", ("pass", 0), {"1": ("pass", 0), "4": ("fail", 1, 1.0, [449])}),
        "futex/b -x": _entry("futex/b", "-x", ("skip", 4), {"1": ("skip", 4)}),
        "x86/c": _entry("x86/c", "", ("fail", 1), {"1": ("fail", 1)}),           # fails natively: not counted
    }
    assert report.summary(results)[:2] == (2, 3)
    reasons = {"futex/a": "futex_waitv (449) is not implemented"}
    text = report.render(results, reasons, {"linux": "6.12.118", "date": "2026-12-07"})
    assert "**2 of 3 emu runs pass (66.7%)**" in text
    assert "| futex/a |  | pass (0) | — | pass (0) | **fail** (1) |" in text
    assert "Reason: futex_waitv (449) is not implemented" in text
    assert "449 (futex_waitv)" in text
    assert "### x86/c" in text and "Reason: _not written yet_" in text
    assert report.reason_for({"futex/b -x": "specific", "futex/b": "general"}, "futex/b", "-x") == "specific"
