"""Reports and plots rebuilt from saved results alone: no TensorFlow, no model, no data.

The fixture runs are written with batchbench's own ResultsWriter and write_json_atomic, as a
sweep writes them, so the report reads exactly what a sweep leaves behind.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchbench import RESULTS_SCHEMA_VERSION
from batchbench.cli import main
from batchbench.recommend import summarize
from batchbench.report import write_report, write_run_report
from batchbench.report.bars import bar, throughput_bars
from batchbench.report.runs import load_run
from batchbench.results import ResultsFormatError, ResultsWriter, write_json_atomic

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GPU_MIB = 22_731.0
ROOT = Path(__file__).resolve().parents[1]


def _row(name: str, mode: str, method: str, batch: int, precision: str, status: str = "ok",
         speedup: float = 1.0, **extra) -> dict:
    row = {"run_id": f"{name}-1", "name": name, "model": "cnn", "mode": mode, "method": method,
           "batch_size": batch, "status": status, "precision": precision, "jit_compile": "auto",
           "backend": "tensorflow", "strategy": "default", "phase": "ladder", "device": "gpu:0"}
    if status != "ok":
        error = "ResourceExhaustedError: OOM when allocating tensor | device gpu:0" if status == "oom" else ""
        return {**row, "error": error, "oom_kind": "device" if status == "oom" else None, **extra}
    sps = speedup * 20_000 * batch / (batch + 64)
    step_ms = 1000 * batch / sps
    row.update(throughput_sps=sps, throughput_sps_min=0.94 * sps, throughput_sps_max=1.04 * sps,
               step_ms_median=step_ms, step_ms_p90=1.2 * step_ms, step_ms_p95=1.3 * step_ms,
               step_ms_p99=1.6 * step_ms + 0.5, step_ms_max=2 * step_ms + 1, sample_ms=step_ms / batch,
               first_step_s=1.5, wall_s=4.0, peak_host_mib=1900 + 0.6 * batch,
               peak_device_mib=600 + batch * (21 if precision == "float32" else 9), repeats=5, params=120_000)
    if mode == "fit":
        half = precision != "float32"
        row.update(val_loss=0.25 + 0.04 * math.log2(batch) + 0.01 * half,
                   val_accuracy=0.96 - 0.012 * math.log2(batch) - 0.004 * half,
                   time_to_target_s=(40 + 3000 / batch + batch / 20) / (1.5 if half else 1))
    return {**row, **extra}


def make_run(run_dir: Path, name: str = "cnn-a10g", speedup: float = 1.0, quality: bool = True) -> Path:
    """A GPU run with a precision axis, an OOM, skipped sizes, a found maximum and quality columns."""
    run_dir.mkdir(parents=True, exist_ok=True)
    writer = ResultsWriter(run_dir)
    rows = []
    for precision in ("float32", "mixed_float16"):
        for batch in (8, 32, 128, 512, 1024, 2048):
            oom_at = 1024 if precision == "float32" else 4096
            status = "ok" if batch < oom_at else "oom" if batch == oom_at else "skipped"
            for mode, method in (("fit", ""), ("predict", "serve")):
                row = _row(name, mode, method, batch, precision, status,
                           speedup * (1.7 if precision == "mixed_float16" else 1.0))
                rows.append(row)
    # The largest-batch search between 512 (ok) and 1024 (OOM), then its confirming pass.
    for batch, status, phase in ((768, "oom", "search"), (640, "ok", "search"), (704, "ok", "search"),
                                 (736, "oom", "search"), (704, "ok", "confirm")):
        rows.append(_row(name, "fit", "", batch, "float32", status, speedup, phase=phase))
    if not quality:
        rows = [{k: v for k, v in row.items() if not k.startswith(("val_", "time_to"))} for row in rows]
    for row in rows:
        writer.append(row)
    frontier = {"fit|precision=float32": {"max_batch_size": 704, "safe_batch_size": 640, "search_trials": 5}}
    summary = summarize(rows, ["precision"], slo_ms=25.0, frontier=frontier)
    write_json_atomic(run_dir / "run.json", {
        "schema_version": RESULTS_SCHEMA_VERSION, "batchbench_version": "0.1.0", "run_id": f"{name}-1",
        "name": name, "status": "complete", "started_at": "2026-11-25T10:15:00+00:00",
        "ended_at": "2026-11-25T10:25:00+00:00",
        "config_resolved": {"sweep": {"batch_sizes": [8, 32, 128, 512, 1024, 2048], "repeats": 5, "slo_ms": 25.0,
                                      "percentile": 99.0, "memory_limit": 8 * 2**30, "device_memory_limit": None,
                                      "target": {"metric": "val_accuracy", "value": 0.9, "max_epochs": 5}}},
        "environment": {"cpu_model": "AMD EPYC 7R32", "cpu_cores_logical": 8, "memory_total_mib": 31_000.0,
                        "nvml": {"available": True, "driver": "550.54", "gpus": [
                            {"index": 0, "name": "NVIDIA A10G", "memory_total_mib": GPU_MIB}]},
                        "framework": {"tensorflow": "2.16.1", "keras": "3.3.3", "keras_backend": "tensorflow",
                                      "tf_devices": [{"name": "/physical_device:GPU:0", "type": "GPU"}]}},
        "summary": {"run_dir": str(run_dir), **summary, "warnings": ["predict-serve-b8: noisy measurement"]},
    })
    return run_dir


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    return make_run(tmp_path / "runs" / "cnn-a10g" / "20261125-101500")


def assert_png(path: Path) -> None:
    assert path.exists(), f"{path.name} was not written"
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    assert len(data) > 20_000, f"{path.name} is suspiciously small ({len(data)} bytes)"


# ---------------------------------------------------------------- after a sweep

def test_run_report_writes_every_plot_and_report_md(run_dir: Path) -> None:
    write_run_report(run_dir, plots=True)
    for name in ("throughput", "latency", "memory", "quality"):
        assert_png(run_dir / f"{name}.png")
    report = (run_dir / "report.md").read_text()
    for name in ("throughput", "latency", "memory", "quality"):
        assert f"]({name}.png)" in report
    assert "## Recommendations" in report and "## Environment" in report
    assert "| batch | status | samples/s |" in report
    assert "### fit|precision=float32" in report
    assert "largest batch that fits in memory is 704" in report
    assert "NVIDIA A10G" in report


def test_no_plots_writes_report_md_without_images(run_dir: Path) -> None:
    write_run_report(run_dir, plots=False)
    assert not list(run_dir.glob("*.png"))
    report = (run_dir / "report.md").read_text()
    assert "![" not in report and "| batch |" in report


def test_quality_plot_only_when_val_columns_hold_numbers(tmp_path: Path) -> None:
    run = make_run(tmp_path / "run", quality=False)
    write_run_report(run)
    assert not (run / "quality.png").exists()
    assert_png(run / "throughput.png")


def test_markdown_table_cells_escape_pipes(run_dir: Path) -> None:
    write_run_report(run_dir, plots=False)
    for line in (run_dir / "report.md").read_text().splitlines():
        if line.startswith("| batch"):
            header_cells = len(re.split(r"(?<!\\)\|", line))
        elif line.startswith("| ") and "ResourceExhausted" in line:
            assert "OOM when allocating tensor \\| device" in line
            assert len(re.split(r"(?<!\\)\|", line)) == header_cells


def test_a_run_where_every_trial_ran_out_of_memory_still_plots(tmp_path: Path) -> None:
    run = tmp_path / "all-oom"
    run.mkdir()
    writer = ResultsWriter(run)
    for batch in (256, 512):
        writer.append(_row("huge", "fit", "", batch, "float32", "oom" if batch == 256 else "skipped"))
    write_run_report(run)
    assert_png(run / "throughput.png")
    assert "fit: No batch size ran: 256 already ran out of memory" in (run / "report.md").read_text()


def test_memory_lines_cap_and_device_capacity_only_where_measured(run_dir: Path, tmp_path: Path) -> None:
    from batchbench.report.plots import _memory_limits

    run = load_run(run_dir)
    labels = [label for label, _, _ in _memory_limits([run], device=True)]
    assert labels == ["memory cap 8 GiB", "NVIDIA A10G memory 22.2 GiB"]
    # A GPU the sweep did not use (device: cpu) is no limit of the run's.
    assert [label for label, _, _ in _memory_limits([run], device=False)] == ["memory cap 8 GiB"]


def test_memory_axis_fits_the_figures_and_names_a_cap_far_above_them(tmp_path: Path) -> None:
    from batchbench.report.plots import build_series, memory_figure

    run_dir = tmp_path / "flat"
    run_dir.mkdir()
    writer = ResultsWriter(run_dir)
    for index, batch in enumerate((16, 64, 256, 512)):
        row = _row("flat", "fit", "", batch, "float32", peak_host_mib=975.0 + index)
        writer.append({k: v for k, v in row.items() if k != "peak_device_mib"})
    write_json_atomic(run_dir / "run.json", {"schema_version": RESULTS_SCHEMA_VERSION, "name": "flat",
                                             "config_resolved": {"sweep": {"memory_limit": 8 * 2**30}}})
    run = load_run(run_dir)
    fig = memory_figure(build_series([run]), [run], "flat")
    low, high = fig.axes[0].get_ylim()
    assert 900 < low < 975 and 978 < high < 1100, "the axis should show a 1 MiB step between sizes"
    labels = [t.get_text() for legend in [*fig.legends, fig.axes[0].get_legend()] if legend for t in legend.get_texts()]
    assert "memory cap 8 GiB (above the chart)" in labels


def test_overlay_labels_say_only_what_differs(tmp_path: Path) -> None:
    from batchbench.report.plots import build_series, plot_title

    runs = [load_run(make_run(tmp_path / "base", name="cnn-base")),
            load_run(make_run(tmp_path / "head", name="cnn-head", speedup=1.25))]
    labels = [s.label for s in build_series(runs)]
    assert len(set(labels)) == len(labels)
    assert not any("NVIDIA A10G" in label for label in labels), labels
    assert all(label.startswith(("cnn-base: ", "cnn-head: ")) for label in labels)
    assert plot_title(runs).count("NVIDIA A10G") == 1
    same = [load_run(make_run(tmp_path / "a" / "20261125-101500")), load_run(make_run(tmp_path / "b" / "20261126"))]
    labels = [s.label for s in build_series(same)]
    assert len(set(labels)) == len(labels) and not any("cnn-a10g" in label for label in labels), labels


# ---------------------------------------------------------------- batchbench report

def test_report_command_works_on_a_copied_run_directory(run_dir: Path, tmp_path: Path) -> None:
    copy = tmp_path / "elsewhere" / "run"
    shutil.copytree(run_dir, copy)
    shutil.rmtree(run_dir)
    result = CliRunner().invoke(main, ["report", str(copy)])
    assert result.exit_code == 0, result.output
    assert "fit|precision=float32" in result.output and "samples/s per batch size" in result.output
    assert_png(copy / "throughput.png")
    assert "](memory.png)" in (copy / "report.md").read_text()


def test_report_with_only_results_csv(run_dir: Path) -> None:
    (run_dir / "run.json").unlink()
    result = CliRunner().invoke(main, ["report", str(run_dir / "results.csv"), "--out", str(run_dir / "r")])
    assert result.exit_code == 0, result.output
    assert_png(run_dir / "r" / "throughput.png")
    assert "best throughput" in (run_dir / "r" / "report.md").read_text()


def test_html_report_is_self_contained(run_dir: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(run_dir), "--format", "html"])
    assert result.exit_code == 0, result.output
    html = (run_dir / "report.html").read_text()
    images = re.findall(r'<img [^>]*src="([^"]+)"', html)
    assert len(images) == 4
    for src in images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1])[:8] == PNG_MAGIC
    assert not re.search(r'(src|href)="(?!data:)', html), "the report links to a file beside it"
    assert "<table>" in html and "largest batch that fits in memory is 704" in html


def make_length_run(run_dir: Path) -> Path:
    """A run with a sequence_length axis: fit and predict at two lengths, the longer out of memory
    at 128 (its largest batch is the largest that ran, marked +)."""
    from batchbench.lengths import frontier

    run_dir.mkdir(parents=True, exist_ok=True)
    writer, rows = ResultsWriter(run_dir), []
    for length, oom_at in ((128, None), (512, 128)):
        for mode, method in (("fit", ""), ("predict", "serve")):
            for batch in (8, 32, 128):
                status = "oom" if batch == oom_at else "ok"
                row = _row("lm", mode, method, batch, "float32", status, speedup=128 / length,
                           sequence_length=length)
                if status == "ok":
                    row["tokens_per_s"] = row["throughput_sps"] * length
                rows.append(row)
                writer.append(row)
    summary = summarize(rows, ["sequence_length"])
    summary["sequence_length_frontier"] = frontier(rows, summary["recommendations"], ["sequence_length"])
    write_json_atomic(run_dir / "run.json", {
        "schema_version": RESULTS_SCHEMA_VERSION, "batchbench_version": "0.1.0", "run_id": "lm-1", "name": "lm",
        "status": "complete", "config_resolved": {"sweep": {"batch_sizes": [8, 32, 128],
                                                           "sequence_length": [128, 512]}},
        "environment": {}, "summary": {"run_dir": str(run_dir), **summary}})
    return run_dir


def test_the_sequence_length_frontier_is_in_the_terminal_the_markdown_and_the_html(tmp_path: Path) -> None:
    from batchbench.report.lengths import TITLE, length_cells

    run_dir = make_length_run(tmp_path / "lm")
    entries = json.loads((run_dir / "run.json").read_text())["summary"]["sequence_length_frontier"]
    cells = length_cells(entries)
    assert len(cells) == 4 and ["fit", "512", "32+", "32"] == cells[1][:4]  # the OOM at 128 caps length 512
    terminal = CliRunner().invoke(main, ["report", str(run_dir), "--no-plots"])
    assert terminal.exit_code == 0, terminal.output
    assert TITLE in terminal.output
    markdown = (run_dir / "report.md").read_text()
    html = CliRunner().invoke(main, ["report", str(run_dir), "--no-plots", "--format", "html"])
    assert html.exit_code == 0, html.output
    page = (run_dir / "report.html").read_text()
    for row in cells:
        assert "| " + " | ".join(row) + " |" in markdown
        assert "".join(f'<td class="num">{c}</td>' if i else f"<td>{c}</td>" for i, c in enumerate(row)) in page
        assert all(c in terminal.output for c in row)
    assert "+: the largest size that ran" in markdown and "+: the largest size that ran" in page


@pytest.mark.parametrize("framework", [{"keras_backend": "jax", "jax": "0.10.2", "jax_devices": ["cuda:0"]},
                                       {"keras_backend": "torch", "torch": "2.9.0", "torch_devices": ["NVIDIA A10G"]}])
def test_a_run_on_another_backends_gpu_is_labelled_by_that_gpu(run_dir: Path, framework: dict) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    record["environment"]["framework"] = {"keras": "3.3.3", "tensorflow": "2.16.1", **framework}  # TF unimported
    write_json_atomic(run_dir / "run.json", record)
    assert load_run(run_dir).device == "NVIDIA A10G"
    record["environment"]["framework"] = {"keras": "3.3.3", "keras_backend": "jax", "jax_devices": ["cpu:0"]}
    write_json_atomic(run_dir / "run.json", record)
    assert load_run(run_dir).device == "CPU AMD EPYC 7R32"


def test_multi_run_overlay_labels_runs_by_name_and_device(tmp_path: Path) -> None:
    base = make_run(tmp_path / "base", name="cnn-base")
    head = make_run(tmp_path / "head", name="cnn-head", speedup=1.25)
    out = tmp_path / "overlay"
    result = CliRunner().invoke(main, ["report", str(base), str(head), "--out", str(out)])
    assert result.exit_code == 0, result.output
    for name in ("throughput", "latency", "memory", "quality"):
        assert_png(out / f"{name}.png")
    report = (out / "report.md").read_text()
    assert "cnn-base on NVIDIA A10G vs cnn-head on NVIDIA A10G" in report
    assert "## Run: cnn-base on NVIDIA A10G" in report and "## Run: cnn-head on NVIDIA A10G" in report
    assert not (base / "report.md").exists(), "a multi-run report must not write into the runs"


def test_two_runs_with_the_same_name_and_device_are_told_apart(tmp_path: Path) -> None:
    a = make_run(tmp_path / "a" / "20261125-101500")
    b = make_run(tmp_path / "b" / "20261126-090000")
    path = write_report([a, b], tmp_path / "out", plots=False)
    assert "(20261125-101500)" in path.read_text() and "(20261126-090000)" in path.read_text()


def test_multi_run_default_out_is_a_timestamped_report_folder(tmp_path: Path, monkeypatch) -> None:
    a, b = make_run(tmp_path / "a"), make_run(tmp_path / "b", name="other")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["report", str(a), str(b), "--no-plots"])
    assert result.exit_code == 0, result.output
    (folder,) = (tmp_path / "results").glob("report-*")
    assert re.fullmatch(r"report-\d{8}-\d{6}", folder.name)
    assert (folder / "report.md").exists()


@pytest.mark.parametrize("make_bad", [
    lambda p: p / "missing",
    lambda p: (p / "empty").mkdir() or p / "empty",
    lambda p: (p / "x.csv").write_text("a,b\n1,2\n") and p / "x.csv",
])
def test_bad_input_exits_2_with_a_message(tmp_path: Path, make_bad) -> None:
    result = CliRunner().invoke(main, ["report", str(make_bad(tmp_path))])
    assert result.exit_code == 2
    assert "error:" in result.output and "Traceback" not in result.output


def test_damaged_run_json_is_bad_input(run_dir: Path) -> None:
    (run_dir / "run.json").write_text("{not json")
    with pytest.raises(ResultsFormatError):
        load_run(run_dir)


def _report(*args: str):
    return CliRunner().invoke(main, ["report", *args])


def assert_bad_input(result) -> None:
    """Exit 2, one line that says what is wrong, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.output
    assert "Traceback" not in result.output and "\x1b" not in result.output


