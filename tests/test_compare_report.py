"""emu_x86/emucli/compare_report.py: make compare's markdown report from emu_x86.emu compare's JSON."""
from __future__ import annotations

import json

from emu_x86.emucli import compare_report


def _document(profile=None):
    stats = {"cycles": 1000, "ipis": 6, "invlpgb": 0, "syscall_counts": {"11": 4}, "tlb_flush_ipis": 6,
             "global_asids": 0, "per_cpu": []}
    return {"workloads": ["w 1"], "policies": ["tlb_flush=ipi"], "cpus": [2], "metrics": ["cycles"],
            "profile": profile, "seed": None,
            "cells": [{"workload": "w 1", "policy": "tlb_flush=ipi", "cpus": 2, "ok": True, "error": None,
                       "stats": stats}]}


def test_report_has_per_operation_figures_and_keeps_the_written_reading(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    (results / "flush.json").write_text(json.dumps(_document("zen4")))
    out = tmp_path / "compare.md"
    out.write_text("# mine\n\nWhat it shows: a hand-written paragraph.\n\n" + compare_report.GENERATED_MARKER
                   + "\nstale tables\n")
    assert compare_report.main([str(results), str(out)]) == 0
    text = out.read_text()
    assert text.startswith("# mine\n\nWhat it shows: a hand-written paragraph.")
    assert "stale tables" not in text
    # munmap per-operation figures: 1000 cycles / 4 munmaps, 6 IPIs / 4 munmaps
    assert "| w 1 | `tlb_flush=ipi` | 2 | 250.0 | 1.5 | 0.0 | 1,000 | 6 |" in text, text
    assert "(not run: " in text                   # the sections whose JSON is missing say so
    assert "Profile `zen4`" in text
