"""What a person reads: terminal tables at any width, one number format per column, what to do
in words, and text from a results file shown as itself (never as markup or control codes)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from rich.console import Console

from batchbench.cli import main
from batchbench.recommend import summarize
from batchbench.report import write_report
from batchbench.report.advice import advice, fastest_configurations
from batchbench.report.columns import result_columns
from batchbench.report.runs import load_run
from batchbench.report.tables import make_console, render_results
from batchbench.results import ResultsWriter
from tests.test_report import _row, make_run

CUT_NUMBER = re.compile(r"[\d,.]…|…[\d,.]")


def console(width: int) -> Console:
    return Console(width=width, record=True, no_color=True, highlight=False)


def render(rows: list[dict], varying: list[str], summary: dict | None = None, width: int = 80, **kw) -> str:
    out = console(width)
    render_results(out, rows, varying, summary if summary is not None else summarize(rows, varying, **kw), **kw)
    return out.export_text()


def fit_group(sps: dict[int, float], mib: dict[int, float] | None = None, mode: str = "fit", method: str = "",
              **extra) -> list[dict]:
    rows = []
    for batch, value in sps.items():
        step = 1000 * batch / value
        rows.append({"run_id": "r", "name": "m", "model": "mlp", "mode": mode, "method": method, "batch_size": batch,
                     "status": "ok", "phase": "ladder", "throughput_sps": value, "throughput_sps_min": 0.9 * value,
                     "throughput_sps_max": 1.1 * value, "step_ms_median": step, "step_ms_p90": 1.3 * step,
                     "step_ms_p99": 1.8 * step, "first_step_s": 0.5, "peak_host_mib": (mib or {}).get(batch, 900.0),
                     **extra})
    return rows


def big_rows() -> list[dict]:
    """Figures as wide as they come: ten million samples/s, spreads, sub-millisecond latencies."""
    rows = fit_group({16: 10_234.5, 128: 186_402.1, 1024: 10_234_567.8}, {16: 1012.4, 128: 1050.0, 1024: 1400.2},
                     mode="predict", method="serve")
    rows[1]["stable"] = False
    rows.append({**rows[0], "batch_size": 2048, "status": "oom", "throughput_sps": None,
                 "error": "ResourceExhaustedError: OOM when allocating tensor with shape [2048,1024,1024]"})
    return rows


# ---------------------------------------------------------------- width

@pytest.mark.parametrize("width", [60, 80, 100])
def test_tables_fit_the_width_and_never_cut_a_number(tmp_path: Path, width: int) -> None:
    run = load_run(make_run(tmp_path / "run"))
    for rows, varying in ((run.rows, run.varying), (big_rows(), [])):
        text = render(rows, varying, width=width, slo_ms=25.0)
        lines = text.splitlines()
        assert max(len(line.rstrip()) for line in lines) <= width
        assert not CUT_NUMBER.search(text), [line for line in lines if CUT_NUMBER.search(line)]
    # every figure that is shown is shown whole
    text = render(big_rows(), [], width=width)
    assert "10,234,568" in text and "186,402" in text


def test_a_narrow_terminal_drops_minor_columns_first_and_says_so() -> None:
    narrow, wide = render(big_rows(), [], width=80), render(big_rows(), [], width=200)
    header = next(line for line in narrow.splitlines() if "batch" in line and "status" in line)
    for kept in ("samples/s", "p50 ms"):
        assert kept in header
    assert "first s" not in header and "first s" in wide
    assert "not shown at this width" in narrow and "not shown at this width" not in wide
    assert len(header.split()) < len(next(line for line in wide.splitlines() if "batch" in line).split())


def test_report_honours_columns_when_piped(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    assert make_console().width == 80
    result = CliRunner().invoke(main, ["report", str(make_run(tmp_path / "run")), "--no-plots"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert max(len(line) for line in result.output.splitlines()) <= 80
    assert not CUT_NUMBER.search(result.output)


def test_unstable_is_said_once_per_row() -> None:
    text = render(big_rows(), [], width=200)
    (line,) = [line for line in text.splitlines() if line.strip().startswith("128 ")]
    assert line.count("unstable") == 1


def test_a_row_pooled_over_rounds_shows_its_noise_as_its_interval_not_as_unstable() -> None:
    rows = big_rows()
    rows[1].update(throughput_sps_ci_low=0.8 * rows[1]["throughput_sps"],
                   throughput_sps_ci_high=1.2 * rows[1]["throughput_sps"], rounds=3)
    (line,) = [line for line in render(rows, [], width=200).splitlines() if line.strip().startswith("128 ")]
    assert "unstable" not in line and "±" in line


def test_one_number_format_per_column() -> None:
    rows = fit_group({16: 16_149.0, 64: 40_153.0, 256: 54_227.0})
    for row, p50, p90 in zip(rows, (0.8164, 1.12, 1.80), (0.9419, 23.44, 114.2), strict=True):
        row.update(step_ms_median=p50, step_ms_p90=p90, first_step_s=p50 / 10)
    for column in result_columns(rows):
        if not column.numeric or column.name in ("batch", "spread") or not any(column.cells):
            continue
        places = {len(cell.split(".")[1]) if "." in cell else 0 for cell in column.cells if cell}
        assert len(places) == 1, (column.name, column.cells)
    ms = next(c for c in result_columns(rows) if c.name == "step p50 ms").cells
    assert ms[0] != "0.8164" and float(ms[0].replace(",", "")) == pytest.approx(0.8164, rel=0.01)


# ---------------------------------------------------------------- what to do, in words

def test_train_at_the_smaller_batch_that_is_nearly_as_fast() -> None:
    rows = fit_group({128: 900.0, 256: 960.0, 512: 1000.0, 1024: 990.0}, {128: 800, 256: 860, 512: 900, 1024: 1000})
    (first, *_) = advice(rows, summarize(rows, [])["recommendations"]["fit"])
    assert first.startswith("Train at 256:")
    assert "96% of the best throughput (512)" in first and "40 MiB less memory" in first


def test_recommended_wins_over_smallest_near_best_and_a_tie_is_said() -> None:
    rows = fit_group({128: 900.0, 256: 960.0, 512: 1000.0, 1024: 990.0})
    rec = {**summarize(rows, [])["recommendations"]["fit"], "recommended": 128, "tied_with_best": [128, 512]}
    first = advice(rows, rec)[0]
    assert first.startswith("Train at 128:") and "within the measurement noise" in first


def test_an_unsettled_pick_is_said_with_the_ratio_and_its_interval() -> None:
    rows = fit_group({128: 500.0, 256: 880.0, 512: 1000.0})
    for r, (low, high) in zip(rows, [(450, 550), (790, 980), (930, 1070)], strict=True):
        r.update(throughput_sps_ci_low=low, throughput_sps_ci_high=high)
    said = advice(rows, summarize(rows, [])["recommendations"]["fit"])
    assert said[0].startswith("Train at 512:")
    (note,) = [s for s in said if s.startswith("Not settled")]
    assert "256 reads 88% of 512's throughput (95% interval 77-100%, across the 90% floor" in note
    # a pick the SLO made reads latency, not ties: no such sentence
    rec = {**summarize(rows, [])["recommendations"]["fit"], "slo": 512}
    assert not any(s.startswith("Not settled") for s in advice(rows, rec, slo_ms=100.0))
    # measured tightly, the same pick says nothing of the kind
    for r in rows:
        r.update(throughput_sps_ci_low=0.99 * r["throughput_sps"], throughput_sps_ci_high=1.01 * r["throughput_sps"])
    assert not any(s.startswith("Not settled") for s in advice(rows, summarize(rows, [])["recommendations"]["fit"]))


def test_best_at_the_largest_size_says_sweep_higher_unless_it_ran_out_of_memory() -> None:
    rising = fit_group({128: 500.0, 256: 800.0, 512: 1000.0})
    assert any("sweep higher" in s and "512" in s for s in advice(rising, summarize(rising, [])["recommendations"]["fit"]))
    capped = rising + [{**rising[0], "batch_size": 1024, "status": "oom", "throughput_sps": None}]
    assert not any("sweep higher" in s for s in advice(capped, summarize(capped, [])["recommendations"]["fit"]))
    flat = fit_group({128: 500.0, 256: 1000.0, 512: 800.0})
    assert not any("sweep higher" in s for s in advice(flat, summarize(flat, [])["recommendations"]["fit"]))


def test_serving_advice_uses_the_slo_and_says_when_none_meets_it() -> None:
    rows = fit_group({16: 1000.0, 64: 3000.0, 256: 5000.0}, mode="predict", method="serve")
    met = summarize(rows, [], slo_ms=40.0)["recommendations"]["predict/serve"]
    first = advice(rows, met, 40.0)[0]  # p99 at 64 is 38.4 ms, at 256 it is 92 ms
    assert first.startswith("Serve at 64:") and "p99 within 40 ms" in first and "(256)" in first
    unmet = summarize(rows, [], slo_ms=1.0)["recommendations"]["predict/serve"]
    assert unmet["slo"] is None
    assert advice(rows, unmet, 1.0)[0].startswith("No batch size meets p99 ≤ 1 ms")


def test_a_missing_safe_batch_size_gives_its_reason() -> None:
    rows = fit_group({128: 900.0, 256: 1000.0})
    rec = {**summarize(rows, [])["recommendations"]["fit"], "max_batch_size": 300, "safe_batch_size": None,
           "safe_batch_size_reason": "the margin leaves no size above the smallest tried"}
    assert "No safe batch size: the margin leaves no size above the smallest tried." in advice(rows, rec)


def test_no_fastest_overall_line_and_only_like_compared_with_like(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path / "run"))
    text = render(run.rows, run.varying, run.summary, width=120, slo_ms=25.0)
    assert "fastest overall" not in text
    lines = fastest_configurations(run.groups(), run.summary["recommendations"])
    assert {line.split()[1] for line in lines} == {"fit", "predict/serve"}
    fit_line = next(line for line in lines if line.split()[1] == "fit")
    assert "predict" not in fit_line
    single = fit_group({128: 900.0}) + fit_group({128: 500.0}, mode="predict", method="serve")
    assert fastest_configurations({"fit": single[:1], "predict/serve": single[1:]},
                                  summarize(single, [])["recommendations"]) == []


def test_the_sentence_is_under_each_table(tmp_path: Path) -> None:
    run = load_run(make_run(tmp_path / "run"))
    text = render(run.rows, run.varying, run.summary, width=120, slo_ms=25.0)
    for key in run.groups():
        after = text[text.index(key):]
        assert re.search(r"→ (Train|Serve|Predict) at \d+", after)
    assert "largest batch that fits in memory is 704" in text


# ---------------------------------------------------------------- text from the files, shown as itself

HOSTILE = "[bold red]x[/] \x1b[2J\x1b]0;pwned\x07 <script>alert(1)</script> | *y* [z](http://e) $\\frac{$"


def hostile_run(tmp_path: Path) -> Path:
    run = tmp_path / "hostile"
    run.mkdir()
    writer = ResultsWriter(run)
    for batch, status in ((16, "ok"), (32, "ok"), (64, "error")):
        writer.append(_row(HOSTILE, "fit", "", batch, HOSTILE, status, model=HOSTILE,
                           error=f"boom {HOSTILE}" if status == "error" else None))
        writer.append(_row(HOSTILE, "fit", "", batch, "float32", status))
    return run


def test_markup_and_control_codes_print_literally_in_the_terminal(tmp_path: Path) -> None:
    run = load_run(hostile_run(tmp_path))
    assert len(run.groups()) == 2, "the hostile axis value is its own group"
    out = Console(width=250, record=True, force_terminal=True, color_system="standard")
    render_results(out, run.rows, run.varying, run.summary)
    from batchbench.report.bars import render_throughput_bars

    render_throughput_bars(out, run.rows, run.varying)
    styled = out.export_text(styles=True, clear=False)
    assert "[bold red]x[/]" in out.export_text()
    leftover = re.sub(r"\x1b\[[0-9;]*m", "", styled)  # colours are rich's own; nothing else may remain
    assert "\x1b" not in leftover and "\x07" not in leftover
    assert "\\x1b[2J" in leftover


def test_report_command_shows_hostile_names_literally(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(hostile_run(tmp_path)), "--no-plots"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "[bold red]x[/]" in result.output and "\x1b" not in result.output


def test_markdown_and_html_escape_text_from_the_files(tmp_path: Path) -> None:
    run = hostile_run(tmp_path)
    md = write_report([run], tmp_path / "md", "md", plots=False).read_text()
    html = write_report([run], tmp_path / "html", "html", plots=False).read_text()
    for text in (md, html):
        assert "<script>" not in text and "\x1b" not in text and "\x07" not in text
    assert not re.search(r"(?<!\\)\](?=\()", md), "an unescaped link"
    assert "\\[z\\]" in md and "\\*y\\*" in md
    for line in md.splitlines():
        if line.startswith("| ") and "boom" in line:
            cells = re.split(r"(?<!\\)\|", line)
            header = next(h for h in md.splitlines() if h.startswith("| batch"))
            assert len(cells) == len(re.split(r"(?<!\\)\|", header))
    assert "&lt;script&gt;" in html and "[bold red]x[/]" in html


def test_plots_take_hostile_names_as_plain_text(tmp_path: Path) -> None:
    # '$\\frac{$' is broken mathtext: drawn as mathtext it fails the whole plot.
    run = hostile_run(tmp_path)
    write_report([run], tmp_path / "out", "md", plots=True)
    assert (tmp_path / "out" / "throughput.png").read_bytes()[:4] == b"\x89PNG"
