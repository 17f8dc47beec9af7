"""`report` for serving runs: the terminal table, and report.md (or, with --format html, a
self-contained report.html) with the table and the plot, rebuilt from serving.csv and run.json alone."""

from __future__ import annotations

from pathlib import Path

from batchbench.runfiles import make_dir, write_atomic
from batchbench.serving.compare import load_serving
from batchbench.serving.table import HEADER, serving_table_rows


def serving_markdown(name: str, rows: list[dict], summary: dict, image: str | None) -> str:
    percentile, slo = summary.get("percentile", 99), summary.get("slo_ms")
    lines = [f"# {name}: serving under load", "",
             f"The highest Poisson request rate whose p{percentile:g} latency (queueing included) stays within "
             f"{slo:g} ms, per dynamic batching setting: simulated from the measured per-batch latency, and "
             "measured for the simulator's best settings.", ""]
    head = [h or "note" for h in HEADER]
    lines += ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in serving_table_rows(rows, summary)]
    answer = summary.get("serving")
    lines += [""]
    if answer:
        lines += [f"**Answer:** `max_batch_size` {answer['max_batch_size']}, `batch_timeout` "
                  f"{answer['batch_timeout_ms']:g} ms, `num_batch_threads` {answer['num_batch_threads']}: "
                  f"{answer['max_qps']:.0f} requests/s at p99 {answer['latency_ms_p99']:.2f} ms "
                  f"(files: {', '.join(f'`{f}`' for f in summary.get('files') or [])})."]
    else:
        lines += ["**Answer:** none: no measured setting met the SLO."]
    for warning in summary.get("warnings") or []:
        lines += ["", f"> warning: {warning}"]
    if image:
        lines += ["", f"![p{percentile:g} latency against offered rate]({image})"]
    return "\n".join(lines) + "\n"


def serving_blocks(name: str, rows: list[dict], summary: dict, image: Path | None) -> list:
    """The same report as blocks, for the sweep's HTML renderer (report/html.py)."""
    from batchbench.report.document import Bullets, Heading, Image, Paragraph, Table

    percentile, slo = summary.get("percentile", 99), summary.get("slo_ms")
    body = serving_table_rows(rows, summary)
    blocks = [Heading(1, f"{name}: serving under load"),
              Paragraph(f"The highest Poisson request rate whose p{percentile:g} latency (queueing included) stays "
                        f"within {slo:g} ms, per dynamic batching setting: simulated from the measured per-batch "
                        "latency, and measured for the simulator's best settings."),
              Table([h or "note" for h in HEADER], body, right=set(range(len(HEADER) - 1)),
                    bold_row=next((i for i, r in enumerate(body) if r[-1]), None))]
    answer = summary.get("serving")
    if answer:
        blocks.append(Paragraph(f"Answer: max_batch_size {answer['max_batch_size']}, batch_timeout "
                                f"{answer['batch_timeout_ms']:g} ms, num_batch_threads {answer['num_batch_threads']}: "
                                f"{answer['max_qps']:.0f} requests/s at p99 {answer['latency_ms_p99']:.2f} ms "
                                f"(files: {', '.join(summary.get('files') or [])})."))
    else:
        blocks.append(Paragraph("Answer: none: no measured setting met the SLO."))
    if summary.get("warnings"):
        blocks += [Heading(2, "Warnings"), Bullets(list(summary["warnings"]))]
    if image:
        blocks.append(Image(image, f"p{percentile:g} latency against offered rate"))
    return blocks


def report_serving(run_dirs: list[str], out: Path | None, plots: bool, fmt: str = "md") -> int:
    from batchbench.report.tables import make_console
    from batchbench.serving.plot import write_plot
    from batchbench.serving.table import render_serving

    console = make_console()
    for run_dir in run_dirs:
        rows, summary = load_serving(run_dir)
        folder = Path(out) if out else Path(run_dir).resolve()
        make_dir(folder)
        summary.setdefault("percentile", 99.0)
        summary.setdefault("slo_ms", 0.0)
        render_serving(console, rows, summary)
        image = None
        if plots:
            name = f"{Path(run_dir).resolve().name}-serving_latency.png" if out else "serving_latency.png"
            if write_plot(rows, summary.get("serving"), summary["slo_ms"], summary["percentile"], folder / name):
                image = name
        suffix = ".html" if fmt == "html" else ".md"
        path = folder / (f"report{suffix}" if not out or len(run_dirs) == 1 else f"{Path(run_dir).resolve().name}{suffix}")
        # The run's own name (as the run's report has it), else its folder's
        name = next((r["name"] for r in rows if r.get("name")), None) or Path(run_dir).resolve().name
        if fmt == "html":
            from batchbench.report.html import render_html

            text = render_html(serving_blocks(name, rows, summary, folder / image if image else None))
        else:
            text = serving_markdown(name, rows, summary, image)
        write_atomic(path, text, fsync=False)
        make_console(stderr=True).print(f"report: {path}")
    return 0


__all__ = ["report_serving", "serving_blocks", "serving_markdown"]
