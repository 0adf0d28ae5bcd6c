"""--timeline: Chrome trace-event JSON, checked against the trace-event format
(docs: "Trace Event Format", Google, the format Perfetto and chrome://tracing load)."""
from __future__ import annotations

import json

import pytest
from collections import defaultdict

from tests.guestbuild import REPO, build_c, emu

MUNMAP_THREADS = REPO / "guest" / "tests" / "trace" / "munmap_threads.c"
PHASES = {"X", "B", "E", "i", "I", "s", "t", "f", "M", "C"}


def validate_trace_events(document: dict) -> list[dict]:
    """The JSON Object Format: ``traceEvents`` list; each event has name, ph, pid,
    tid (and ts except metadata); complete events a non-negative dur; instants a
    scope; flow starts and finishes share an id, finish not before start; complete
    events on one thread nest (a child lies wholly inside its parent)."""
    assert isinstance(document, dict) and isinstance(document["traceEvents"], list)
    assert document.get("displayTimeUnit", "ms") in ("ms", "ns")
    events = document["traceEvents"]
    flows = defaultdict(dict)
    spans = defaultdict(list)
    for event in events:
        assert isinstance(event["name"], str) and event["ph"] in PHASES, event
        assert isinstance(event["pid"], int) and isinstance(event["tid"], int), event
        if event["ph"] == "M":
            assert event["name"] in ("process_name", "thread_name", "thread_sort_index", "process_sort_index")
            continue
        assert isinstance(event["ts"], (int, float)) and event["ts"] >= 0, event
        if event["ph"] == "X":
            assert isinstance(event["dur"], (int, float)) and event["dur"] >= 0, event
            spans[event["tid"]].append((event["ts"], event["ts"] + event["dur"], event["name"]))
        if event["ph"] == "i":
            assert event["s"] in ("g", "p", "t")
        if event["ph"] in ("s", "f"):
            assert event["ph"] not in flows[event["id"]], "one start and one finish per flow id"
            flows[event["id"]][event["ph"]] = event
        if "args" in event:
            assert isinstance(event["args"], dict)
    for flow in flows.values():
        assert set(flow) == {"s", "f"} and flow["f"]["ts"] >= flow["s"]["ts"]
    epsilon = 1e-3
    for tid, intervals in spans.items():
        stack = []
        for start, end, name in sorted(intervals, key=lambda span: (span[0], -span[1])):
            while stack and stack[-1][1] <= start + epsilon:
                stack.pop()
            if stack:
                assert end <= stack[-1][1] + epsilon, f"span {name} crosses {stack[-1][2]} on thread {tid}"
            stack.append((start, end, name))
    return events


