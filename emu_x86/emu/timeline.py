"""``--timeline FILE``: the trace's events as Chrome trace-event JSON (Perfetto UI, chrome://tracing).

One track (``tid``) per vCPU. Complete events (``ph: X``) for the task
running, and nested inside it the syscalls, #NM handling, TLB flushes (the
cycles the flush instruction costs) and waits for IPI acknowledgement; flow
arrows (``ph: s``/``f``) from each IPI send to its arrival on the target;
instants (``ph: i``) for XSAVES/XRSTORS, page faults and signals. Time is the
vCPU's cycle clock converted at the profile frequency (``ts`` in µs).

Spans are written only when they end, so every span is nested in its parent
on its track (a syscall that blocks ends at the switch away from its task;
its result shows as an instant when the task resumes).

``python -m emu_x86.emu.timeline TIMELINE.json OUT.png`` draws the same JSON with
matplotlib (optional dependency, ``pip install emu-x86[docs]``).
"""
from __future__ import annotations

import sys

PID = 1


class Timeline:
    """A trace sink (emu_x86/emu/trace.py) collecting Chrome trace events."""

    def __init__(self, frequency_hz: int, cpu_count: int):
        self.cycles_per_us = frequency_hz / 1_000_000
        self.events: list[dict] = [{"name": "process_name", "ph": "M", "pid": PID, "tid": 0,
                                    "args": {"name": "emu machine"}}]
        for cpu in range(cpu_count):
            self.events.append({"name": "thread_name", "ph": "M", "pid": PID, "tid": cpu,
                                "args": {"name": f"vCPU {cpu}"}})
            self.events.append({"name": "thread_sort_index", "ph": "M", "pid": PID, "tid": cpu,
                                "args": {"sort_index": cpu}})
        # Open spans per CPU, innermost last: [name, category, start_cycle, args].
        self._open: list[list[list]] = [[] for _ in range(cpu_count)]
        self._last_cycle = [0] * cpu_count
        self._flow_ids: dict[tuple, int] = {}
        self._next_flow = 1

    # ---- sink interface ------------------------------------------------------

    def write(self, record: dict) -> None:
        kind = record["type"]
        cpu, cycle = record["cpu"], record["cycle"]
        self._last_cycle[cpu] = max(self._last_cycle[cpu], cycle)
        handler = getattr(self, f"_on_{kind}", None)
        if handler is not None:
            handler(cpu, cycle, record)

    def close(self) -> None:
        pass

    # ---- records -------------------------------------------------------------

    def _on_context_switch(self, cpu, cycle, record):
        self._close_all(cpu, cycle)
        self._begin(cpu, f"task {record['next']}", "task", cycle, {"tid": record["next"]})

    def _on_idle(self, cpu, cycle, record):
        self._close_all(cpu, cycle)

    def _on_syscall(self, cpu, cycle, record):
        # The event is stamped after the entry/exit cost was charged: the span
        # starts where that cost began, so even a call that does nothing else
        # shows the cycles it was charged (charged_cycles) instead of zero width.
        charged = record.get("charged_cycles", 0)
        self._begin(cpu, f"syscall {record['name']}", "syscall", cycle - charged,
                    {"nr": record["nr"], "args": record["args"], "charged_cycles": charged})

    def _on_syscall_return(self, cpu, cycle, record):
        if self._innermost(cpu, "syscall") is not None:
            self._end(cpu, "syscall", cycle, {"result": record["result"]})
        else:   # it blocked: the span ended at the switch; the result arrives now
            self._instant(cpu, f"{record['name']} returned", "syscall", cycle, {"result": record["result"]})

    def _on_exception(self, cpu, cycle, record):
        if record["vector"] == "#NM":
            self._begin(cpu, "#NM (XFD first use)", "fpu", cycle, {})
        else:
            self._instant(cpu, record["vector"], "fault", cycle,
                          {key: record[key] for key in ("address", "error_code") if key in record})

    def _on_nm_handled(self, cpu, cycle, record):
        self._end(cpu, "fpu", cycle, {"outcome": record["outcome"], "xstate_alloc": record["xstate_alloc"]})

    def _on_tlb_flush(self, cpu, cycle, record):
        cost = record.get("cost_cycles", 0)
        self._complete(cpu, f"TLB flush {record['kind']}", "tlb", cycle - cost, cost,
                       {"kind": record["kind"], "pcid": record["pcid"]})

    def _on_ipi_wait(self, cpu, cycle, record):
        self._begin(cpu, "wait for IPI acks", "ipi", cycle, {"targets": record["targets"]})

    def _on_ipi_wait_done(self, cpu, cycle, record):
        self._end(cpu, "ipi", cycle, {"last_ack_cpu": record["last_ack_cpu"]})

    def _on_ipi_send(self, cpu, cycle, record):
        for target in record["targets"]:
            flow = self._next_flow
            self._next_flow += 1
            self._flow_ids[(cpu, target, record["arrival_cycle"], record["vector"])] = flow
            self._complete(cpu, f"IPI {record['vector']:#x} -> vCPU {target}", "ipi", cycle, 1,
                           {"target": target})
            self.events.append({"name": "IPI", "cat": "ipi", "ph": "s", "id": flow, "pid": PID, "tid": cpu,
                                "ts": self._us(cycle)})

    def _on_interrupt(self, cpu, cycle, record):
        source = record["source_cpu"]
        name = f"IPI {record['vector']:#x} from vCPU {source}" if source >= 0 else f"timer {record['vector']:#x}"
        self._complete(cpu, name, "ipi" if source >= 0 else "timer", cycle, 1, {"vector": record["vector"]})
        flow = self._flow_ids.pop((source, cpu, record["arrival_cycle"], record["vector"]), None)
        if flow is not None:
            self.events.append({"name": "IPI", "cat": "ipi", "ph": "f", "bp": "e", "id": flow, "pid": PID,
                                "tid": cpu, "ts": self._us(cycle)})

    def _on_xsaves(self, cpu, cycle, record):
        self._instant(cpu, "XSAVES", "fpu", cycle, {"task": record["task"], "mask": record["mask"],
                                                    "components_skipped": record["components_skipped"]})

    def _on_xrstors(self, cpu, cycle, record):
        self._instant(cpu, "XRSTORS skipped" if record["skipped"] else "XRSTORS", "fpu", cycle,
                      {"task": record["task"]})

    def _on_signal(self, cpu, cycle, record):
        self._instant(cpu, f"signal {record['signo']}", "signal", cycle, {"action": record["action"]})

    # ---- spans -------------------------------------------------------------------

    def _us(self, cycle: int) -> float:
        return round(cycle / self.cycles_per_us, 4)

    def _begin(self, cpu, name, category, cycle, args):
        self._open[cpu].append([name, category, cycle, dict(args)])

    def _innermost(self, cpu, category):
        for index in range(len(self._open[cpu]) - 1, -1, -1):
            if self._open[cpu][index][1] == category:
                return index
        return None

    def _end(self, cpu, category, cycle, args):
        """Close the innermost span of ``category`` (and anything opened inside it)."""
        index = self._innermost(cpu, category)
        if index is None:
            return
        while len(self._open[cpu]) > index:
            name, cat, start, span_args = self._open[cpu].pop()
            if len(self._open[cpu]) == index:
                span_args.update(args)
            self._complete(cpu, name, cat, start, cycle - start, span_args)

    def _close_all(self, cpu, cycle):
        while self._open[cpu]:
            name, cat, start, args = self._open[cpu].pop()
            self._complete(cpu, name, cat, start, cycle - start, args)

    def _complete(self, cpu, name, category, start_cycle, duration_cycles, args):
        self.events.append({"name": name, "cat": category, "ph": "X", "pid": PID, "tid": cpu,
                            "ts": self._us(start_cycle), "dur": self._us(max(0, duration_cycles)),
                            "args": args})

    def _instant(self, cpu, name, category, cycle, args):
        self.events.append({"name": name, "cat": category, "ph": "i", "s": "t", "pid": PID, "tid": cpu,
                            "ts": self._us(cycle), "args": args})

    # ---- output ---------------------------------------------------------------------

    def document(self) -> dict:
        for cpu in range(len(self._open)):
            self._close_all(cpu, self._last_cycle[cpu])
        return {"traceEvents": self.events, "displayTimeUnit": "ns",
                "otherData": {"clock": "vCPU cycles converted at the profile frequency"}}

    def save(self, stream) -> None:
        import json
        json.dump(self.document(), stream, separators=(",", ":"))
        stream.write("\n")