# ---------------------------------------------------------------- links planted in a run folder

@pytest.mark.parametrize("fmt", ["md", "html"])
def test_report_never_writes_through_a_planted_symlink(run_dir: Path, tmp_path: Path, fmt: str) -> None:
    victims = {}
    for name in ("report.md" if fmt == "md" else "report.html", "throughput.png", "memory.png"):
        victim = tmp_path / f"victim-{name}"
        victim.write_text("precious")
        (run_dir / name).symlink_to(victim)
        victims[name] = victim
    result = _report(str(run_dir), "--format", fmt)
    assert result.exit_code == 0, result.output
    for name, victim in victims.items():
        assert victim.read_text() == "precious", f"{name} wrote through the link into {victim}"
        assert not (run_dir / name).is_symlink(), f"{name} is still the planted link"
    assert_png(run_dir / "throughput.png")
    assert "## Recommendations" in (run_dir / "report.md").read_text() if fmt == "md" else True


def test_after_a_sweep_the_report_replaces_a_planted_link_too(run_dir: Path, tmp_path: Path) -> None:
    victim = tmp_path / "victim.png"
    victim.write_bytes(b"precious")
    (run_dir / "latency.png").symlink_to(victim)
    write_run_report(run_dir)
    assert victim.read_bytes() == b"precious"
    assert_png(run_dir / "latency.png")