def test_munmap_timeline_on_four_vcpus(tmp_path):
    binary = build_c(MUNMAP_THREADS.read_text(), "-pthread")
    timeline_path = tmp_path / "timeline.json"
    with_timeline = emu("run", "--cpus", "4", "--timeline", str(timeline_path), "--stats", str(tmp_path / "a.json"),
                        str(binary))
    without = emu("run", "--cpus", "4", "--stats", str(tmp_path / "b.json"), str(binary))
    assert with_timeline.returncode == without.returncode == 0
    assert with_timeline.stdout == b"unmapped 12 pages\n"
    stats_with, stats_without = (json.loads((tmp_path / name).read_text()) for name in ("a.json", "b.json"))
    assert stats_with == stats_without
    events = validate_trace_events(json.loads(timeline_path.read_text()))

    names = {event["tid"]: event["args"]["name"] for event in events if event["name"] == "thread_name"}
    assert names == {cpu: f"vCPU {cpu}" for cpu in range(4)}
    spans = [event for event in events if event["ph"] == "X"]
    tasks = {event["tid"] for event in spans if event["cat"] == "task"}
    assert tasks == {0, 1, 2, 3}, "a task ran on every vCPU"
    munmaps = [event for event in spans if event["name"] == "syscall munmap" and event["tid"] == 0]
    assert len(munmaps) == 12
    # Every syscall is charged its entry/exit cycles, so no slice is zero wide (issue 21).
    syscalls = [event for event in spans if event["cat"] == "syscall"]
    assert syscalls and all(event["dur"] > 0 and event["args"]["charged_cycles"] > 0 for event in syscalls)
    waits = [event for event in spans if event["name"] == "wait for IPI acks" and event["tid"] == 0]
    assert len(waits) >= 12
    for munmap in munmaps:   # each munmap waited for the other CPUs' flushes
        inside = [wait for wait in waits
                  if munmap["ts"] <= wait["ts"] and wait["ts"] + wait["dur"] <= munmap["ts"] + munmap["dur"] + 1e-3]
        assert inside and all(wait["dur"] > 0 for wait in inside)
    remote_flushes = {event["tid"] for event in spans if event["cat"] == "tlb" and event["tid"] != 0}
    assert remote_flushes == {1, 2, 3}
    flows = [event for event in events if event["ph"] in ("s", "f")]
    starts = {event["id"]: event for event in flows if event["ph"] == "s"}
    finishes = [event for event in flows if event["ph"] == "f"]
    assert len(finishes) >= 36, "12 shootdowns x 3 targets, each an arrow from send to arrival"
    assert all(starts[event["id"]]["tid"] != event["tid"] for event in finishes)


def test_timeline_file_error_is_a_usage_error(tmp_path):
    binary = build_c(MUNMAP_THREADS.read_text(), "-pthread")
    run = emu("run", "--timeline", str(tmp_path / "missing-dir" / "t.json"), str(binary))
    assert run.returncode == 2 and len(run.stderr_lines) == 1 and "t.json" in run.stderr_lines[0]


def test_png_has_a_colour_per_task_and_fpu_ticks(tmp_path):
    """python -m emu_x86.emu.timeline: each task its own colour (labelled), XSAVES/XRSTORS ticks,
    the legend in its own band under the axis."""
    pytest.importorskip("matplotlib")
    from emu_x86.emu import timeline
    binary = build_c(MUNMAP_THREADS.read_text(), "-pthread")
    timeline_path = tmp_path / "timeline.json"
    assert emu("run", "--cpus", "2", "--timeline", str(timeline_path), str(binary)).returncode == 0
    document = json.loads(timeline_path.read_text())
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    drawn = {}
    original_savefig = plt.Figure.savefig

    def capture(figure, path, **kwargs):
        axes = figure.axes[0]
        drawn["bar_colours"] = {tuple(collection.get_facecolor()[0]) for collection in axes.collections}
        drawn["labels"] = [text.get_text() for text in axes.texts]
        drawn["legend"] = [text.get_text() for text in figure.legends[0].get_texts()]
        figure.canvas.draw()
        renderer = figure.canvas.get_renderer()
        drawn["legend_top"] = figure.legends[0].get_window_extent(renderer).y1
        drawn["xlabel_bottom"] = axes.xaxis.label.get_window_extent(renderer).y0
        return original_savefig(figure, path, **kwargs)

    plt.Figure.savefig = capture
    try:
        timeline.render_png(document, str(tmp_path / "t.png"))
    finally:
        plt.Figure.savefig = original_savefig
    assert (tmp_path / "t.png").stat().st_size > 10_000
    tasks = sorted({event["args"]["tid"] for event in document["traceEvents"] if event.get("cat") == "task"})
    assert len(tasks) >= 3
    assert [label for label in drawn["legend"] if label.startswith("task ")] == [f"task {t}" for t in tasks[:6]]
    assert "XSAVES" in drawn["legend"] and "XRSTORS" in drawn["legend"]
    assert any(label.startswith("t") for label in drawn["labels"])
    assert len(drawn["bar_colours"]) >= len(tasks[:6]) + 1
    assert drawn["legend_top"] <= drawn["xlabel_bottom"], "the legend covers the axis label"
