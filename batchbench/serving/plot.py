"""The serving plot: p99 latency against offered rate, one line per measured setting, the SLO
as a line and the chosen point marked."""

from __future__ import annotations

from pathlib import Path


def write_plot(rows: list[dict], answer: dict | None, slo_ms: float, percentile: float, path: Path) -> Path | None:
    measured = [r for r in rows if r.get("source") == "measured" and r.get("offered_qps")
                and r.get("latency_ms_at_percentile") is not None]
    if not measured:
        return None
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from batchbench.runfiles import save_figure

    fig = Figure(figsize=(7, 4.5))
    FigureCanvasAgg(fig)  # no pyplot: no display needed, nothing global
    ax = fig.add_subplot()
    settings = sorted({(r["max_batch_size"], r["batch_timeout_ms"]) for r in measured})
    for m, t in settings:
        mine = [r for r in measured if (r["max_batch_size"], r["batch_timeout_ms"]) == (m, t)]
        points = sorted((r["offered_qps"], r["latency_ms_at_percentile"]) for r in mine if not r.get("repeat"))
        line, = ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", ms=4,
                        label=f"max_batch_size {m}, timeout {t:g} ms")
        again = [(r["offered_qps"], r["latency_ms_at_percentile"]) for r in mine if r.get("repeat")]
        if again:  # the answer's repeats, sustained longer: the points the max rests on
            ax.plot([p[0] for p in again], [p[1] for p in again], marker="x", ms=6, ls="none",
                    color=line.get_color())
    ax.axhline(slo_ms, color="crimson", ls="--", lw=1, label=f"SLO {slo_ms:g} ms")
    if any(r.get("repeat") for r in measured):
        ax.plot([], [], marker="x", ls="none", color="gray", label="the answer's repeats (sustained)")
    chosen = [r for r in measured if answer and (r["max_batch_size"], r["batch_timeout_ms"], r["offered_qps"]) ==
              (answer["max_batch_size"], answer["batch_timeout_ms"], answer["max_qps"])]
    if chosen:  # at the worst of its measurements, as the summary's p99
        ax.plot([answer["max_qps"]], [max(r["latency_ms_at_percentile"] for r in chosen)], marker="*", ms=16,
                color="black", ls="none", label=f"chosen: {answer['max_qps']:.0f} req/s")
    ax.set_xlabel("offered rate (requests/s, Poisson)")
    ax.set_ylabel(f"p{percentile:g} latency (ms, queueing included)")
    ax.set_yscale("log")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    ax.set_title("Dynamic batching under load")
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return path