def test_a_run_named_through_a_link_reports_into_the_folder_it_names(run_dir: Path, tmp_path: Path) -> None:
    latest = tmp_path / "latest"
    latest.symlink_to(run_dir, target_is_directory=True)
    result = _report(str(latest), "--no-plots")
    assert result.exit_code == 0, result.output
    assert (run_dir / "report.md").is_file() and not (run_dir / "report.md").is_symlink()


def test_an_out_folder_that_is_a_link_is_refused(run_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").symlink_to(elsewhere, target_is_directory=True)
    assert_bad_input(_report(str(run_dir), "--out", str(tmp_path / "out"), "--no-plots"))
    assert not list(elsewhere.iterdir())


# ---------------------------------------------------------------- bad input: exit 2, one line

def _rewrite_csv(run_dir: Path, edit) -> None:
    import csv
    import io

    with open(run_dir / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    header = list(rows[0])
    edit(rows)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, header, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    (run_dir / "results.csv").write_text(buf.getvalue())


def _edit_json(run_dir: Path, edit) -> None:
    record = json.loads((run_dir / "run.json").read_text())
    edit(record)
    (run_dir / "run.json").write_text(json.dumps(record))


@pytest.mark.parametrize("damage", [
    pytest.param(lambda rows: rows[3].update(status=""), id="empty-status"),
    pytest.param(lambda rows: rows[0].update(status="fine"), id="unknown-status"),
    pytest.param(lambda rows: rows[1].update(mode="train"), id="unknown-mode"),
    pytest.param(lambda rows: rows[1].update(batch_size="0"), id="zero-batch"),
    pytest.param(lambda rows: rows[1].update(batch_size="1e400"), id="infinite-batch"),
    pytest.param(lambda rows: rows[1].update(batch_size="nan"), id="nan-batch"),
])
def test_a_damaged_results_csv_is_bad_input(run_dir: Path, damage) -> None:
    _rewrite_csv(run_dir, damage)
    assert_bad_input(_report(str(run_dir), "--no-plots"))


@pytest.mark.parametrize("raised", [
    pytest.param(lambda: __import__("csv").Error("field larger than field limit (131072)"), id="csv.Error"),
    pytest.param(lambda: ResultsFormatError("results.csv: a cell over 128 KiB"), id="ResultsFormatError"),
])
def test_a_csv_cell_over_the_field_limit_is_bad_input(run_dir: Path, monkeypatch, raised) -> None:
    # The csv module raises _csv.Error for it; savedrun.iter_rows may turn it into ResultsFormatError.
    def read_rows(path, *args, **kwargs):
        raise raised()

    monkeypatch.setattr("batchbench.savedrun.iter_rows", read_rows)
    assert_bad_input(_report(str(run_dir), "--no-plots"))


def test_a_real_oversized_cell_is_bad_input_or_reported_shortened(run_dir: Path) -> None:
    _rewrite_csv(run_dir, lambda rows: rows[0].update(error="x" * 200_000))
    result = _report(str(run_dir), "--no-plots")
    if result.exit_code == 2:
        assert_bad_input(result)
    else:
        assert result.exit_code == 0, result.output
        assert max(len(line) for line in result.output.splitlines()) < 1000


@pytest.mark.parametrize("damage", [
    pytest.param(lambda r: r.update(environment=["not", "a", "dict"]), id="environment-list"),
    pytest.param(lambda r: r["environment"].update(nvml="on"), id="nvml-string"),
    pytest.param(lambda r: r["environment"]["nvml"].update(gpus={"name": "A10G"}), id="gpus-dict"),
    pytest.param(lambda r: r["environment"]["nvml"]["gpus"].append("A100"), id="gpu-string"),
    pytest.param(lambda r: r["environment"].update(memory_total_mib="lots"), id="memory-string"),
    pytest.param(lambda r: r["environment"].update(memory_total_mib=10**400), id="memory-huge-int"),
    pytest.param(lambda r: r["config_resolved"].update(sweep=[1]), id="sweep-list"),
    pytest.param(lambda r: r["config_resolved"]["sweep"].update(slo_ms="fast"), id="slo-string"),
    pytest.param(lambda r: r["summary"].update(recommendations={"fit": 512}), id="recommendation-int"),
    pytest.param(lambda r: r["summary"]["recommendations"]["fit|precision=float32"].update(
        best_throughput="512"), id="best-string"),
    pytest.param(lambda r: r["summary"].update(warnings="one"), id="warnings-string"),
    pytest.param(lambda r: r.update(name={"deep": 1}), id="name-dict"),
])
def test_a_run_json_field_of_the_wrong_type_is_bad_input(run_dir: Path, damage) -> None:
    _edit_json(run_dir, damage)
    assert_bad_input(_report(str(run_dir), "--no-plots"))


def test_a_deeply_nested_run_json_is_bad_input(run_dir: Path) -> None:
    text = (run_dir / "run.json").read_text()
    (run_dir / "run.json").write_text(text.rstrip()[:-1] + ', "deep": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert_bad_input(_report(str(run_dir), "--no-plots"))


def test_a_run_json_with_a_huge_integer_is_bad_input(run_dir: Path) -> None:
    text = (run_dir / "run.json").read_text()
    (run_dir / "run.json").write_text(text.rstrip()[:-1] + ', "params": 1' + "0" * 50_000 + "}")
    assert_bad_input(_report(str(run_dir), "--no-plots"))


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _paths(item, prefix + (key,))


def test_no_field_of_run_json_of_any_type_gives_a_traceback(run_dir: Path) -> None:
    """Every field the fixture's run.json has, replaced by each of a list, a string, a huge
    number and a dict: the report runs (exit 0) or says what is wrong (exit 2)."""
    original = json.loads((run_dir / "run.json").read_text())
    for path in _paths(original):
        if path[0] in ("schema_version",):
            continue
        for wrong in ([1], "x", 10**400, {"a": [1]}):
            record = json.loads(json.dumps(original))
            node = record
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = wrong
            (run_dir / "run.json").write_text(json.dumps(record))
            result = _report(str(run_dir), "--no-plots")
            assert result.exit_code in (0, 2), (path, wrong, result.output, result.exception)
            assert isinstance(result.exception, (SystemExit, type(None))), (path, wrong, result.exception)
            if result.exit_code == 2:
                assert len(result.output.strip().splitlines()) == 1, (path, result.output)


def test_report_never_imports_tensorflow(run_dir: Path) -> None:
    code = ("import sys\nfrom batchbench.cli import main\n"
            "try:\n    main(['report', sys.argv[1]])\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras', 'jax', 'torch'))\n"
            "assert not bad, bad\n"
            "import matplotlib\nassert 'matplotlib.pyplot' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code, str(run_dir)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert_png(run_dir / "throughput.png")


# ---------------------------------------------------------------- terminal bars

def test_bar_scales_to_the_best_in_eighths() -> None:
    assert bar(100, 100, width=10) == "█" * 10
    assert bar(50, 100, width=10) == "█" * 5
    assert bar(1, 100, width=10) == "▏"
    assert bar(0, 100, width=10) == ""


def test_throughput_bars_mark_best_and_failed_sizes(run_dir: Path) -> None:
    from rich.console import Console

    run = load_run(run_dir)
    group = run.groups()["fit|precision=float32"]
    console = Console(width=100, record=True, no_color=True)
    console.print(throughput_bars("fit|precision=float32", group))
    text = console.export_text()
    assert "best" in text and "oom" in text and "skipped" in text
    assert text.count("█") > 10


# ---------------------------------------------------------------- one real sweep

@pytest.mark.slow
def test_real_sweep_leaves_plots_and_report(tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run([str(Path(sys.executable).parent / "batchbench"), "sweep", "configs/quickstart.yaml",
                           "--out", str(out), "--batch-sizes", "16,64", "--repeats", "2", "--rounds", "1", "--modes", "fit,predict",
                           "--methods", "serve", "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert_png(out / "throughput.png")
    assert "](throughput.png)" in (out / "report.md").read_text()
    summary = json.loads((out / "run.json").read_text())["summary"]
    assert summary["status_counts"].get("ok")
