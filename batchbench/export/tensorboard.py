"""TensorBoard's HParams dashboard: DIR/<run_id>/<trial_id>/ is one session per point (its
hparams -- mode, method, batch size, axes -- and its figures as scalars at step = rounds, so a
later round adds a step), and the experiment config at DIR names every hparam and metric the
sessions under DIR have, so its table and parallel-coordinates views show the sweep (several
sweeps filed into one DIR show side by side).

Written with TensorBoard's protos and record writer only: TensorBoard's own event file writer
imports TensorFlow, which never enters the controller. Files are appended to, never rewritten
(a TensorBoard watching DIR reads on); what a session file already holds is read back first,
so filing a run again adds nothing that is there."""

from __future__ import annotations

import io
import os
import re
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from batchbench.errors import ConfigError, OutputError
from batchbench.export.records import Point, RunRecord
from batchbench.runfiles import make_dir, write_atomic

SESSION_FILE = "events.out.tfevents.0.batchbench"
EXPERIMENT_FILE = "events.out.tfevents.0.batchbench-experiment"


@dataclass
class Session:
    path: Path
    started: bool = False
    ended: bool = False
    last: dict[str, tuple[int, float]] = field(default_factory=dict)  # tag -> (step, value) last written


class TensorBoardExporter:
    def __init__(self, logdir: Path, key: str = "--tensorboard"):
        self.logdir = Path(logdir).expanduser()
        self.label = f"TensorBoard ({logdir})"
        self.option = f"--tensorboard {logdir}"
        try:
            from tensorboard.plugins.hparams import summary_v2  # noqa: F401 - protos only, no TensorFlow
        except ImportError:
            raise ConfigError("TensorBoard is not installed; install batchbench's tensorboard extra: pip install "
                              "'keras-batchbench[tensorboard]' (in a checkout: pip install -e '.[tensorboard]')",
                              key=key) from None
        problem = writable(self.logdir)
        if problem:
            raise ConfigError(f"got {logdir}, {problem}, expected a folder where TensorBoard logs can be written",
                              key=key)
        self.sessions: dict[tuple[str, str], Session] = {}  # (run_id, trial_id) -> what its file holds

    def start(self, run: RunRecord) -> None:
        make_dir(self.logdir / safe_name(run.run_id))

    def point(self, run: RunRecord, point: Point) -> None:
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import summary_v2

        session = self._session(run, point.trial_id)
        now = time.time()
        events = []
        if not session.started:
            # A session's hparams are its summary metadata, which TensorBoard reads once: they are
            # what names the point, never a figure that a later round could change.
            events.append(_event(summary_v2.hparams_pb(point.params, trial_id=f"{run.run_id}/{point.trial_id}",
                                                       start_time_secs=now), now))
            session.started = True
        for tag, value in sorted(point.metrics.items()):
            written = (point.step, _float32(value))
            if session.last.get(tag) != written:
                events.append(_event(Summary(value=[Summary.Value(tag=tag, simple_value=value)]), now, point.step))
                session.last[tag] = written
        _append(session.path, events)

    def finish(self, run: RunRecord, points: list[Point]) -> None:
        from tensorboard.plugins.hparams import api_pb2

        for point in points:
            self.point(run, point)
            session = self._session(run, point.trial_id)
            if run.status == "complete" and not session.ended:
                # A session's status is read once too: written when the run is over, not before.
                status = api_pb2.STATUS_SUCCESS if point.status == "ok" else api_pb2.STATUS_FAILURE
                _append(session.path, [_event(_session_end(status), time.time())])
                session.ended = True
        self._write_experiment(points)

    # ---------------------------------------------------------------- files
    def _session(self, run: RunRecord, trial_id: str) -> Session:
        key = (run.run_id, trial_id)
        if key not in self.sessions:
            folder = make_dir(self.logdir / safe_name(run.run_id) / safe_name(trial_id))
            session = self.sessions[key] = Session(folder / SESSION_FILE)
            _read_session(session)
        return self.sessions[key]

    def _write_experiment(self, points: list[Point]) -> None:
        """The experiment config at DIR: every hparam value and metric of this run's points and of
        what an earlier run filed there, so sessions of either are not filtered out."""
        from tensorboard.plugins.hparams import summary_v2

        values: dict[str, set] = {}
        metrics: set[str] = set()
        path = self.logdir / EXPERIMENT_FILE
        _read_experiment(path, values, metrics)
        for point in points:
            for name, value in point.params.items():
                values.setdefault(name, set()).add(value)
            metrics.update(point.metrics)
        hparams = []
        for name in sorted(values):
            kinds = {float if isinstance(v, int | float) and not isinstance(v, bool) else type(v) for v in values[name]}
            domain = summary_v2.Discrete(sorted(values[name])) if len(kinds) == 1 else None
            hparams.append(summary_v2.HParam(name, domain))
        summary = summary_v2.hparams_config_pb(hparams, [summary_v2.Metric(m) for m in sorted(metrics)],
                                               time_created_secs=time.time())
        write_atomic(path, _records([_file_version(), _event(summary, time.time())]))


