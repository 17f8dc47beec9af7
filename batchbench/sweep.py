"""The sweep: plan -> runner -> results, one trial at a time, nothing measured ever lost.

The loop lives here; the pieces it calls are small and pure where they can be: the run folder
(rundir), the memory budget (budget), row-making (rows), find-max's answer (frontier) and the
summary (summary). The worker is made by an injectable factory, so the loop is tested with
literal outcomes and no processes."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.backends import check_backends, check_devices, tensorflow_only_notes
from batchbench.budget import MemoryBudget, memory_budget
from batchbench.config import Config
from batchbench.config.settings import settings_hash
from batchbench.distributed import Distributed, check_distributed
from batchbench.envinfo import available_memory_bytes, busy_warning, git_info, host_environment
from batchbench.errors import BatchbenchError, InterruptedSweep, OutputError
from batchbench.frontier import frontier
from batchbench.plan import GroupPlan, Skip, Trial, build_groups
from batchbench.results import RUN_JSON, finite, save_trial_record, write_json_atomic
from batchbench.rounds import PooledRows, contenders, interval_of, precision_note, round_order, settled, wants_round
from batchbench.rows import RowContext, base_row, ending, preflight_result, row_from_outcome
from batchbench.rundir import RunStart, ended_by, invocation, now_iso, open_run
from batchbench.runfiles import install_handler, restore_handlers
from batchbench.runner import JobOutcome, Worker, WorkerError, worker_env
from batchbench.shard import Shard, check_shard, resumed_shard, shard_points
from batchbench.summary import slow_combinations, sweep_summary
from batchbench.version import RESULTS_SCHEMA_VERSION, __version__

__all__ = ["Sweep", "SweepOptions", "SweepOutcome"]

WorkerFactory = Callable[[str, Path, bool, str], Worker]  # (backend, log path, verbose, config folder)


def make_worker(backend: str, log_path: Path, verbose: bool, base_dir: str) -> Worker:
    """The real worker: a fork server with the backend's framework imported once."""
    return Worker(worker_env(backend, verbose, extra_path=base_dir), log_path=log_path, verbose=verbose)


@dataclass
class SweepOptions:
    out: Path | None = None
    resume: Path | None = None
    verbose: bool = False
    progress: Any = None            # a callable(event: dict) for the terminal, or None
    write_fault: Callable | None = None  # tests inject OSError mid-run here
    distributed: Distributed | None = None
    peer_failed: Callable[[], str | None] | None = None  # the local launcher's view of its peers
    shard: Shard | None = None      # run only this shard of the plan (--shard I/N); a resume keeps its own
    worker_factory: WorkerFactory = make_worker  # tests inject a fake that returns literal outcomes
    observer: Any = None            # export.Trackers: each point's pooled row once its files are written


@dataclass
class SweepOutcome:
    run_dir: Path
    rows: list[dict]
    summary: dict
    run_record: dict
    warnings: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        measured = [r for r in self.rows if r["status"] in ("ok", "oom")]
        failed = [r for r in self.rows if r["status"] in ("error", "timeout")]
        return 0 if measured or not failed else 1


