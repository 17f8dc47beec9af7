"""The serving table: per setting, the simulated and the measured max rate and the p99 there,
then the answer. Plain text off a terminal; the same rows as report's markdown."""

from __future__ import annotations

from batchbench.report.tables import fmt


def serving_table_rows(rows: list[dict], summary: dict) -> list[list[str]]:
    """One row per simulated setting, best simulated first; measured figures where measured."""
    from batchbench.serving.outputs import setting_max

    simulated = setting_max(rows, "simulated")
    measured = setting_max(rows, "measured", repeats=summary.get("confirm_repeats"))
    searched = setting_max(rows, "measured", confirmed=False)
    answer = summary.get("serving") or {}
    out = []
    for (m, t), sim in sorted(simulated.items(), key=lambda kv: -((kv[1] or {}).get("offered_qps") or 0)):
        row, search = measured.get((m, t)), searched.get((m, t))
        mark = "<- chosen" if answer and (answer["max_batch_size"], answer["batch_timeout_ms"]) == (m, t) else ""
        meas = fmt(row["offered_qps"]) if row else ("none held" if (m, t) in measured else "")
        gap = ""
        if row and sim:
            gap = f"{(sim['offered_qps'] / row['offered_qps'] - 1) * 100:+.0f}%"
        out.append([str(m), f"{t:g}", fmt((sim or {}).get("offered_qps")),
                    fmt(search["offered_qps"]) if search else ("none met" if (m, t) in searched else ""), meas, gap,
                    fmt(row["latency_ms_p99"], 2) if row else "", fmt(row["batch_size_mean"], 1) if row else "", mark])
    return out


# "search max": the highest rate one short point met; "measured max": the answer's, its repeats held.
HEADER = ["max_batch_size", "timeout ms", "simulated max req/s", "search max req/s", "measured max req/s",
          "sim gap", "p99 ms there", "mean batch", ""]


def render_serving(console, rows: list[dict], summary: dict) -> None:
    from rich.table import Table

    table = Table(title=f"serving: max request rate with p{summary['percentile']:g} <= {summary['slo_ms']:g} ms")
    for name in HEADER:
        table.add_column(name, justify="right" if name and name != "" else "left")
    for row in serving_table_rows(rows, summary):
        table.add_row(*row)
    console.print(table)
    answer = summary.get("serving")
    if answer:
        console.print(f"answer: max_batch_size {answer['max_batch_size']}, batch_timeout {answer['batch_timeout_ms']:g} "
                      f"ms, num_batch_threads {answer['num_batch_threads']}: {answer['max_qps']:.0f} requests/s at "
                      f"p99 {answer['latency_ms_p99']:.2f} ms; files: {', '.join(summary.get('files') or [])}")
    else:
        console.print("answer: none (no measured setting met the SLO)")