def writable(folder: Path) -> str | None:
    """Why TensorBoard logs cannot be written in `folder` (made if missing), or None."""
    try:
        make_dir(folder)
        probe = folder / f".batchbench-write-test-{os.getpid()}"
        probe.write_bytes(b"ok")
        probe.unlink()
    except (OSError, OutputError) as exc:
        return f"which cannot be written ({getattr(exc, 'strerror', None) or exc})"
    return None


def safe_name(name: str) -> str:
    return re.sub(r"[^\w.=+,-]", "_", name) or "_"


# ---------------------------------------------------------------- TensorBoard's records, without TensorFlow
def _event(summary, wall_time: float, step: int = 0):
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary)


def _file_version():
    from tensorboard.compat.proto import event_pb2

    return event_pb2.Event(wall_time=time.time(), file_version="brain.Event:2")


def _session_end(status: int):
    from tensorboard.compat.proto import summary_pb2
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    data = plugin_data_pb2.HParamsPluginData(
        session_end_info=plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time()))
    summary = summary_pb2.Summary()
    summary.value.add(tag=metadata.SESSION_END_INFO_TAG, metadata=metadata.create_summary_metadata(data),
                      tensor=metadata.NULL_TENSOR)
    return summary


def _records(events: list) -> bytes:
    from tensorboard.summary.writer.record_writer import RecordWriter

    buffer = io.BytesIO()
    writer = RecordWriter(buffer)
    for event in events:
        writer.write(event.SerializeToString())
    return buffer.getvalue()


def _append(path: Path, events: list) -> None:
    if not events:
        return
    fresh = not path.exists()
    with open(path, "ab") as fh:  # one write: a reader sees whole records or none of the new ones
        fh.write(_records(([_file_version()] if fresh else []) + events))


def read_events(path: Path) -> Iterator:
    """The events of one event file (TFRecord framing: length, its CRC, data, its CRC); a record
    cut short at the end is where the file ends."""
    from tensorboard.compat.proto import event_pb2

    try:
        with open(path, "rb") as fh:
            while len(header := fh.read(12)) == 12:
                (length,) = struct.unpack("<Q", header[:8])
                data = fh.read(length)
                if len(data) < length or len(fh.read(4)) < 4:
                    return
                yield event_pb2.Event.FromString(data)
    except FileNotFoundError:
        return


def _read_session(session: Session) -> None:
    from tensorboard.plugins.hparams import metadata

    for event in read_events(session.path):
        for value in event.summary.value:
            if value.tag == metadata.SESSION_START_INFO_TAG:
                session.started = True
            elif value.tag == metadata.SESSION_END_INFO_TAG:
                session.ended = True
            elif value.WhichOneof("value") == "simple_value":
                session.last[value.tag] = (event.step, value.simple_value)


def _read_experiment(path: Path, values: dict[str, set], metrics: set[str]) -> None:
    from tensorboard.plugins.hparams import metadata

    for event in read_events(path):
        for value in event.summary.value:
            if value.tag != metadata.EXPERIMENT_TAG:
                continue
            experiment = metadata.parse_experiment_plugin_data(value.metadata.plugin_data.content)
            for info in experiment.hparam_infos:
                found = values.setdefault(info.name, set())
                for item in info.domain_discrete.values:
                    kind = item.WhichOneof("kind")
                    if kind == "number_value":
                        found.add(int(item.number_value) if item.number_value.is_integer() else item.number_value)
                    elif kind in ("string_value", "bool_value"):
                        found.add(getattr(item, kind))
            metrics.update(info.name.tag for info in experiment.metric_infos)


def _float32(value: float) -> float:
    """A value as TensorBoard keeps it (simple_value is a 32-bit float)."""
    try:
        return struct.unpack("<f", struct.pack("<f", value))[0]
    except OverflowError:
        return value
