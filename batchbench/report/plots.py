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
from matplotlib.ticker import FixedLocator, FuncFormatter, NullLocator, ScalarFormatter

from batchbench.recommend import latency_column
from batchbench.report.labels import distinct_labels, facets, overlay_title
from batchbench.report.runs import SavedRun, is_number, quality_columns
from batchbench.report.text import clean
from batchbench.runfiles import save_figure

COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
          "#bcbd22", "#17becf"]
RUN_MARKERS = ["o", "s", "^", "D", "v", "P"]
# How a batch size that did not run is drawn, at the foot of the axes (it has no value to plot).
FAILED = {"oom": ("X", "out of memory"), "skipped": ("_", "skipped (after an OOM)"),
          "error": ("x", "error"), "timeout": ("d", "timed out")}
MODE_TITLES = {"fit": "fit (training)", "predict": "predict (inference)"}
DPI = 120
INSIDE_LEGEND_MAX = 8  # a legend with more entries, or longer labels, goes below the axes
INSIDE_LABEL_MAX = 40
NEAR_LIMIT = 1.5  # a memory limit further above the highest figure than this is named, not drawn
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
    labels = iter(distinct_labels(facets(runs)))
    for index, run in enumerate(runs):
        recs = run.summary.get("recommendations") or {}
        for key, rows in run.groups().items():
            series.append(Series(clean(next(labels)), rows[0]["mode"], _one_per_batch(rows), recs.get(key) or {},
                                 COLORS[len(series) % len(COLORS)], RUN_MARKERS[index % len(RUN_MARKERS)]))
    return series


# ---------------------------------------------------------------- axes helpers

def _figure(panels: int, title: str, width: float = 6.4) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(width * panels, 4.8), dpi=DPI, layout="constrained")
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
                    markeredgewidth=2.5 if marker == "_" else None,
                    transform=ax.get_xaxis_transform(), clip_on=False, zorder=5)
            seen.add(row["status"])
    return [Line2D([], [], marker=FAILED[st][0], color="0.3", linestyle="none", markersize=8, label=FAILED[st][1],
                   markeredgewidth=2.5 if FAILED[st][0] == "_" else None)
            for st in FAILED if st in seen]