class Sweep:
    def __init__(self, config: Config, options: SweepOptions | None = None, raw_config: Any = None):
        self.config = config
        self.options = options or SweepOptions()
        self.raw_config = raw_config
        self.start: RunStart | None = None
        self.run_dir: Path | None = None
        self.env: dict = {}
        self.preflight: dict | None = None
        self.budget: MemoryBudget | None = None
        self.context: RowContext | None = None
        self.status = "starting"
        self.error: str | None = None                    # what ended a failed run, in one line
        self.record: dict = {}
        self.workers: dict[str, Worker] = {}
        self.pooled = PooledRows()  # each point's rounds and its one pooled row
        self.rows: list[dict] = self.pooled.rows
        self.frontier: dict[str, dict] = {}
        self.warnings: list[str] = []
        self.noisy: dict[str, float] = {}
        self.unstable: list[str] = []
        self.noise: dict | None = None
        self.interrupted = 0
        self.current_worker: Worker | None = None
        self.jobs = 0  # worker jobs started: each multi-process job joins on its own port
        self.identity: dict = {}  # what run.json says the run is; the config does not change during a sweep
        self.round_oom: dict[str, int] = {}              # group key -> smallest size out of memory in a later round
        self.precision = ""                              # why the rounds stopped, in words
        self.index = 0
        self.total = 0
        self.stopped = False                             # a multi-process run stops at a failed trial
        self.shard: Shard | None = self.options.shard
        self.started = time.monotonic()

    # ------------------------------------------------------------------ set-up
    def worker(self, backend: str) -> Worker:
        if backend not in self.workers:
            self.workers[backend] = self.options.worker_factory(backend, self.run_dir / "worker.log",
                                                                self.options.verbose, self.config.base_dir)
        return self.workers[backend]

    def _job_config(self, job_index: int) -> dict:
        data = self.config.resolved()
        data["_base_dir"] = self.config.base_dir
        dist = self.options.distributed
        if dist:
            data["_distributed"] = {"coordinator": dist.coordinator(job_index), "num_processes": dist.num_processes,
                                    "process_id": dist.process_id, "timeout_s": dist.timeout_s}
            # Equal step counts in every process, or the collectives deadlock: no time rule.
            data["sweep"]["min_time_s"] = 0.0
        return data

    def _next_job_config(self) -> dict:
        config = self._job_config(self.jobs)
        self.jobs += 1
        return config

    def _preflight(self) -> dict:
        """Build the model and data once in a worker: a bad model or data is a config error
        (exit 2) before any trial runs, not a row of errors."""
        dist = self.options.distributed
        if dist:
            check_distributed(self.config, dist, self.options.resume)
        label = self.config.source_file or "config"
        first_axes = {axis: values[0] for axis, values in self.config.axes().items()}
        log = self.run_dir / "trials" / "preflight.log"
        try:
            outcome = self._job(self.worker(first_axes["backend"]),
                                {"op": "preflight", "config": self._next_job_config(), "axes": first_axes},
                                timeout_s=self.config.sweep.trial_timeout_s, log_path=log)
        except WorkerError as exc:
            raise BatchbenchError(f"{exc}; see {self.run_dir / 'worker.log'}") from None
        if self.interrupted:
            raise self._interrupted()
        result = preflight_result(outcome, log, label, self.options.verbose, dist)
        log.unlink(missing_ok=True)
        return result

    # ------------------------------------------------------------------ run
    def run(self) -> SweepOutcome:
        dist = self.options.distributed
        if not self.options.resume:  # before the run folder exists: a refused shard leaves nothing behind
            check_shard(build_groups(self.config), self.shard, self.config.sweep.find_max)
        self.start = open_run(self.config, self.options.out, self.options.resume,
                              process_id=dist.process_id if dist else 0, write_fault=self.options.write_fault)
        self.run_dir = self.start.run_dir
        done = self.start.done
        settings = self.config.measured_settings()
        self.identity = {"config_resolved": self.config.resolved(), "config_hash": settings_hash(settings),
                         "measured_settings": settings,
                         "git": git_info(self.config.base_dir) or git_info(".")}
        handlers = self._install_signals()
        try:
            if self.options.resume:
                self.shard = resumed_shard(self.options.shard, self.start.shard_record, self.run_dir)
            if self.shard:
                mine, every = sum(len(s) for _, s in self._shard_points()), \
                    len(build_groups(self.config)) * len(self.config.sweep.batch_sizes)
                self._emit(event="note", text=f"shard {self.shard} ({self.shard.source}): {mine} of {every} points")
                if not mine:
                    self.warnings.append(f"shard {self.shard} has no points to run: the sweep has {every} "
                                         f"point(s) for {self.shard.count} shards")
            if self.start.imports:
                self._emit(event="note", text=f"resuming {self.run_dir} imports {', '.join(self.start.imports)} "
                                              f"(modules looked up beside {self.config.base_dir})")
            self.env = host_environment()
            warning = busy_warning(self.env)
            if warning:
                self.warnings.append(warning)
            check_backends(self.config)
            check_devices(self.config, self.env.get("nvml") or {})
            for note in tensorflow_only_notes(self.config):
                self.warnings.append(note)
                self._emit(event="note", text=note)
            self._emit(event="preflight", run_dir=str(self.run_dir), resumed=len(done))
            self.preflight = self._preflight()
            device = self.preflight.get("device") or "cpu"
            self.budget = memory_budget(self.config, self.env, device, available_memory_bytes())
            self.context = RowContext(self.start.run_id, self.config.name, self.config.model.label, self.preflight,
                                      self.budget, self.config.sweep.trial_timeout_s, self.config.sweep.target)
            convolutional = self.preflight.get("has_conv")
            if convolutional is None and self.config.model.builtin:
                convolutional = self.config.model.builtin == "cnn"
            self.warnings += slow_combinations(self.config, device, convolutional)
            self.warnings += self.preflight.pop("notes", None) or []  # e.g. a batched tf.data pipeline, rebatched
            self.env["framework"] = self.preflight.pop("framework", {})
            self.status = "running"
            self._write_run_json()
            self._run_groups(done)
            self._noise_scale()
            self.status = "complete"
        except BaseException as exc:
            self.status, self.error = ended_by(exc)
            raise
        finally:
            restore_handlers(handlers)
            for worker in self.workers.values():
                worker.close()
            if self.preflight is not None:
                try:
                    self._write_run_json()
                except (OSError, OutputError):
                    pass
            self.start.lock.release()
        return SweepOutcome(self.run_dir, self.rows, self.summary(), self.record, self.warnings)

    def _shard_points(self) -> list[tuple]:
        return shard_points(build_groups(self.config), self.config.sweep.batch_sizes, self.shard)

    def _plans(self) -> list[GroupPlan]:
        sweep = self.config.sweep
        return [GroupPlan(group, sizes,
                          self.preflight["train_samples"] if group.mode == "fit" else self.preflight["samples"],
                          find_max=sweep.find_max, granularity=sweep.search_granularity)
                for group, sizes in self._shard_points()]

    def _run_groups(self, done: dict[str, dict]) -> None:
        """Round 1 group by group (the ordered ladder), then the later rounds interleaved, then
        find-max's search and confirm trials, which stay sequential and single-round."""
        plans = self._plans()
        spec = self.config.sweep.rounds
        self.total = sum(p.ladder_size for p in plans) * spec.min
        self._emit(event="start", total=self.total, run_dir=str(self.run_dir))
        held: dict[int, Trial | Skip] = {}  # each plan's first search trial, run after the rounds
        for n, plan in enumerate(plans):
            while (item := plan.next()) is not None:
                trial = item.trial if isinstance(item, Skip) else item
                if trial.phase != "ladder":
                    held[n] = item
                    break
                status = self._point(trial, done, skip=item.reason if isinstance(item, Skip) else None)
                plan.record(trial, status)
                if self.stopped:
                    return
                if status != "ok":
                    self.total -= spec.min - 1  # a point that did not run ok gets no more rounds
                    self._emit(event="total", total=self.total)
        self._later_rounds(plans, done)
        if self.stopped:
            return
        for n, plan in enumerate(plans):
            later_oom = self.round_oom.get(plan.group.key)
            item = plan.out_of_memory_later(later_oom) if later_oom is not None else held.get(n)
            while item is not None:
                trial = item.trial if isinstance(item, Skip) else item
                self.total += 1
                self._emit(event="total", total=self.total)
                plan.record(trial, self._point(trial, done, skip=item.reason if isinstance(item, Skip) else None))
                if self.stopped:
                    return
                item = plan.next()
            if plan.find_max:
                self.frontier[plan.group.key] = frontier(plan, self.rows, self.budget, self.config.sweep.margin)
        if self.rows:
            self.start.writer.replace_all(self.rows)  # a resume that ran nothing still mends results.csv

    def _later_rounds(self, plans: list[GroupPlan], done: dict[str, dict]) -> None:
        spec = self.config.sweep.rounds
        adaptive = not self.options.distributed  # every process must run the same trials
        points = [Trial(plan.group, b) for plan in plans for b in sorted(plan.batch_sizes)
                  if self.pooled.status(Trial(plan.group, b).trial_id) == "ok"]
        why = ""
        for number in range(2, spec.max + 1):
            contending = contenders([self.pooled.row(t.trial_id) for t in points], *self._pick_inputs())
            due = [t for t in points if wants_round(self.pooled.by_point.get(t.trial_id, []), number, spec, adaptive)
                   and (number <= spec.min or t.trial_id in contending)]
            if not due:
                break
            budget = self.config.sweep.max_time_s
            if budget and number > spec.min and time.monotonic() - self.started > budget:
                why = f"; stopped adding rounds at sweep.max_time_s={budget:g}"
                break
            self.total += len(due) if number > spec.min else 0  # the first min rounds were planned at the start
            self._emit(event="total", total=self.total)
            by_group: dict[str, list[Trial]] = {}
            for trial in round_order(due, number, self.config.sweep.seed):
                by_group.setdefault(trial.group.key, []).append(trial)
            for key, trials in by_group.items():
                cap = self.round_oom.get(key)
                runnable = [t.in_round(number) for t in trials if cap is None or t.batch_size <= cap]
                self.total -= len(trials) - len(runnable)  # above an OOM of an earlier round: not run again
                statuses = self._shared_round(runnable, done) if self._shares_rounds() else None
                if statuses is None:  # one process per point: not shared, or the shared process failed
                    statuses = self._round_alone(runnable, done, key)
                if self.stopped:
                    return
                for trial, status in zip(runnable, statuses, strict=True):
                    if status == "oom":
                        self._round_oom_at(key, trial.batch_size)
                    elif status is None:
                        self.total -= 1  # not run: above this round's OOM, or the run stopped
            self._emit(event="total", total=self.total)
        intervals = {tid: interval_of(rows) for tid, rows in self.pooled.by_point.items()
                     if rows and rows[0].get("phase") in (None, "ladder")}
        note, reached = precision_note(intervals, spec,
                                       settled([self.pooled.row(t.trial_id) for t in points], *self._pick_inputs()))
        if note:
            self.precision = note + why
            self._emit(event="note", text=f"rounds: {self.precision}")
            if not reached:
                self.warnings.append(f"rounds: {self.precision}")

    def _pick_inputs(self) -> tuple[list[str], float | None]:
        """What the groups' picks depend on besides the rows: the varying axes and the SLO."""
        return self.config.varying_axes(), self.config.sweep.slo_ms

    def _round_alone(self, trials: list[Trial], done: dict[str, dict], key: str) -> list[str | None]:
        """One later round of one group's points, one process each in the given order; a size
        above an OOM met earlier in this round is not run (None). Stops at a stop."""
        statuses: list[str | None] = []
        for trial in trials:
            cap = self.round_oom.get(key)
            statuses.append(self._point(trial, done) if cap is None or trial.batch_size <= cap else None)
            if self.stopped:
                break
            if statuses[-1] == "oom":
                self._round_oom_at(key, trial.batch_size)
        return statuses + [None] * (len(trials) - len(statuses))

    def _round_oom_at(self, key: str, batch_size: int) -> None:
        """A size of group `key` ran out of memory in this round: no larger size runs in it."""
        self.round_oom[key] = min(batch_size, self.round_oom.get(key) or batch_size)

    def _shares_rounds(self) -> bool:
        """Whether a later round of a group runs its points in one shared process (rounds.py's
        doc): not in a multi-process run (every process must run the same jobs), nor under a
        memory cap the user set (several sizes in one process would cross it sooner)."""
        sweep = self.config.sweep
        return sweep.rounds.shared and not self.options.distributed and not sweep.memory_limit \
            and not sweep.device_memory_limit and not sweep.find_max

    def _shared_round(self, trials: list[Trial], done: dict[str, dict]) -> list[str | None] | None:
        """One later round of one group's points in one trial process (worker job._measure_shared);
        each point's round row is recorded as a single trial's is, and points kept from an
        earlier session are taken as they are. None, with nothing recorded, when fewer than two
        points are left to run. When the shared process failed as a whole (it crashed, ran out
        of memory or time) the sizes it finished before are recorded and the rest run one
        process each, so that a failure is put on the size that caused it; a Ctrl-C keeps the
        sizes it finished too (the process reports each size as it ends)."""
        if self.interrupted:
            raise self._interrupted()
        todo = [t for t in trials if t.record_id not in done]
        if len(todo) < 2:
            return None
        self._emit(event="trial", index=self.index + 1, total=self.total, trial=todo[0])
        results = self._run_shared(todo)
        statuses: dict[str, str | None] = {}
        rest = []
        for trial in trials:  # every finished size is recorded, even after a Ctrl-C
            if trial.record_id in done:
                statuses[trial.record_id] = self._kept(trial, done)
            elif trial.record_id in results:
                self.index += 1
                row, samples = results[trial.record_id]
                statuses[trial.record_id] = self._record(trial, row, samples)
            else:
                rest.append(trial)
            if self.stopped:
                break
        if self.interrupted:
            raise self._interrupted()
        if rest and not self.stopped:
            key = trials[0].group.key
            for trial in trials:  # the sizes left run under this round's OOM so far
                if statuses.get(trial.record_id) == "oom":
                    self._round_oom_at(key, trial.batch_size)
            statuses.update(zip((t.record_id for t in rest), self._round_alone(rest, done, key), strict=True))
        return [statuses.get(t.record_id) for t in trials]

    def _run_shared(self, trials: list[Trial]) -> dict[str, tuple[dict, dict | None]]:
        """Each finished trial's (row, samples) from one shared process: every trial's, or, when
        the process failed as a whole or was interrupted, those of the sizes it finished first."""
        first = trials[0]
        worker = self.worker(dict(first.group.axes)["backend"])
        log_path = self.run_dir / "trials" / f"{first.trial_id}-shared-r{first.round}.log"
        request = self._trial_request(first, shared=[t.batch_size for t in trials])
        timeout = self.config.sweep.trial_timeout_s
        started = time.perf_counter()
        try:
            outcome = self._job(worker, request, timeout_s=timeout * len(trials) if timeout else None,
                                memory_cap_bytes=self.budget.cap_bytes, log_path=log_path)
        except WorkerError:
            return {}
        wall = time.perf_counter() - started
        result = outcome.result or {}
        # Every size the process finished is a measurement: all of them ("ok"), or those it
        # reported as it went before it failed or was ended ("partial").
        shared = (result.get("shared") or [])[:len(trials)] if result.get("status") in ("ok", "partial") else []
        whole = result.get("status") == "ok" and len(shared) == len(trials)
        out = {}
        for trial, one in zip(trials, shared):
            measured = (one.get("measurement") or {}).get("wall_s")
            made = row_from_outcome(trial, JobOutcome(result=one, returncode=outcome.returncode),
                                    measured if measured is not None else wall / len(shared), self.context,
                                    available_bytes=available_memory_bytes())
            made.row["shared_round"] = True
            if made.unstable:
                self.unstable.append(trial.record_id)
            out[trial.record_id] = (made.row, made.samples)
        if whole and not self.options.verbose and all(row["status"] == "ok" for row, _ in out.values()):
            log_path.unlink(missing_ok=True)
        return out

    def _point(self, trial: Trial, done: dict[str, dict], skip: str | None = None) -> str:
        """Run (or take from an earlier session) one round of one point; returns the status of
        that round-trial."""
        if self.interrupted:
            raise self._interrupted()
        if trial.record_id in done:
            return self._kept(trial, done)
        self.index += 1
        if skip is not None:
            row, samples = base_row(trial, self.context, status="skipped", error=skip), None
        else:
            self._emit(event="trial", index=self.index, total=self.total, trial=trial)
            row, samples = self._run_trial(trial)
        if self.interrupted:
            raise self._interrupted()
        return self._record(trial, row, samples)

    def _kept(self, trial: Trial, done: dict[str, dict]) -> str:
        """A round-trial an earlier session finished: pooled as it is, not run again."""
        self.index += 1
        row = done[trial.record_id]
        self.pooled.add(trial.trial_id, trial.round, row, self.start.samples.get(trial.record_id))
        self._done(trial, row, resumed=True)
        return row["status"]

    def _record(self, trial: Trial, row: dict, samples: dict | None) -> str:
        """A round-trial's row is final: write it durably, pool it, tell the terminal."""
        row["round"] = trial.round
        row["finished_at"] = now_iso()
        # The durable unit first (row and samples in one atomic file), then results.csv, then run.json.
        save_trial_record(self.run_dir, trial.record_id, row, samples)
        self.pooled.add(trial.trial_id, trial.round, row, samples)
        self.start.writer.replace_all(self.rows)
        self._write_run_json()
        self._done(trial, row)
        if self.options.distributed and row["status"] in ("error", "timeout"):
            # A process that failed leaves the others waiting at the next join: stop here.
            self.warnings.append(f"stopped after {trial.record_id} failed ({row['error']}): the other "
                                 "processes of a multi-process run cannot go on without it")
            self.stopped = True
        return row["status"]

    def _done(self, trial: Trial, row: dict, **extra) -> None:
        """A round-trial's files are written: the terminal hears of it, the trackers get the
        point's pooled row (a child run appears, or is updated after a later round)."""
        self._emit(event="done", index=self.index, total=self.total, row=row, **extra)
        if self.options.observer:
            self.options.observer.point(self.run_dir, self.pooled.row(trial.trial_id))

    def _noise_scale(self) -> None:
        """The critical batch size, estimated once per sweep when training quality is asked for."""
        sweep = self.config.sweep
        if "fit" not in sweep.modes or not (sweep.epochs or sweep.target) or self.interrupted:
            return
        if self.options.distributed or (self.shard and self.shard.index != 1):
            return  # a sweep-level job: shard 1 runs it, and merge takes its copy
        if self.start.previous_noise is not None:
            self.noise = self.start.previous_noise
            return
        axes = {axis: values[0] for axis, values in self.config.axes().items()}
        self._emit(event="note", text="estimating the gradient noise scale")
        outcome = self._job(self.worker(axes["backend"]),
                            {"op": "noise_scale", "config": self._next_job_config(), "axes": axes},
                            timeout_s=sweep.trial_timeout_s, log_path=self.run_dir / "trials" / "noise-scale.log")
        if self.interrupted:
            raise self._interrupted()
        result = outcome.result or {}
        if result.get("status") != "ok":
            self.warnings.append(f"the gradient noise scale could not be estimated: "
                                 f"{result.get('error') or ending(outcome) or 'unknown failure'}")
            return
        self.noise = {k: v for k, v in result.items() if k != "status"}
        self._write_run_json()

    def _job(self, worker: Worker, request: dict, **kw) -> JobOutcome:
        """Run one worker job that Ctrl-C can end."""
        self.current_worker = worker
        try:
            return worker.run(request, **kw)
        finally:
            self.current_worker = None

    def _run_trial(self, trial: Trial) -> tuple[dict, dict | None]:
        worker = self.worker(dict(trial.group.axes)["backend"])
        log_path = self.run_dir / "trials" / f"{trial.record_id}.log"
        request = self._trial_request(trial)
        self.current_worker = worker
        started = time.perf_counter()
        peer_note: list[str] = []

        def watch_peers() -> None:
            if self.options.peer_failed and not peer_note:
                reason = self.options.peer_failed()
                if reason:
                    peer_note.append(reason)
                    worker.interrupt()

        try:
            outcome = worker.run(request, timeout_s=self.config.sweep.trial_timeout_s,
                                 memory_cap_bytes=self.budget.cap_bytes, log_path=log_path, on_tick=watch_peers)
        except WorkerError as exc:  # the server itself failed: this trial is an error, the next gets a new one
            outcome = JobOutcome(result={"status": "error", "error": str(exc)}, returncode=None)
        self.current_worker = None
        made = row_from_outcome(trial, outcome, time.perf_counter() - started, self.context,
                                available_bytes=available_memory_bytes())
        row = made.row
        if made.noisy_cv is not None and self.config.sweep.rounds.max == 1:
            self.noisy[trial.record_id] = made.noisy_cv  # with rounds, the interval over rounds says it
        if made.unstable:
            self.unstable.append(trial.record_id)
        if peer_note and row["status"] != "ok":
            row.update(status="error", error=f"{peer_note[0]}; this process's trial was ended")
        if row["status"] == "ok" and not self.options.verbose:
            log_path.unlink(missing_ok=True)
        return row, made.samples

    def _trial_request(self, trial: Trial, shared: list[int] | None = None) -> dict:
        """The worker's trial job for one round-trial, or with `shared` for a shared round of
        those batch sizes (trial is its first)."""
        return {"op": "trial", "config": self._next_job_config(),
                "trial": {"mode": trial.mode, "method": trial.method, "batch_size": trial.batch_size,
                          "shared": shared, "axes": dict(trial.group.axes), "phase": trial.phase,
                          "round": trial.round,
                          # the consistency check once per point: its first round
                          "reference_path": str(self._reference_path(trial))
                          if trial.mode == "predict" and trial.round == 1 else None,
                          # the group's smallest size, also where a shard holds only larger ones
                          "reference_batch_size": min(self.config.sweep.batch_sizes)}}

    def _reference_path(self, trial: Trial) -> Path:
        key = trial.group.key.replace("/", "_").replace("|", "_").replace("=", "-")
        return self.run_dir / "trials" / f"reference-{key}.npy"

    # ------------------------------------------------------------------ records
    def summary(self) -> dict:
        summary = sweep_summary(self.config, self.rows, self.frontier, self.noise, self.warnings, self.noisy,
                                self.unstable, str(self.run_dir))
        if self.precision:
            summary["rounds"] = self.precision
        return summary

    def _write_run_json(self) -> None:
        self.record = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "batchbench_version": __version__,
            "run_id": self.start.run_id,
            "name": self.config.name,
            "status": self.status,
            "error": self.error,
            "argv": sys.argv,
            "config_file": self.config.source_file,
            "base_dir": self.config.base_dir,
            "config": self.raw_config,
            **self.identity,
            "environment": self.env,
            "model_info": self.preflight,
            "started_at": self.start.started_at,
            "ended_at": now_iso() if self.status != "running" else None,
            "samples": self.pooled.samples,
            "rounds": self.pooled.rounds,
            "noise_scale": self.noise,
            "shard": self.shard.to_record() if self.shard else None,
            # what summary() is made from beside the rows, so `batchbench merge` makes it the same way
            "summary_inputs": {"frontier": self.frontier, "warnings": self.warnings, "noisy": self.noisy,
                               "unstable": self.unstable},
            "summary": self.summary(),
        }
        try:
            write_json_atomic(self.run_dir / RUN_JSON, finite(self.record))
        except OSError as exc:
            raise OutputError(f"cannot write {self.run_dir / RUN_JSON}: {exc.strerror or exc}") from None

    def _emit(self, **event) -> None:
        if self.options.progress:
            self.options.progress(event)

    # ------------------------------------------------------------------ signals
    def _install_signals(self) -> dict:
        def handler(signum, frame):
            self.interrupted += 1
            if self.interrupted > 1:
                os._exit(130)  # a second Ctrl-C stops at once
            if self.current_worker:
                self.current_worker.interrupt()

        return install_handler(handler)

    def _interrupted(self) -> InterruptedSweep:
        return InterruptedSweep(
            f"interrupted: {sum(map(len, self.pooled.by_point.values()))} finished round-trial(s) of "
            f"{len(self.rows)} point(s) kept in {self.run_dir}\n"
            f"resume with: {invocation()} sweep --resume {self.run_dir}")
