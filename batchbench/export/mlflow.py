"""MLflow: one parent run per sweep (found again by its `run_id` tag, so a resume or a second
`report --mlflow` updates it), one nested child run per point, created when the point's first
round ends and updated as later rounds end (its metrics' step is the rounds that measured it).

Only what changed is sent: a point filed again with the same figures sends nothing. Requests
have a short timeout and no retries (a tracker that is down must cost seconds, not minutes);
the first failure switches the exporter off (export/__init__.py)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from batchbench.errors import ConfigError
from batchbench.export.records import Point, RunRecord

# batchbench's distribution is keras-batchbench (PyPI's "batchbench" is another project).
EXTRA = "pip install 'keras-batchbench[mlflow]' (in a checkout: pip install -e '.[mlflow]')"
# Unless the user set them: seconds per request, and no retries (MLflow's defaults retry for minutes).
HTTP_DEFAULTS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "10", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
                 "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0"}
ROLE = "batchbench.role"
STATUS = {"ok": "FINISHED", "skipped": "KILLED"}  # anything else that ended a point: FAILED
RUN_STATUS = {"complete": "FINISHED", "interrupted": "KILLED", "running": "RUNNING"}


@dataclass
class Child:
    run_id: str
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    status: str | None = None


class MlflowExporter:
    def __init__(self, uri: str, key: str = "--mlflow", verbose: bool = False):
        for name, value in HTTP_DEFAULTS.items():
            os.environ.setdefault(name, value)
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise ConfigError(f"MLflow is not installed; install batchbench's mlflow extra: {EXTRA}", key=key) from None
        if not verbose:  # after the import: MLflow sets its own level when it loads
            for name in ("mlflow", "alembic"):
                logging.getLogger(name).setLevel(logging.WARNING)
        from mlflow.exceptions import MlflowException

        self.uri = uri
        self.label = f"MLflow ({uri})"
        self.option = f"--mlflow {uri}"
        try:
            # A database store is opened (and its tables made) here; a server is first asked later.
            self.client = MlflowClient(tracking_uri=uri)
        except MlflowException as exc:  # a URI MLflow refuses (unknown scheme, a bare file store)
            raise ConfigError(f"got {uri!r}, which MLflow refuses: {_first_sentences(str(exc))}", key=key) from None
        except (OSError, ValueError) as exc:  # a database file that cannot be made there
            raise ConfigError(f"got {uri!r}, which MLflow cannot open: {_first_sentences(str(exc))}", key=key) from None
        self.experiment_id: str | None = None
        self.parent_id: str | None = None
        self.children: dict[str, Child] = {}
        self.parent = Child("")

    # ---------------------------------------------------------------- the parent
    def start(self, run: RunRecord) -> None:
        client = self.client
        self.children = {}
        experiment = client.get_experiment_by_name(run.name)
        self.experiment_id = experiment.experiment_id if experiment else \
            client.create_experiment(run.name, artifact_location=self._artifact_location(run.name))
        found = client.search_runs([self.experiment_id], _filter(run_id=run.run_id, **{ROLE: "sweep"}), max_results=1)
        if found:
            parent = found[0]
            self.parent = Child(parent.info.run_id, dict(parent.data.params), dict(parent.data.metrics),
                                dict(parent.data.tags), parent.info.status)
            if run.status == "running" and parent.info.status != "RUNNING":
                client.update_run(parent.info.run_id, status="RUNNING")  # a resume: the same parent runs again
                self.parent.status = "RUNNING"
            self._find_children()
        else:
            created = client.create_run(self.experiment_id, run_name=run.run_id,
                                        tags={ROLE: "sweep", "run_id": run.run_id})
            self.parent = Child(created.info.run_id, status=created.info.status)
        self.parent_id = self.parent.run_id
        self._send(self.parent, params=run.params, tags=run.tags)

    def finish(self, run: RunRecord, points: list[Point]) -> None:
        for point in points:
            self.point(run, point)
        self._send(self.parent, tags={**run.tags, **run.recommendations})
        for path in run.artifacts:
            self.client.log_artifact(self.parent_id, str(path))
        status = RUN_STATUS.get(run.status, "FAILED")
        if status != self.parent.status:
            if status == "RUNNING":
                self.client.update_run(self.parent_id, status=status)
            else:
                self.client.set_terminated(self.parent_id, status)
            self.parent.status = status

    # ---------------------------------------------------------------- the children
    def point(self, run: RunRecord, point: Point) -> None:
        child = self.children.get(point.trial_id)
        if child is None:
            created = self.client.create_run(
                self.experiment_id, run_name=point.trial_id,
                tags={"mlflow.parentRunId": self.parent_id, ROLE: "point", "run_id": run.run_id,
                      "trial_id": point.trial_id})
            child = self.children[point.trial_id] = Child(created.info.run_id)
        self._send(child, params=point.params, metrics=point.metrics, tags=point.tags, step=point.step)
        status = STATUS.get(point.status, "FAILED")
        if status != child.status:
            self.client.set_terminated(child.run_id, status)
            child.status = status

    def _find_children(self) -> None:
        token = None
        while True:
            page = self.client.search_runs([self.experiment_id], _filter(**{"mlflow.parentRunId": self.parent.run_id}),
                                           max_results=1000, page_token=token)
            for found in page:
                trial_id = found.data.tags.get("trial_id")
                if trial_id:
                    self.children[trial_id] = Child(found.info.run_id, dict(found.data.params),
                                                    dict(found.data.metrics), dict(found.data.tags), found.info.status)
            token = page.token
            if not token:
                return

    # ---------------------------------------------------------------- sending what changed
    def _send(self, run: Child, params: dict[str, Any] | None = None, metrics: dict[str, float] | None = None,
              tags: dict[str, str] | None = None, step: int = 0) -> None:
        from mlflow.entities import Metric, Param, RunTag

        # A param once set cannot change (MLflow refuses): only new ones are sent.
        new_params = {k: str(v) for k, v in (params or {}).items() if k not in run.params}
        new_metrics = {k: v for k, v in (metrics or {}).items() if run.metrics.get(k) != v}
        new_tags = {k: v for k, v in (tags or {}).items() if run.tags.get(k) != v}
        if not (new_params or new_metrics or new_tags):
            return
        now = int(time.time() * 1000)
        items = ([Param(k, v) for k, v in new_params.items()], [Metric(k, v, now, step) for k, v in new_metrics.items()],
                 [RunTag(k, v) for k, v in new_tags.items()])
        for params_, metrics_, tags_ in _batches(*items):
            self.client.log_batch(run.run_id, metrics=metrics_, params=params_, tags=tags_)
        run.params.update(new_params)
        run.metrics.update(new_metrics)
        run.tags.update(new_tags)

    def _artifact_location(self, name: str) -> str | None:
        """A new experiment's artifacts beside a sqlite store (MLflow's default is ./mlruns in
        whatever folder the command ran from); a server chooses its own."""
        parsed = urlparse(self.uri)
        if parsed.scheme != "sqlite" or not self.uri.startswith("sqlite:///") or ":memory:" in self.uri:
            return None
        db = Path(self.uri[len("sqlite:///"):]).expanduser().resolve()
        return (db.parent / "mlartifacts" / name).as_uri()


def _filter(**tags: str) -> str:
    parts = []
    for key, value in tags.items():
        if "'" in value:
            raise ValueError(f"cannot search MLflow for a tag value with a quote: {value!r}")
        parts.append(f"tags.`{key}` = '{value}'")
    return " and ".join(parts)


def _batches(params: list, metrics: list, tags: list):
    """log_batch takes at most 100 params, 1000 metrics and 100 tags a call."""
    while params or metrics or tags:
        yield params[:100], metrics[:1000], tags[:100]
        params, metrics, tags = params[100:], metrics[1000:], tags[100:]


def _first_sentences(message: str, limit: int = 400) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[:limit - 3] + "..."
