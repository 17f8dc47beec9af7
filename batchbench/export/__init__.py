"""Results where users already look: MLflow runs and TensorBoard's HParams dashboard.

Each tracker is one small exporter (export/mlflow.py, export/tensorboard.py) over the same
records the report renders (export/records.py): a parent for the run (run.json), a child per
point (a results.csv row). `Trackers` is what a command holds:

    trackers = open_trackers(mlflow="sqlite:///mlflow.db", tensorboard="tb")  # bad input: exit 2 now
    trackers.point(run_dir, row)     # as each point's row changes (after run.json is written)
    trackers.finish(run_dir)         # at the end: every saved row, the artifacts, the picks
    trackers.file(run_dir)           # a saved run at once (`batchbench report --mlflow`)

A sweep calls `point` where its pooled row of a point is updated (sweep.py), so children appear
as points finish. Another kind of run calls the same three with its own rows and the columns that
name a point, e.g. serving (serving/track.py: a child per batching setting, its step the load
points measured):

    SETTING = ("max_batch_size", "batch_timeout_ms", "num_batch_threads")
    trackers.point(run_dir, setting_row(rows, m, t), identity=SETTING, step="load_points")  # per load point
    trackers.finish(run_dir, points=setting_points(rows, answer))                          # at the end

(every other number of a row is a metric, every word a tag; run.json's summary.serving becomes
`serving.<key>` tags on the parent; every .csv/.json/.md/.png in the run folder an artifact). A tracker that fails is never a lost sweep: the run folder is written first, the
tracker is switched off at its first failure, and `warnings` says so once at the end."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, Protocol

from batchbench.export.records import IDENTITY, Point, RunRecord, point_of, run_record, saved_points

__all__ = ["Exporter", "Trackers", "file_runs", "open_trackers", "Point", "RunRecord", "point_of"]


class Exporter(Protocol):
    label: str     # how messages name it: "MLflow (sqlite:///x.db)"
    option: str    # the option that files a run later: "--mlflow sqlite:///x.db"

    def start(self, run: RunRecord) -> None: ...
    def point(self, run: RunRecord, point: Point) -> None: ...
    def finish(self, run: RunRecord, points: list[Point]) -> None: ...


class Trackers:
    """The exporters a run was asked for, each switched off at its first failure."""

    def __init__(self, exporters: Iterable[Exporter]):
        self.exporters = list(exporters)
        self.warnings: list[str] = []
        self.run: RunRecord | None = None
        self._off: set[int] = set()

    def __bool__(self) -> bool:
        return bool(self.exporters)

    def point(self, run_dir: Path, row: dict[str, Any], identity: tuple[str, ...] = IDENTITY,
              step: str = "rounds") -> None:
        """A point's row, new or updated; the first call also starts the parent from run.json."""
        if self.run is None:
            self._start(run_dir)
        point = point_of(row, identity, step)
        for exporter in self.exporters:
            self._call(exporter, "point", self.run, point)

    def finish(self, run_dir: Path, points: list[Point] | None = None) -> None:
        """Every saved point (results.csv's rows unless given), the parent's artifacts, tags and
        end state. Nothing to do when no point was ever sent (the run never started)."""
        if self.run is None:
            return
        self._finish(run_dir, points)

    def file(self, run_dir: Path, points: list[Point] | None = None) -> None:
        """A saved run filed whole (again: the parent found by its run_id is updated)."""
        self._start(run_dir)
        self._finish(run_dir, points)

    def _start(self, run_dir: Path) -> None:
        self.run = run_record(run_dir)
        for exporter in self.exporters:
            self._call(exporter, "start", self.run)

    def _finish(self, run_dir: Path, points: list[Point] | None) -> None:
        self.run = run_record(run_dir)  # run.json's status and summary as they ended
        if points is None:
            points = saved_points(run_dir)
        for exporter in self.exporters:
            self._call(exporter, "finish", self.run, points)

    def _call(self, exporter: Exporter, method: str, *args: Any) -> None:
        if id(exporter) in self._off:
            return
        try:
            getattr(exporter, method)(*args)
        except Exception as exc:  # noqa: BLE001 - a tracker never takes the run down
            self._off.add(id(exporter))
            run_dir = self.run.run_dir if self.run else "the run folder"
            reason = " ".join(str(exc).split())[:300] or type(exc).__name__
            self.warnings.append(f"{exporter.label}: {reason}; switched off for the rest of the run (the results "
                                 f"are safe in {run_dir}; file them later with `batchbench report {run_dir} "
                                 f"{exporter.option}`)")


def open_trackers(mlflow: str | None = None, tensorboard: str | Path | None = None, *,
                  mlflow_key: str = "--mlflow", tensorboard_key: str = "--tensorboard",
                  verbose: bool = False) -> Trackers:
    """The trackers asked for, checked now (before any trial): the MLflow extra installed and the
    URI one MLflow accepts, the TensorBoard folder writable. Bad input is a ConfigError (exit 2);
    a server that does not answer is found later, and is a warning."""
    exporters: list[Exporter] = []
    if mlflow:
        from batchbench.export.mlflow import MlflowExporter

        exporters.append(MlflowExporter(mlflow, key=mlflow_key, verbose=verbose))
    if tensorboard:
        from batchbench.export.tensorboard import TensorBoardExporter

        exporters.append(TensorBoardExporter(Path(tensorboard), key=tensorboard_key))
    return Trackers(exporters)


def file_runs(trackers: Trackers, paths: list[str | Path]) -> int:
    """`batchbench report RUN_DIR... --mlflow URI`: file each saved run; 1 when a tracker refused."""
    import sys

    from batchbench.serving.track import saved_setting_points

    for path in paths:
        run_dir = Path(path) if Path(path).is_dir() else Path(path).parent
        trackers.file(run_dir, saved_setting_points(run_dir))  # None for a sweep: results.csv's rows
    for warning in trackers.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not trackers.warnings:
        names = ", ".join(e.label for e in trackers.exporters)
        print(f"filed {len(paths)} run(s) in {names}", file=sys.stderr)
    return 1 if trackers.warnings else 0