def _legends(fig: Figure, parts: list[tuple[Axes, list]]) -> None:
    """Each axes' legend inside it while they are short; else one legend for the figure, under it,
    so that a long list (several runs, several axes) never hides the lines."""
    entries = []
    for ax, extra in parts:
        handles, _ = ax.get_legend_handles_labels()
        entries.append(handles + (extra or []))
    if all(len(handles) <= INSIDE_LEGEND_MAX and max((len(h.get_label()) for h in handles), default=0)
           <= INSIDE_LABEL_MAX for handles in entries):
        for (ax, _), handles in zip(parts, entries, strict=True):
            if handles:
                ax.legend(handles=handles, fontsize="small", loc="best", framealpha=0.85)
        return
    unique: dict[str, Any] = {}
    for handle in [h for ax, _ in parts for h in ax.get_legend_handles_labels()[0]] + \
            [h for _, extra in parts for h in extra or []]:  # the lines first, then what the marks mean
        unique.setdefault(handle.get_label(), handle)
    # As many columns as the longest label allows across the figure; the figure grows to hold the rows.
    width, height = fig.get_size_inches()
    column_in = 0.065 * max(len(label) for label in unique) + 0.7
    ncols = max(1, min(3, int(width // column_in), math.ceil(len(unique) / 4)))
    fig.set_size_inches(width, height + 0.2 * math.ceil(len(unique) / ncols))
    fig.legend(handles=list(unique.values()), loc="outside lower center", fontsize="small", frameon=False,
               ncols=ncols)


def _sizes(series: list[Series]) -> list[int]:
    return [r["batch_size"] for s in series for r in s.rows]


def _modes(series: list[Series]) -> list[str]:
    return [m for m in ("fit", "predict") if any(s.mode == m for s in series)]


def _save(fig: Figure, path: Path) -> Path:
    save_figure(fig, path, format="png")  # never through a link planted in the run folder
    return path


# ---------------------------------------------------------------- the plots

def throughput_plot(series: list[Series], title: str, path: Path) -> Path:
    modes = _modes(series)
    fig, axes = _figure(len(modes), title)
    legends: list[tuple[Axes, list]] = []
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
        legends.append((ax, extra))
    _legends(fig, legends)
    return _save(fig, path)


def _band_handle():
    from matplotlib.patches import Patch

    return Patch(color="0.5", alpha=0.25, label="spread over repeats (min–max)")


def latency_plot(series: list[Series], runs: list[SavedRun], title: str, path: Path) -> Path:
    """p50 and the SLO's percentile (p99 unless the config says otherwise) per step or per batch."""
    tail = latency_column(runs[0].percentile)
    tail_name = "max" if tail == "step_ms_max" else "p" + tail.rsplit("_p", 1)[-1]
    modes = _modes(series)
    fig, axes = _figure(len(modes), title)
    legends: list[tuple[Axes, list]] = []
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
        for slo_ms, names in _shared(runs, lambda run: run.slo_ms).items() if mode == "predict" else ():
            ax.axhline(slo_ms, color="#d62728", linestyle=":", linewidth=1.6,
                       label=f"SLO {slo_ms:g} ms ({tail_name}){names}")
            values.append(slo_ms)
        extra += _failures(ax, group)
        _batch_axis(ax, _sizes(group))
        _value_axis(ax, values, "ms per step" if mode == "fit" else "ms per batch")
        ax.set_title(MODE_TITLES[mode], fontsize=10)
        legends.append((ax, extra))
    _legends(fig, legends)
    return _save(fig, path)


def memory_plot(series: list[Series], runs: list[SavedRun], title: str, path: Path) -> Path:
    return _save(memory_figure(series, runs, title), path)


def memory_figure(series: list[Series], runs: list[SavedRun], title: str) -> Figure:
    """Peak memory per batch size, the y axis fitted to the figures (a 1% step between sizes
    shows); a cap far above them is named in the legend rather than drawn."""
    fig, (ax,) = _figure(1, title, width=8.0)
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
    top = max(values, default=0)
    for label, value, style in _memory_limits(runs, has_device):
        if top and value > NEAR_LIMIT * top:
            extra.append(Line2D([], [], color="0.25", linestyle=style, label=f"{label} (above the chart)"))
            continue
        ax.axhline(value, color="0.25", linestyle=style, linewidth=1.3, label=label)
        # At the left, where small batches leave room and the found maximum's label is not.
        ax.annotate(label, (0.01, value), xycoords=ax.get_yaxis_transform(), ha="left", va="bottom",
                    fontsize=8, color="0.25")
        values.append(value)
    extra += _failures(ax, series)
    _batch_axis(ax, _sizes(series))
    _value_axis(ax, values, "peak memory, MiB", zero=False)
    ax.margins(y=0.15)  # room at the foot for the marks of sizes that did not run
    if ax.get_yscale() == "linear":
        ax.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
        ax.yaxis.get_major_formatter().set_scientific(False)
    _legends(fig, [(ax, extra)])
    return fig


def _shared(runs: list[SavedRun], value_of) -> dict[Any, str]:
    """Each distinct value among the runs -> '' when every run has it, else ' (the runs that do)'."""
    found: dict[Any, list[str]] = {}
    for run in runs:
        value = value_of(run)
        if value:
            found.setdefault(value, []).append(run.name)
    return {v: "" if len(names) == len(runs) else f" ({', '.join(names)})" for v, names in found.items()}


def _memory_limits(runs: list[SavedRun], device: bool) -> list[tuple[str, float, str]]:
    """(legend label, MiB, line style): the host memory cap, and the device's capacity when the
    runs measured device memory (a GPU that TensorFlow was not asked to use is not a limit)."""
    lines = [(f"memory cap {_mib(cap)}{names}", cap, "-.") for cap, names in
             _shared(runs, lambda run: run.memory_cap_mib).items()]
    if device:
        lines += [(f"{label} {_mib(mib)}{names}", mib, (0, (6, 2, 1, 2, 1, 2))) for (label, mib), names in
                  _shared(runs, lambda run: run.device_capacity).items()]
    return lines


def _mib(value: float) -> str:
    return f"{value / 1024:.3g} GiB" if value >= 1024 else f"{value:.0f} MiB"


def quality_plot(series: list[Series], runs: list[SavedRun], title: str, path: Path) -> Path | None:
    """Validation metrics and time to target; the legend once, in the first panel."""
    columns = quality_columns([r for s in series for r in s.rows])
    if not columns:
        return None
    fit = [s for s in series if s.mode == "fit"]
    fig, axes = _figure(len(columns), title, width=6.4 if len(columns) <= 2 else 5.2)
    legends: list[tuple[Axes, list]] = []
    for index, (ax, column) in enumerate(zip(axes, columns, strict=True)):
        values = []
        for s in fit:
            x, y = s.ok(column)
            ax.plot(x, y, marker=s.marker, color=s.color, label=s.label if index == 0 else "_nolegend_")
            values += y
        for run in runs:
            target = run.sweep_config.get("target") or {}
            if target.get("metric") in (column, column.removeprefix("val_")) and is_number(target.get("value")):
                ax.axhline(target["value"], color="#d62728", linestyle=":", label=f"target {target['value']:g}")
                values.append(target["value"])
        failed = _failures(ax, fit)
        _batch_axis(ax, _sizes(fit))
        if column == "time_to_target_s":
            _value_axis(ax, values, "time to target, s")
            ax.set_title("time to reach the target", fontsize=10)
        else:
            ax.margins(y=0.12)  # room at the foot for the markers of sizes that did not run
            ax.set_ylabel(column.removeprefix("val_").replace("_", " "))
            ax.set_title(f"validation {column.removeprefix('val_')}", fontsize=10)
        legends.append((ax, failed if index == 0 else []))
    _legends(fig, legends)
    return _save(fig, path)


def plot_title(runs: list[SavedRun]) -> str:
    if len(runs) == 1:
        run = runs[0]
        models = sorted({str(r["model"]) for r in run.rows if r.get("model")})
        return f"{run.name}" + (f" · model {', '.join(models)}" if models else "") + f" · {run.device}"
    return overlay_title(runs)


def write_plots(runs: list[SavedRun], out_dir: Path) -> list[Path]:
    """Every plot the runs have data for, as PNG files in out_dir; one line per group and run.
    Names from the files are text, never mathtext: a '$' in a model name must not fail a plot."""
    from matplotlib import rc_context

    with rc_context({"text.parse_math": False}):
        return _write_plots(runs, Path(out_dir))


def _write_plots(runs: list[SavedRun], out_dir: Path) -> list[Path]:
    series = build_series(runs)
    if not series:
        return []
    title = clean(plot_title(runs))
    written = [throughput_plot(series, title, out_dir / "throughput.png"),
               latency_plot(series, runs, title, out_dir / "latency.png")]
    if any(s.ok("peak_host_mib")[0] or s.ok("peak_device_mib")[0] for s in series):
        written.append(memory_plot(series, runs, title, out_dir / "memory.png"))
    quality = quality_plot(series, runs, title, out_dir / "quality.png")
    if quality:
        written.append(quality)
    return written