# Task spans: one colour per task, cycling through a light palette (the other
# categories keep their fixed, darker colours so they read on top).
TASK_PALETTE = ("#9ecae1", "#c7e9c0", "#fff2a8", "#dadaeb", "#f5c6d6", "#d9d9d9", "#c6dbef", "#a1d99b",
                "#e5f5e0", "#bcbddc")


def render_png(document: dict, path: str, title: str = "") -> None:
    """Draw the timeline's spans, one row per vCPU, with IPI flow arrows (matplotlib):
    each task in its own colour, labelled where its span is wide enough, XSAVES and
    XRSTORS as ticks, the legend below the axis label."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = document["traceEvents"]
    names = {event["tid"]: event["args"]["name"] for event in events
             if event["ph"] == "M" and event["name"] == "thread_name"}
    colors = {"syscall": "#fd8d3c", "fpu": "#e6550d", "tlb": "#31a354",
              "ipi": "#756bb1", "timer": "#969696"}
    heights = {"task": 0.8, "syscall": 0.6, "ipi": 0.45, "fpu": 0.45, "tlb": 0.3, "timer": 0.3}
    figure, axes = plt.subplots(figsize=(14, 1.1 * max(2, len(names)) + 2.0))
    layer = {"task": 0, "syscall": 1, "ipi": 2, "fpu": 3, "timer": 3, "tlb": 4}
    spans = sorted((event for event in events if event["ph"] == "X"), key=lambda event: layer.get(event["cat"], 5))
    task_ids = sorted({event["args"].get("tid") for event in spans if event["cat"] == "task"} - {None})
    task_color = {tid: TASK_PALETTE[index % len(TASK_PALETTE)] for index, tid in enumerate(task_ids)}
    end_us = max((event["ts"] + event["dur"] for event in spans), default=1.0) or 1.0
    for event in spans:
        height = heights.get(event["cat"], 0.3)
        if event["cat"] == "task":
            color = task_color.get(event["args"].get("tid"), "#9ecae1")
        else:
            color = colors.get(event["cat"], "#636363")
        axes.broken_barh([(event["ts"], max(event["dur"], 0.002))], (event["tid"] - height / 2, height),
                         facecolors=color, edgecolor="white" if event["cat"] == "task" else "none", linewidth=0.4)
        if event["cat"] == "task" and event["dur"] > end_us / 40:
            axes.text(event["ts"] + event["dur"] / 2, event["tid"] - 0.3, f"t{event['args'].get('tid')}",
                      ha="center", va="center", fontsize=6, color="#08306b")
    for event in events:
        if event["ph"] == "i" and event["name"].startswith(("XSAVES", "XRSTORS")):
            saving = event["name"].startswith("XSAVES")
            skipped = "skipped" in event["name"]
            axes.plot([event["ts"], event["ts"]], [event["tid"] + 0.1, event["tid"] + 0.4],
                      color="#a50f15" if saving else "#08519c", lw=0.8, alpha=0.4 if skipped else 0.9)
    flows = {}
    for event in events:
        if event["ph"] in ("s", "f"):
            flows.setdefault(event["id"], {})[event["ph"]] = event
    for pair in flows.values():
        if "s" in pair and "f" in pair:
            axes.annotate("", xy=(pair["f"]["ts"], pair["f"]["tid"]), xytext=(pair["s"]["ts"], pair["s"]["tid"]),
                          arrowprops={"arrowstyle": "->", "color": "#54278f", "lw": 0.6, "alpha": 0.6})
    axes.set_yticks(sorted(names), [names[tid] for tid in sorted(names)])
    axes.invert_yaxis()
    axes.set_xlabel("guest time (µs)")
    axes.set_title(title or "emu timeline")
    handles = [plt.Rectangle((0, 0), 1, 1, color=task_color[tid]) for tid in task_ids[:6]]
    labels = [f"task {tid}" for tid in task_ids[:6]] + (["..."] if len(task_ids) > 6 else [])
    if len(task_ids) > 6:
        handles.append(plt.Rectangle((0, 0), 1, 1, color="white"))
    handles += [plt.Rectangle((0, 0), 1, 1, color=color) for color in colors.values()]
    labels += ["syscall", "#NM", "TLB flush", "IPI / wait for acks", "timer"]
    handles += [plt.Line2D([0], [0], color="#a50f15", lw=1.5), plt.Line2D([0], [0], color="#08519c", lw=1.5)]
    labels += ["XSAVES", "XRSTORS"]
    # Below the axis label, not over it: the figure reserves the bottom band for it.
    figure.legend(handles, labels, loc="lower center", fontsize="small", ncol=min(len(labels), 9), frameon=False)
    figure.tight_layout(rect=(0, 0.12, 1, 1))
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m emu_x86.emu.timeline TIMELINE.json OUT.png", file=sys.stderr)
        return 2
    import json
    with open(argv[0]) as handle:
        document = json.load(handle)
    render_png(document, argv[1], title=argv[0])
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
