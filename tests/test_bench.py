"""`make bench` is a benchmark, not a test: these run its code on the smallest case so it
cannot rot, and check how figures are judged. No wall-clock goal is asserted here."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import fidelity, repeatability, tool
from benchmarks.figures import SECTIONS, Figure, markdown_table, text_table, to_csv

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_quick_bench_writes_every_section_with_numeric_ratios(tmp_path):
    out = tmp_path / "bench"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench.py"), "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]

    with open(out / "bench.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {row["section"] for row in rows} == set(SECTIONS)
    assert not [row for row in rows if row["figure"] == "section could not run"]
    ratios = [row for row in rows if row["unit"] == "x"]
    assert {row["section"] for row in ratios} >= {"fidelity", "overhead", "repeatability", "memory"}
    for row in ratios:
        assert float(row["value"]) > 0, row
    for row in rows:
        if row["met"]:
            assert row["met"] in ("true", "false")
            assert row["goal"] not in ("", "-")

    markdown = (out / "bench.md").read_text()
    assert "| section | figure | value | spread | goal | met | detail |" in markdown
    assert "Measured" in markdown and "TensorFlow" in markdown  # the machine that produced it
    for section in SECTIONS:
        assert f"| {section} |" in markdown
        assert section in proc.stdout
    assert "goals met" in proc.stdout


def hand(*throughputs: float) -> dict:
    return {"mode": "fit", "method": "", "batch_size": 32, "throughputs_sps": list(throughputs)}


def row(throughput: float, low: float | None = None, high: float | None = None, status: str = "ok") -> dict:
    return {"status": status, "throughput_sps": throughput, "throughput_sps_min": low or throughput,
            "throughput_sps_max": high or throughput, "error": None}


def test_a_ratio_within_five_percent_meets_the_fidelity_goal():
    figure = fidelity.compare("mlp", hand(990, 1000, 1010), row(1040))
    assert figure.value == pytest.approx(1.04)
    assert figure.met is True
    assert (figure.spread_low, figure.spread_high) == (pytest.approx(0.99), pytest.approx(1.01))


def test_a_ratio_outside_five_percent_meets_the_goal_only_within_the_hand_written_spread():
    assert fidelity.compare("mlp", hand(800, 1000, 1200), row(1150)).met is True
    assert fidelity.compare("mlp", hand(990, 1000, 1010), row(1150)).met is False


def test_a_failed_batchbench_trial_is_a_missed_figure_not_a_crash():
    figure = fidelity.compare("mlp", hand(1000), row(0, status="oom"))
    assert figure.value is None and figure.met is False
    assert "oom" in figure.detail


def run_of(*rows: dict) -> tool.Run:
    child = tool.Child(returncode=0, wall_s=1.0, cpu_s=1.0, max_rss_mib=100.0, others_cpu_share=0.0)
    return tool.Run(Path("."), child, [{"mode": "fit", "method": "", "batch_size": 2**i, **r} for i, r in enumerate(rows)])


def test_repeatability_counts_reruns_inside_the_first_runs_spread():
    first = run_of(row(100, 90, 110), row(200, 190, 210), row(300, 290, 310))
    second = run_of(row(105), row(230), row(295))
    figures = {f.figure: f for f in repeatability.figures("m", first, second)}
    covered = figures["rows whose rerun lies inside the first run's spread"]
    assert covered.value == pytest.approx(200 / 3)
    assert covered.met is True
    assert figures["worst |rerun / run - 1|"].value == pytest.approx(15.0)
    assert "b=2" in figures["worst |rerun / run - 1|"].detail


def test_every_format_carries_the_same_figures():
    figures = [Figure("fidelity", "mlp fit b=16: batchbench / hand-written", 1.01, "x", "0.95-1.05", True, 0.98, 1.02),
               Figure("startup", "batchbench --help", 0.2, "s", "< 0.5 s", False, detail="a | pipe")]
    text, markdown, table = text_table(figures), markdown_table(figures), to_csv(figures)
    for rendered in (text, markdown):
        assert "1.010x" in rendered and "0.980-1.020" in rendered and "NOT MET" in rendered
    assert "a \\| pipe" in markdown
    parsed = list(csv.DictReader(table.splitlines()))
    assert parsed[0]["value"] == "1.01" and parsed[0]["met"] == "true" and parsed[1]["met"] == "false"
