"""PNG plots of saved runs: throughput, latency, memory and quality against batch size.

Figures are drawn on matplotlib's Agg canvas directly, never through pyplot: it needs no display,
and it does not switch the backend of a notebook that imported batchbench.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator

from batchbench.recommend import latency_column
from batchbench.report.runs import SavedRun, is_number, quality_columns, run_labels

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]
RUN_MARKERS = ["o", "s", "^", "D", "v", "P"]
# How a batch size that did not run is drawn, at the foot of the axes (it has no value to plot).
FAILED = {"oom": ("X", "out of memory"), "skipped": ("$\u2013$", "skipped (after an OOM)"),
          "error": ("x", "error"), "timeout": ("d", "timed out")}
MODE_TITLES = {"fit": "fit (training)", "predict": "predict (inference)"}
DPI = 120
LOG_Y_RATIO = 20  # a panel whose values span more than this factor gets a log y axis


@dataclass
class Series:
    """One line: one group of one run, one row per batch size."""

    label: str
    mode: str
    rows: list[dict[str, Any]]
    recommendation: dict[str, Any]
    color: str
    marker: str

    def ok(self, column: str) -> tuple[list[int], list[float]]:
        points = [(r["batch_size"], r[column]) for r in self.rows if r.get("status") == "ok" and is_number(r.get(column))]
        return [p[0] for p in points], [p[1] for p in points]

    def failed(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("status") in FAILED]


def _one_per_batch(rows: list[dict]) -> list[dict]:
    """A found-max search can measure a size twice (search, then confirm): plot the first that ran ok."""
    chosen: dict[int, dict] = {}
    for row in rows:
        kept = chosen.get(row["batch_size"])
        if kept is None or (kept.get("status") != "ok" and row.get("status") == "ok"):
            chosen[row["batch_size"]] = row
    return [chosen[b] for b in sorted(chosen)]


def build_series(runs: list[SavedRun]) -> list[Series]:
    series = []
    for index, (run, run_label) in enumerate(zip(runs, run_labels(runs), strict=True)):
        recs = run.summary.get("recommendations") or {}
        for key, rows in run.groups().items():
            label = key if len(runs) == 1 else f"{run_label}: {key}"
            series.append(Series(label, rows[0]["mode"], _one_per_batch(rows), recs.get(key) or {},
                                 COLORS[len(series) % len(COLORS)], RUN_MARKERS[index % len(RUN_MARKERS)]))
    return series


# ---------------------------------------------------------------- axes helpers

def _figure(panels: int, title: str) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(6.4 * panels, 4.8), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, panels, squeeze=False)[0]
    fig.suptitle(title, fontsize=11)
    return fig, list(axes)


def _batch_axis(ax: Axes, sizes: list[int]) -> None:
    """log2 x axis with a tick at every power of two the sweep covers, labelled as plain numbers."""
    ax.set_xscale("log", base=2)
    low, high = min(sizes), max(sizes)
    ticks = [2**k for k in range(int(math.floor(math.log2(low))), int(math.ceil(math.log2(high))) + 1)]
    while len(ticks) > 12:
        ticks = ticks[::2]
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:,.0f}"))
    ax.set_xlim(low / 2**0.35, high * 2**0.35)
    ax.set_xlabel("batch size (log2 scale)")
    ax.grid(True, which="major", alpha=0.3)


def _value_axis(ax: Axes, values: list[float], label: str, zero: bool = True) -> None:
    positive = [v for v in values if v > 0]
    if positive and max(positive) / min(positive) > LOG_Y_RATIO:
        ax.set_yscale("log")
        if max(positive) / min(positive) < 300:  # few decades: label 2x and 5x between them too
            ax.yaxis.set_minor_formatter(FuncFormatter(_two_five))
        label += " (log scale)"
    elif zero:
        ax.set_ylim(bottom=0, top=max(values, default=1) * 1.12 or 1)
    ax.yaxis.set_major_formatter(FuncFormatter(_plain))
    ax.set_ylabel(label)


def _plain(value: float, _pos: object = None) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:g}"


def _two_five(value: float, _pos: object = None) -> str:
    mantissa = value / 10 ** math.floor(math.log10(value)) if value > 0 else 0
    return _plain(value) if round(mantissa, 6) in (2, 5) else ""


def _failures(ax: Axes, series: list[Series]) -> list[Line2D]:
    """Batch sizes with no measurement, marked at the foot of the axes; their legend entries."""
    seen: set[str] = set()
    for s in series:
        for row in s.failed():
            marker, _ = FAILED[row["status"]]
            ax.plot([row["batch_size"]], [0.04], marker=marker, markersize=9, linestyle="none", color=s.color,
                    transform=ax.get_xaxis_transform(), clip_on=False, zorder=5)
            seen.add(row["status"])
    return [Line2D([], [], marker=FAILED[st][0], color="0.3", linestyle="none", markersize=8, label=FAILED[st][1])
            for st in FAILED if st in seen]


def _legend(ax: Axes, extra: list[Line2D] | None = None) -> None:
    handles, _ = ax.get_legend_handles_labels()
    handles += extra or []
    if handles:
        ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.85)


def _sizes(series: list[Series]) -> list[int]:
    return [r["batch_size"] for s in series for r in s.rows]


def _modes(series: list[Series]) -> list[str]:
    return [m for m in ("fit", "predict") if any(s.mode == m for s in series)]


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, format="png")
    return path


# ---------------------------------------------------------------- the plots

def throughput_plot(series: list[Series], title: str, path: Path) -> Path:
    modes = _modes(series)
    fig, axes = _figure(len(modes), title)
    for ax, mode in zip(axes, modes, strict=True):
        group = [s for s in series if s.mode == mode]
        values = []
        for s in group:
            x, y = s.ok("throughput_sps")
            ax.plot(x, y, marker=s.marker, color=s.color, label=s.label)
            band = [(b, r["throughput_sps_min"], r["throughput_sps_max"]) for b, r in
                    ((r["batch_size"], r) for r in s.rows if r.get("status") == "ok")
                    if is_number(r.get("throughput_sps_min")) and is_number(r.get("throughput_sps_max"))]
            if band:
                ax.fill_between([p[0] for p in band], [p[1] for p in band], [p[2] for p in band], color=s.color,
                                alpha=0.18, linewidth=0)
                values += [p[2] for p in band] + [p[1] for p in band]
            values += y
            best = s.recommendation.get("best_throughput")
            if best in x:
                ax.plot([best], [y[x.index(best)]], marker="*", markersize=15, color=s.color,
                        markeredgecolor="black", linestyle="none", zorder=4)
        extra = _failures(ax, group)
        if any(s.recommendation.get("best_throughput") for s in group):
            extra.append(Line2D([], [], marker="*", markersize=11, color="0.6", markeredgecolor="black",
                                linestyle="none", label="best throughput"))
        if any(s.ok("throughput_sps_min")[0] for s in group):
            extra.append(_band_handle())
        _batch_axis(ax, _sizes(group))
        _value_axis(ax, values, "samples / s")
        ax.set_title(MODE_TITLES[mode], fontsize=10)
        _legend(ax, extra)
    return _save(fig, path)


def _band_handle():
    from matplotlib.patches import Patch

    return Patch(color="0.5", alpha=0.25, label="spread over repeats (min–max)")


def latency_plot(series: list[Series], title: str, path: Path, slo_ms: float | None, percentile: float) -> Path:
    tail = latency_column(percentile)
    tail_name = "max" if tail == "step_ms_max" else "p" + tail.rsplit("_p", 1)[-1]
    modes = _modes(series)
    fig, axes = _figure(len(modes), title)
    for ax, mode in zip(axes, modes, strict=True):
        group = [s for s in series if s.mode == mode]
        values = []
        for s in group:
            x, y = s.ok("step_ms_median")
            ax.plot(x, y, marker=s.marker, color=s.color, label=s.label)
            tx, ty = s.ok(tail)
            ax.plot(tx, ty, marker=s.marker, markersize=4, color=s.color, linestyle="--", alpha=0.8)
            values += y + ty
        extra = [Line2D([], [], color="0.3", label="p50 (median)"),
                 Line2D([], [], color="0.3", linestyle="--", label=tail_name)]
        if slo_ms and mode == "predict":
            ax.axhline(slo_ms, color="#d62728", linestyle=":", linewidth=1.6,
                       label=f"SLO {slo_ms:g} ms ({tail_name})")
            values.append(slo_ms)
        extra += _failures(ax, group)
        _batch_axis(ax, _sizes(group))
        _value_axis(ax, values, "ms per step" if mode == "fit" else "ms per batch")
        ax.set_title(MODE_TITLES[mode], fontsize=10)
        _legend(ax, extra)
    return _save(fig, path)


def memory_plot(series: list[Series], runs: list[SavedRun], title: str, path: Path) -> Path:
    fig, (ax,) = _figure(1, title)
    values: list[float] = []
    has_device = False
    for s in series:
        x, y = s.ok("peak_host_mib")
        ax.plot(x, y, marker=s.marker, color=s.color, label=s.label)
        dx, dy = s.ok("peak_device_mib")
        if dx:
            has_device = True
            ax.plot(dx, dy, marker=s.marker, markersize=4, color=s.color, linestyle="--")
        values += y + dy
        found = s.recommendation.get("max_batch_size")
        if is_number(found):
            ax.axvline(found, color=s.color, linestyle=":", linewidth=1.4)
            ax.annotate(f"largest that fits: {found}", (found, 0.97), xycoords=ax.get_xaxis_transform(),
                        rotation=90, ha="right", va="top", fontsize=8, color=s.color)
    extra = []
    if has_device:
        extra = [Line2D([], [], color="0.3", label="peak host"),
                 Line2D([], [], color="0.3", linestyle="--", label="peak device")]
    for label, value, style in _memory_limits(runs):
        ax.axhline(value, color="0.25", linestyle=style, linewidth=1.3, label=label)
        values.append(value)
    extra += _failures(ax, series)
    _batch_axis(ax, _sizes(series))
    ax.set_ylim(bottom=0, top=max(values, default=1) * 1.12)
    ax.set_ylabel("peak memory, MiB")
    _legend(ax, extra)
    return _save(fig, path)


def _memory_limits(runs: list[SavedRun]) -> list[tuple[str, float, str]]:
    """(legend label, MiB, line style) for every distinct cap and device capacity."""
    lines: dict[tuple[str, float], tuple[str, float, str]] = {}
    for run in runs:
        suffix = f" ({run.name})" if len(runs) > 1 else ""
        if run.memory_cap_mib:
            lines.setdefault(("host", run.memory_cap_mib),
                             (f"memory cap {_mib(run.memory_cap_mib)}{suffix}", run.memory_cap_mib, "-."))
        if run.device_capacity_mib:
            lines.setdefault(("device", run.device_capacity_mib),
                             (f"device memory {_mib(run.device_capacity_mib)}{suffix}", run.device_capacity_mib,
                              (0, (6, 2, 1, 2, 1, 2))))
    return list(lines.values())


def _mib(value: float) -> str:
    return f"{value / 1024:.3g} GiB" if value >= 1024 else f"{value:.0f} MiB"


def quality_plot(series: list[Series], runs: list[SavedRun], title: str, path: Path) -> Path | None:
    columns = quality_columns([r for s in series for r in s.rows])
    if not columns:
        return None
    fit = [s for s in series if s.mode == "fit"]
    fig, axes = _figure(len(columns), title)
    for ax, column in zip(axes, columns, strict=True):
        values = []
        for s in fit:
            x, y = s.ok(column)
            ax.plot(x, y, marker=s.marker, color=s.color, label=s.label)
            values += y
        for run in runs:
            target = run.sweep_config.get("target") or {}
            if target.get("metric") in (column, column.removeprefix("val_")) and is_number(target.get("value")):
                ax.axhline(target["value"], color="#d62728", linestyle=":", label=f"target {target['value']:g}")
                values.append(target["value"])
        _batch_axis(ax, _sizes(fit))
        if column == "time_to_target_s":
            _value_axis(ax, values, "time to target, s")
            ax.set_title("time to reach the target", fontsize=10)
        else:
            ax.set_ylabel(column.removeprefix("val_").replace("_", " "))
            ax.set_title(f"validation {column.removeprefix('val_')}", fontsize=10)
        _legend(ax, _failures(ax, fit))
    return _save(fig, path)


def plot_title(runs: list[SavedRun]) -> str:
    if len(runs) == 1:
        run = runs[0]
        models = sorted({str(r["model"]) for r in run.rows if r.get("model")})
        return f"{run.name}" + (f" · model {', '.join(models)}" if models else "") + f" · {run.device}"
    return " vs ".join(run_labels(runs))


def write_plots(runs: list[SavedRun], out_dir: Path) -> list[Path]:
    """Every plot the runs have data for, as PNG files in out_dir; one line per group and run."""
    series = build_series(runs)
    if not series:
        return []
    out_dir = Path(out_dir)
    title = plot_title(runs)
    first = runs[0]
    written = [throughput_plot(series, title, out_dir / "throughput.png"),
               latency_plot(series, title, out_dir / "latency.png", first.slo_ms, first.percentile)]
    if any(s.ok("peak_host_mib")[0] or s.ok("peak_device_mib")[0] for s in series):
        written.append(memory_plot(series, runs, title, out_dir / "memory.png"))
    quality = quality_plot(series, runs, title, out_dir / "quality.png")
    if quality:
        written.append(quality)
    return written
