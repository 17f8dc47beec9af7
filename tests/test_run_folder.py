"""The run folder without TensorFlow: strict results reading, the durable trial record, the
lock, safe writes, the typed frame, run.json checks, the find-max plan and the speed picks."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from batchbench.errors import ConfigError, OutputError
from batchbench.plan import Group, GroupPlan, Skip
from batchbench.recommend import recommend_group
from batchbench.results import (
    RESULTS_CSV,
    ResultsFormatError,
    ResultsWriter,
    load_results,
    load_trial_records,
    read_rows,
    read_run_json,
    results_frame,
    save_trial_record,
    write_json_atomic,
)
from batchbench.rundir import LOCK_NAME, RunLock, make_run_dir
from batchbench.runfiles import open_append, write_atomic

GROUP = Group("fit", "", (), ())


def row(batch: int, status: str = "ok", **extra) -> dict:
    base = {"run_id": "r", "name": "n", "model": "mlp", "mode": "fit", "method": None, "batch_size": batch,
            "status": status, "trial_id": f"fit-b{batch}", "phase": "ladder",
            "throughput_sps": 100.0 * batch if status == "ok" else None}
    return {**base, **extra}


def written(tmp_path: Path, rows: list[dict]) -> Path:
    writer = ResultsWriter(tmp_path)
    for r in rows:
        writer.append(r)
    return tmp_path / RESULTS_CSV


# ---------------------------------------------------------------- find-max plan
def drive(plan: GroupPlan, fits) -> list[tuple[int, str, str]]:
    seen = []
    while (item := plan.next()) is not None:
        if isinstance(item, Skip):
            plan.record(item.trial, "skipped")
            continue
        status = "ok" if fits(item.batch_size) else "oom"
        seen.append((item.batch_size, item.phase, status))
        plan.record(item, status)
    return seen


@pytest.mark.parametrize("fits_up_to", [1, 5, 100, 600, 1023])
def test_find_max_searches_below_a_ladder_that_starts_too_high(fits_up_to):
    plan = GroupPlan(GROUP, [1024, 2048], max_samples=10**6, find_max=True, granularity=8)
    seen = drive(plan, lambda b: b <= fits_up_to)
    assert seen[0] == (1024, "ladder", "oom")
    assert plan.max_batch_size is not None and plan.max_batch_size <= fits_up_to
    assert fits_up_to - plan.max_batch_size < 8  # to the granularity (or below it, exact)
    assert seen[-1] == (plan.max_batch_size, "confirm", "ok") and plan.confirmed
    assert len(seen) <= 2 + 10 + 4  # halvings from 1024 plus a bisection: logarithmic, not a scan


def test_a_confirm_that_fails_with_nothing_smaller_tried_searches_on_below_it():
    plan = GroupPlan(GROUP, [2048], max_samples=10**6, find_max=True, granularity=512)
    seen = []
    while (item := plan.next()) is not None:
        if isinstance(item, Skip):
            continue
        b = item.batch_size
        # a short search trial fits up to 1024; a full pass only up to 600
        status = "ok" if (b <= 1024 if item.phase == "search" else b <= 600) else "oom"
        seen.append((b, item.phase, status))
        plan.record(item, status)
    assert (1024, "confirm", "oom") in seen
    assert plan.max_batch_size is not None and plan.max_batch_size <= 600 and plan.confirmed
    assert seen[-1] == (plan.max_batch_size, "confirm", "ok")


def test_find_max_says_when_even_batch_one_does_not_fit():
    plan = GroupPlan(GROUP, [64, 128], max_samples=10**6, find_max=True)
    seen = drive(plan, lambda b: False)
    assert [b for b, *_ in seen] == [64, 32, 16, 8, 4, 2, 1]
    assert plan.max_batch_size is None and plan.nothing_fits and plan.confirmed is None


def test_speed_picks_ignore_search_and_confirm_trials():
    rows = [row(64), row(128, throughput_sps=9000.0),
            row(80, phase="search", throughput_sps=99999.0), row(96, phase="confirm", throughput_sps=50000.0)]
    rec = recommend_group(rows)
    assert rec["best_throughput"] == 128  # a noisy search trial is not "the fastest"
    assert rec["largest_ok"] == 128
    only_search = recommend_group([row(80, phase="search")])
    assert "best_throughput" not in only_search and only_search["largest_ok"] == 80


# ---------------------------------------------------------------- results.csv read strictly
def test_a_hand_added_cell_refuses_resume_and_changes_nothing(tmp_path):
    path = written(tmp_path, [row(8), row(16)])
    lines = path.read_text().splitlines(keepends=True)
    lines[1] = lines[1].rstrip("\n") + ",extra\n"
    path.write_text("".join(lines))
    before = path.read_bytes()
    with pytest.raises(ResultsFormatError, match="line 2 has"):
        ResultsWriter(tmp_path)
    assert path.read_bytes() == before
    assert len(read_rows(path)) == 1  # a report still reads what it can


def test_a_last_row_lacking_only_its_newline_is_kept(tmp_path):
    path = written(tmp_path, [row(8), row(16)])
    path.write_bytes(path.read_bytes().rstrip(b"\n"))
    writer = ResultsWriter(tmp_path)
    assert [r["batch_size"] for r in writer.rows()] == [8, 16]
    writer.append(row(32))
    assert [r["batch_size"] for r in read_rows(path)] == [8, 16, 32]


def test_a_row_cut_short_is_dropped_and_its_record_brings_it_back(tmp_path):
    save_trial_record(tmp_path, "fit-b16-r1", row(16), {"throughput_sps": [1600.0, 1601.0]})
    path = written(tmp_path, [row(8), row(16)])
    text = path.read_text()
    path.write_text(text[: text.rindex("\n", 0, len(text) - 1) + 12])  # the last row, cut mid-line
    writer = ResultsWriter(tmp_path)
    assert [r["batch_size"] for r in writer.rows()] == [8]
    records = load_trial_records(tmp_path)
    assert records["fit-b16-r1"]["row"]["batch_size"] == 16
    assert records["fit-b16-r1"]["samples"]["throughput_sps"] == [1600.0, 1601.0]


def test_widening_the_header_keeps_every_row(tmp_path):
    path = written(tmp_path, [row(8), row(16)])
    ResultsWriter(tmp_path).append(row(32, val_accuracy=0.5))
    rows = read_rows(path)
    assert [r["batch_size"] for r in rows] == [8, 16, 32] and rows[2]["val_accuracy"] == 0.5


def test_a_cell_over_the_default_csv_field_limit_is_read(tmp_path):
    path = written(tmp_path, [row(8, error="x" * 200_000, status="error")])  # csv's default limit: 131072
    assert read_rows(path)[0]["error"] == "x" * 200_000


# ---------------------------------------------------------------- symlinks and modes
def test_no_write_follows_a_symlink_in_a_run_folder(tmp_path):
    target = tmp_path / "elsewhere.txt"
    target.write_text("precious")
    run = tmp_path / "run"
    run.mkdir()
    for name in (RESULTS_CSV, "worker.log"):
        (run / name).symlink_to(target)
    with pytest.raises(OutputError, match="symbolic link"):
        ResultsWriter(run)
    with pytest.raises(OutputError, match="symbolic link"):
        open_append(run / "worker.log")
    (run / "run.json").symlink_to(target)
    write_json_atomic(run / "run.json", {"a": 1})  # replaces the link itself
    assert target.read_text() == "precious" and not (run / "run.json").is_symlink()
    (run / "trials").symlink_to(tmp_path)
    with pytest.raises(OutputError):
        make_run_dir(run)


def test_new_run_files_get_the_umask_not_0600(tmp_path):
    old = os.umask(0o022)
    try:
        write_json_atomic(tmp_path / "run.json", {"a": 1})
        write_atomic(tmp_path / "report.md", "x")
    finally:
        os.umask(old)
    for name in ("run.json", "report.md"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644


# ---------------------------------------------------------------- the lock
def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    first = RunLock.acquire(tmp_path)
    with pytest.raises(ConfigError, match="in use by another batchbench"):
        RunLock.acquire(tmp_path)
    first.release()
    assert not (tmp_path / LOCK_NAME).exists()
    RunLock.acquire(tmp_path).release()


def test_a_stale_lock_is_taken_over(tmp_path):
    import socket
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (tmp_path / LOCK_NAME).write_text(f"{dead.stdout.strip()} {socket.gethostname()} 0\n")
    RunLock.acquire(tmp_path).release()


# ---------------------------------------------------------------- run.json
@pytest.mark.parametrize("content, says", [
    ('{"schema_version": 99}', "schema_version 99"),
    ('{"schema_version": "2"}', "schema_version"),
    ("[" * 5000 + "]" * 5000, "cannot be read"),
    ('{"schema_version": 2, "x": ' + "9" * 5000 + "}", "cannot be read"),
    ('{"schema_version": 2, "environment": [1, 2]}', "environment"),
    ("not json", "cannot be read"),
])
def test_run_json_that_this_version_cannot_read_is_a_clear_error(tmp_path, content, says):
    path = tmp_path / "run.json"
    path.write_text(content)
    with pytest.raises(ResultsFormatError, match=says):
        read_run_json(path)


# ---------------------------------------------------------------- pandas
def test_the_typed_frame_keeps_fit_rows_in_pivots(tmp_path):
    rows = [row(8), row(16), {**row(8), "mode": "predict", "method": "serve", "trial_id": "predict-serve-b8",
                              "stable": True, "consistent": False}]
    written(tmp_path, rows)
    frame = load_results(tmp_path)
    assert list(frame["method"]) == ["", "", "serve"]
    assert str(frame["batch_size"].dtype) == "Int64" and str(frame["stable"].dtype) == "boolean"
    pivot = frame.pivot_table(index="batch_size", columns=["mode", "method"], values="throughput_sps")
    assert ("fit", "") in pivot.columns
    fresh = results_frame(rows)
    assert list(fresh.columns) == list(frame.columns)
    assert dict(fresh.dtypes.astype(str)) == dict(frame.dtypes.astype(str))


def test_text_columns_stay_text(tmp_path):
    path = written(tmp_path, [row(8, model="1.0", name="true")])
    [back] = read_rows(path)
    assert back["model"] == "1.0" and back["name"] == "true"


def test_records_are_plain_json(tmp_path):
    save_trial_record(tmp_path, "fit-b8-r1", row(8), {"throughput_sps": [1.0]})
    data = json.loads((tmp_path / "trials" / "fit-b8-r1.result.json").read_text())
    assert data["row"]["trial_id"] == "fit-b8" and data["record_id"] == "fit-b8-r1"


# ---------------------------------------------------------------- the column spec
def test_the_readme_column_table_is_the_spec():
    from batchbench.columns import README_END, README_START, markdown_table

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = text[text.index(README_START) + len(README_START):text.index(README_END)]
    assert block.strip() == markdown_table().strip(), "run: python -m batchbench.columns --write"
