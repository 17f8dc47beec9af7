"""What a running sweep tells the user on stderr: a start line at once, one line per finished
trial as it finishes (flushed, plain text when stderr is a file or a CI log), and an ETA from
the trials so far."""

from __future__ import annotations

import time
from typing import Any

from rich.markup import escape

from batchbench.numbers import is_number
from batchbench.report.text import clean


def plain(text: Any) -> str:
    """Text from a config or a result, for a markup string: control characters shown as
    escapes (report.text.clean), rich markup printed literally."""
    return escape(clean(text))


def clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class LineProgress:
    """A callable(event) for Sweep: prints a line per event that matters."""

    STYLE = {"ok": "green", "oom": "yellow", "skipped": "dim", "error": "red", "timeout": "red"}

    def __init__(self, console, now=time.monotonic):
        self.console = console
        self.now = now
        self.started = now()
        self.total = 0
        self.ran: list[float] = []  # wall seconds of the trials that ran (not skipped, not resumed)

    def _print(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, highlight=False)

    def __call__(self, event: dict) -> None:
        kind = event["event"]
        if kind == "preflight":
            kept = f", {event['resumed']} finished trial(s) kept" if event.get("resumed") else ""
            self._print(f"batchbench: run folder {plain(event['run_dir'])}{kept}; building the model and data "
                        "in a worker process ...")
        elif kind == "start":
            self.total = event["total"]
            self._print(f"batchbench: {self.total} planned trial(s): the ladder, then later rounds in a shuffled order "
                        "(noisy points near the best get more rounds; find-max adds its search at the end)")
        elif kind == "total":
            self.total = event["total"]
        elif kind == "note":
            self._print(f"batchbench: {plain(event['text'])}")
        elif kind == "done":
            self._print(self.trial_line(event))

    def trial_line(self, event: dict) -> str:
        row = event["row"]
        status = str(row.get("status"))
        what = f"{row.get('trial_id') or row.get('mode')}" + (f" r{row['round']}" if row.get("round") else "")
        head = f"[{event['index']:>{len(str(self.total))}}/{self.total}] {plain(what)}"
        style = self.STYLE.get(status, "")
        tail = f"[{style}]{status}[/{style}]" if style else plain(status)
        if event.get("resumed"):
            return f"{head}  {tail} (kept from the earlier run)"
        if status == "ok":
            parts = [_figure(row.get("throughput_sps"), "samples/s")]
            if is_number(row.get("step_ms_median")):
                parts.append(f"p50 {row['step_ms_median']:.3g} ms")
            memory = row.get("peak_device_mib") if is_number(row.get("peak_device_mib")) else row.get("peak_host_mib")
            if is_number(memory):
                parts.append(f"{memory:,.0f} MiB")
            tail += "  " + ", ".join(p for p in parts if p)
        elif row.get("error"):
            tail += f"  {plain(row['error'])}"
        if status != "skipped" and is_number(row.get("wall_s")):
            self.ran.append(float(row["wall_s"]))
            tail += f"  ({row['wall_s']:.1f} s)"
        left = self.total - event["index"]
        if self.ran and left > 0:
            tail += f"  eta {clock(left * sum(self.ran) / len(self.ran))}"
        return f"{head}  {tail}"

    def stop(self) -> None:
        pass


def _figure(value: Any, unit: str) -> str:
    if not is_number(value):
        return ""
    return f"{value:,.0f} {unit}" if abs(value) >= 100 else f"{value:.3g} {unit}"
