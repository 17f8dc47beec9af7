"""The sweep: plan -> runner -> results, one trial at a time, nothing measured ever lost."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from batchbench import DISTRIBUTION, RESULTS_SCHEMA_VERSION, __version__
from batchbench.config import Config
from batchbench.envinfo import available_memory_bytes, busy_warning, git_info, host_environment
from batchbench.errors import BatchbenchError, ConfigError, InterruptedSweep, OutputError
from batchbench.plan import GroupPlan, Skip, Trial, build_groups
from batchbench.recommend import group_key, summarize
from batchbench.results import (
    RESULTS_CSV,
    RUN_JSON,
    ResultsWriter,
    load_trial_records,
    read_run_json,
    save_trial_record,
    write_json_atomic,
)
from batchbench.rundir import RunLock, invocation, make_run_dir
from batchbench.runfiles import write_atomic
from batchbench.runner import JobOutcome, Worker, WorkerError, worker_env
from batchbench.stats import Stats

MiB = 2**20
BN_SMALL_BATCH = 16  # BatchNormalization statistics get noisy below this per-replica batch
NOISY_CV = 0.10  # throughput varying more than this between repeats earns a warning


@dataclass(frozen=True)
class Distributed:
    """One process of a multi-process run (Keras 3 on JAX, data parallel)."""

    num_processes: int
    process_id: int
    host: str
    port: int
    timeout_s: int = 60

    def coordinator(self, job_index: int) -> str:
        # Every job (preflight, each trial) joins afresh: a fresh process per trial, so a
        # fresh port per job, in the same order on every process.
        return f"{self.host}:{self.port + job_index}"


def parse_distributed(num_processes: int | None, process_id: int | None, coordinator: str | None,
                      join_timeout: int | None = None) -> Distributed | None:
    if num_processes is None and process_id is None and coordinator is None:
        return None
    if join_timeout is not None and join_timeout < 1:
        raise ConfigError(f"got {join_timeout}, expected seconds (1 or more)", key="--join-timeout")
    if not num_processes or num_processes < 1:
        raise ConfigError(f"got {num_processes!r}, expected the number of processes (1 or more)",
                          key="--num-processes")
    if process_id is None or not 0 <= process_id < num_processes:
        raise ConfigError(f"got {process_id!r}, expected 0 to {num_processes - 1}", key="--process-id")
    host, _, port = (coordinator or "").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"got {coordinator!r}, expected HOST:PORT (e.g. 10.0.0.1:12345)", key="--coordinator")
    return Distributed(num_processes, process_id, host, int(port), join_timeout or 60)


def check_distributed(config: Config, dist: Distributed, resume: Path | None) -> None:
    label = config.source_file or "config"
    if config.sweep.backend != ["jax"]:
        raise ConfigError("multi-process runs use Keras 3 on JAX (TensorFlow's MultiWorkerMirroredStrategy "
                          "does not work with Keras 3): set sweep.backend: jax or pass --backend jax",
                          file=label, key="sweep.backend")
    if config.sweep.modes != ["fit"]:
        raise ConfigError("multi-process runs measure data-parallel training: use modes: [fit]", file=label,
                          key="sweep.modes")
    if resume:
        raise ConfigError("a multi-process run cannot be resumed (the other processes keep no results); "
                          "start it again", key="--resume")
    bad = [b for b in config.sweep.batch_sizes if b % dist.num_processes]
    if bad:
        raise ConfigError(f"batch sizes {', '.join(map(str, bad))} do not split evenly over "
                          f"{dist.num_processes} processes (the batch size is the global batch)",
                          file=label, key="sweep.batch_sizes")


@dataclass
class SweepOptions:
    out: Path | None = None
    resume: Path | None = None
    verbose: bool = False
    progress: Any = None            # a callable(event: dict) for the terminal, or None
    write_fault: Callable | None = None  # tests inject OSError mid-run here
    distributed: Distributed | None = None
    peer_failed: Callable[[], str | None] | None = None  # the local launcher's view of its peers


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


EXTRAS = {"jax": "jax", "torch": "torch"}


def check_backends(config: Config) -> None:
    """A backend that is not installed is a config error naming the extra, before any trial."""
    import importlib.util

    for i, backend in enumerate(config.sweep.backend):
        if importlib.util.find_spec(backend) is None:
            key = f"sweep.backend[{i}]" if len(config.sweep.backend) > 1 else "sweep.backend"
            raise ConfigError(f"the {backend} backend is not installed; install it with "
                              f"pip install '{DISTRIBUTION}[{EXTRAS.get(backend, backend)}]'",
                              file=config.source_file or "config", key=key)


def slow_combinations(config: Config, device: str, convolutional: bool | None = None) -> list[str]:
    """Combinations known to be slow on the detected device: warn, and let the numbers speak.
    ``convolutional``: whether the model has convolutions (None: not known)."""
    notes = []
    if device == "cpu":
        sweep = config.sweep
        if "mixed_float16" in sweep.precision or "float16" in sweep.precision:
            if any(j is not True for j in sweep.jit_compile):
                notes.append("float16 compute without XLA is emulated on CPUs and can be hundreds of times "
                             "slower than float32 (bfloat16 is the CPU's half precision)")
        if True in sweep.jit_compile and convolutional is not False:
            notes.append("XLA (jit_compile: true) often makes convolutional models slower on CPUs")
    return notes


def utc_stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S")


def default_run_dir(config: Config) -> Path:
    return Path(config.output.dir) / config.name / utc_stamp()


class Sweep:
    def __init__(self, config: Config, options: SweepOptions | None = None, raw_config: Any = None):
        self.config = config
        self.options = options or SweepOptions()
        self.raw_config = raw_config
        self.workers: dict[str, Worker] = {}
        self.rows: list[dict] = []
        self.samples: dict[str, dict] = {}
        self.frontier: dict[str, dict] = {}
        self.warnings: list[str] = []
        self.noisy: dict[str, float] = {}
        self.unstable: list[str] = []
        self.noise: dict | None = None
        self.previous_noise: dict | None = None
        self.interrupted = 0
        self.current_worker: Worker | None = None
        self.lock: RunLock | None = None
        self.recovered: list[str] = []  # trials whose row came back from their record on resume

    # ------------------------------------------------------------------ set-up
    def _resolve_run_dir(self) -> tuple[Path, dict[str, dict]]:
        """The run folder, created and locked before anything else; on resume, the rows (and
        raw samples) already measured there, after checking that the settings are the same."""
        done: dict[str, dict] = {}
        if self.options.resume:
            run_dir = Path(self.options.resume)
            run_json = run_dir / RUN_JSON
            if not run_json.exists():
                raise ConfigError(f"{run_dir} is not a batchbench run directory (no {RUN_JSON})", key="--resume")
            make_run_dir(run_dir)
            self.lock = RunLock.acquire(run_dir, key="--resume")
            previous = read_run_json(run_json)
            self._check_same_settings(run_dir, previous)
            self.samples = previous.get("samples") or {}
            self.writer = ResultsWriter(run_dir, fault_injector=self.options.write_fault)
            done = {}
            for number, row in enumerate(self.writer.rows(), start=2):
                if not row.get("trial_id"):
                    raise ConfigError(f"{run_dir / RESULTS_CSV}: line {number} has no trial_id, so resume cannot "
                                      "tell which trial it is; nothing was changed", key="--resume")
                done[row["trial_id"]] = row
            for trial_id, record in load_trial_records(run_dir).items():
                if record.get("samples"):
                    self.samples.setdefault(trial_id, record["samples"])
                if trial_id not in done:  # saved, but the CSV row was lost (crash, full disk)
                    self.writer.append(record["row"])
                    done[trial_id] = record["row"]
                    self.recovered.append(trial_id)
            self.previous_noise = previous.get("noise_scale")
            self.started_at = previous.get("started_at") or self._now()
            self.run_id = previous.get("run_id") or run_dir.name
            imports = [ref for ref in (self.config.model.factory,
                                       self.config.data.callable and self.config.data.callable.function) if ref]
            if imports:
                self._emit(event="note", text=f"resuming {run_dir} imports {', '.join(imports)} "
                                              f"(modules looked up beside {self.config.base_dir})")
            return run_dir, done
        run_dir = Path(self.options.out) if self.options.out else default_run_dir(self.config)
        dist = self.options.distributed
        if dist and dist.process_id > 0:
            # Process 0 alone writes results.csv; the others keep their own rows apart.
            run_dir = run_dir / "peers" / f"process-{dist.process_id}"
        make_run_dir(run_dir)
        self.lock = RunLock.acquire(run_dir, key="--out")
        if (run_dir / RESULTS_CSV).exists():
            self.lock.release()
            raise ConfigError(f"{run_dir} already holds results; finish it with --resume {run_dir}, "
                              "or choose another --out", key="--out")
        self.run_id = run_dir.name if self.options.out is None else f"{self.config.name}-{utc_stamp()}"
        self.started_at = self._now()
        self.writer = ResultsWriter(run_dir, fault_injector=self.options.write_fault)
        return run_dir, done

    def _check_same_settings(self, run_dir: Path, previous: dict) -> None:
        if previous.get("schema_version") != RESULTS_SCHEMA_VERSION:
            raise ConfigError(f"{run_dir} was written by another batchbench version (results schema "
                              f"{previous.get('schema_version')}, this one writes {RESULTS_SCHEMA_VERSION}), so its "
                              "settings cannot be checked against this one; start a new run (compare and report "
                              "still read it)", key="--resume")
        now = self.config.measurement_hash()
        if previous.get("config_hash") == now:
            return
        from batchbench.config import diff_settings

        changed = diff_settings(previous.get("measured_settings") or {}, self.config.measured_settings())
        what = ", ".join(changed[:8]) + (f" and {len(changed) - 8} more" if len(changed) > 8 else "") \
            if changed else f"hash {previous.get('config_hash')} there, {now} now"
        raise ConfigError(f"the measured settings changed since {run_dir} started ({what}); resume with the same "
                          "config, data and options, or start a new run", key="--resume")

    @staticmethod
    def _now() -> str:
        return datetime.now(UTC).isoformat(timespec="seconds")

    def worker(self, backend: str) -> Worker:
        if backend not in self.workers:
            env = worker_env(backend, self.options.verbose, extra_path=self.config.base_dir)
            self.workers[backend] = Worker(env, log_path=self.run_dir / "worker.log", verbose=self.options.verbose)
        return self.workers[backend]

    def _job_config(self) -> dict:
        data = self.config.resolved()
        data["_base_dir"] = self.config.base_dir
        dist = self.options.distributed
        if dist:
            self._jobs = getattr(self, "_jobs", -1) + 1
            data["_distributed"] = {"coordinator": dist.coordinator(self._jobs), "num_processes": dist.num_processes,
                                    "process_id": dist.process_id, "timeout_s": dist.timeout_s}
            # Equal step counts in every process, or the collectives deadlock: no time rule.
            data["sweep"]["min_time_s"] = 0.0
        return data

    def _preflight(self) -> dict:
        if self.options.distributed:
            check_distributed(self.config, self.options.distributed, self.options.resume)
        return self._preflight_job()

    def _preflight_job(self) -> dict:
        """Build the model and data once in a worker: a bad model or data is a config error
        (exit 2) before any trial runs, not a row of errors."""
        label = self.config.source_file or "config"
        first_axes = {axis: values[0] for axis, values in self.config.axes().items()}
        log = self.run_dir / "trials" / "preflight.log"
        try:
            outcome = self._job(self.worker(first_axes["backend"]),
                                {"op": "preflight", "config": self._job_config(), "axes": first_axes},
                                timeout_s=self.config.sweep.trial_timeout_s, log_path=log)
        except WorkerError as exc:
            raise BatchbenchError(f"{exc}; see {self.run_dir / 'worker.log'}") from None
        if self.interrupted:
            raise self._interrupted()
        result = outcome.result or {}
        if result.get("status") == "config_error":
            message = result["message"]
            if result.get("traceback"):
                # The user's own frames: kept in the log, shown with --verbose.
                write_atomic(log, str(result["traceback"]))
                message += (f"\n{result['traceback']}".rstrip() if self.options.verbose
                            else f" (traceback in {log})")
            raise ConfigError(message, file=label, key=result.get("key"))
        dist = self.options.distributed
        if result.get("status") != "ok" and dist and log.exists() and any(
                marker in log.read_text(errors="replace") for marker in ("DEADLINE_EXCEEDED", "CoordinationService")):
            # JAX aborts the process when the job cannot form: say what the user can fix.
            raise ConfigError(f"could not join the {dist.num_processes} processes through the coordinator "
                              f"{dist.coordinator(0)} within {dist.timeout_s} s: is process 0 running, and the port "
                              f"reachable from here? (details in {log})", key="--coordinator")
        if result.get("status") != "ok":
            reason = result.get("error") or _ending(outcome) or "unknown failure"
            raise ConfigError(f"the model and data could not be built: {reason} (details in {log})", file=label)
        log.unlink(missing_ok=True)
        return result

    # ------------------------------------------------------------------ run
    def run(self) -> SweepOutcome:
        try:
            self.run_dir, done = self._resolve_run_dir()
        except BaseException:
            if self.lock:
                self.lock.release()
            raise
        self.env = host_environment()
        warning = busy_warning(self.env)
        if warning:
            self.warnings.append(warning)
        self.rows = list(done.values())
        handlers = self._install_signals()
        try:
            check_backends(self.config)
            self._emit(event="preflight", run_dir=str(self.run_dir), resumed=len(done))
            self.preflight = self._preflight()
            convolutional = self.preflight.get("has_conv")
            if convolutional is None and self.config.model.builtin:
                convolutional = self.config.model.builtin == "cnn"
            self.warnings += slow_combinations(self.config, self.preflight.get("device") or "cpu", convolutional)
            self.env["framework"] = self.preflight.pop("framework", {})
            self.status = "running"
            self._write_run_json()
            self._run_groups(done)
            self._noise_scale()
            self.status = "complete"
        except InterruptedSweep:
            self.status = "interrupted"
            raise
        finally:
            self._restore_signals(handlers)
            for worker in self.workers.values():
                worker.close()
            if hasattr(self, "preflight"):
                try:
                    self._write_run_json()
                except (OSError, OutputError):
                    pass
            if self.lock:
                self.lock.release()
        return SweepOutcome(self.run_dir, self.rows, self.summary(), self.record, self.warnings)

    def _run_groups(self, done: dict[str, dict]) -> None:
        groups = build_groups(self.config)
        plans = []
        for group in groups:
            limit = self.preflight["train_samples"] if group.mode == "fit" else self.preflight["samples"]
            plans.append(GroupPlan(group, self.config.sweep.batch_sizes, limit,
                                   find_max=self.config.sweep.find_max,
                                   granularity=self.config.sweep.search_granularity))
        total = sum(p.ladder_size for p in plans)
        index = 0
        self._emit(event="start", total=total, run_dir=str(self.run_dir))
        for plan in plans:
            while (item := plan.next()) is not None:
                if self.interrupted:
                    raise self._interrupted()
                index += 1
                trial = item.trial if isinstance(item, Skip) else item
                if trial.phase != "ladder":
                    total += 1
                    self._emit(event="total", total=total)
                if trial.trial_id in done:
                    plan.record(trial, done[trial.trial_id]["status"])
                    self._emit(event="done", index=index, total=total, row=done[trial.trial_id], resumed=True)
                    continue
                if isinstance(item, Skip):
                    row = self._row(trial, status="skipped", error=item.reason)
                else:
                    self._emit(event="trial", index=index, total=total, trial=trial)
                    row = self._run_trial(trial)
                if self.interrupted:
                    raise self._interrupted()
                plan.record(trial, row["status"])
                row["finished_at"] = self._now()
                save_trial_record(self.run_dir, row, self.samples.get(trial.trial_id))
                self.writer.append(row)
                self.rows.append(row)
                self._write_run_json()
                self._emit(event="done", index=index, total=total, row=row)
                if self.options.distributed and row["status"] in ("error", "timeout"):
                    # A process that failed leaves the others waiting at the next join: stop here.
                    self.warnings.append(f"stopped after {trial.trial_id} failed ({row['error']}): the other "
                                         "processes of a multi-process run cannot go on without it")
                    return
            if plan.find_max:
                self.frontier[plan.group.key] = self._frontier(plan)

    def _noise_scale(self) -> None:
        """The critical batch size, estimated once per sweep when training quality is asked for."""
        sweep = self.config.sweep
        if "fit" not in sweep.modes or not (sweep.epochs or sweep.target) or self.interrupted:
            return
        if self.options.distributed:
            return
        if self.previous_noise is not None:
            self.noise = self.previous_noise
            return
        axes = {axis: values[0] for axis, values in self.config.axes().items()}
        self._emit(event="note", text="estimating the gradient noise scale")
        outcome = self._job(self.worker(axes["backend"]),
                            {"op": "noise_scale", "config": self._job_config(), "axes": axes},
                            timeout_s=sweep.trial_timeout_s, log_path=self.run_dir / "trials" / "noise-scale.log")
        if self.interrupted:
            raise self._interrupted()
        result = outcome.result or {}
        if result.get("status") != "ok":
            self.warnings.append(f"the gradient noise scale could not be estimated: "
                                 f"{result.get('error') or _ending(outcome) or 'unknown failure'}")
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

    def _frontier(self, plan: GroupPlan) -> dict:
        """max_batch_size and the safe size that leaves `margin` of the memory budget free."""
        out: dict[str, Any] = {"max_batch_size": plan.max_batch_size, "search_trials": plan.search_trials}
        if plan.oom_at is None:
            out["fits_up_to_at_least"] = max(plan.ok_sizes, default=None)
        if plan.nothing_fits:
            out["max_batch_size_reason"] = f"even batch 1 ran out of memory (first OOM at {plan.oom_at})"
        budget, column = self.memory_budget_mib()
        margin = self.config.sweep.margin
        usable = budget * (1 - margin)
        measured = [r for r in self.rows if r.get("trial_id", "").startswith(plan.group.mode) and
                    _group_of(r, plan) and r["status"] == "ok" and r.get(column) is not None]
        if plan.max_batch_size is not None:  # never above the confirmed maximum
            measured = [r for r in measured if r["batch_size"] <= plan.max_batch_size]
        fitting = [r for r in measured if r[column] <= usable]
        out["safe_batch_size"] = max((r["batch_size"] for r in fitting), default=None)
        out["memory_budget_mib"] = budget
        if out["safe_batch_size"] is None:
            if not measured:
                out["safe_batch_size_reason"] = "no batch size ran to the end with its memory measured"
            else:
                least = min(measured, key=lambda r: r[column])
                out["safe_batch_size_reason"] = (
                    f"no batch size that ran leaves {margin:.0%} of the {budget:.0f} MiB budget free "
                    f"({usable:.0f} MiB usable; the smallest peak was {least[column]:.0f} MiB at batch "
                    f"{least['batch_size']}): lower --margin or raise the memory limit")
        if plan.mode_is_fit and plan.oom_at is not None and plan.max_batch_size:
            wanted = plan.oom_at
            steps = -(-wanted // plan.max_batch_size)
            micro = -(-wanted // steps)
            out["accumulation_advice"] = {"wanted": wanted, "batch_size": micro, "gradient_accumulation_steps": steps}
        return out

    def _run_trial(self, trial: Trial) -> dict:
        axes = dict(trial.group.axes)
        worker = self.worker(axes["backend"])
        log_path = self.run_dir / "trials" / f"{trial.trial_id}.log"
        request = {"op": "trial", "config": self._job_config(),
                   "trial": {"mode": trial.mode, "method": trial.method, "batch_size": trial.batch_size,
                             "axes": axes, "phase": trial.phase,
                             "reference_path": str(self._reference_path(trial)) if trial.mode == "predict" else None}}
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
                                 memory_cap_bytes=self._memory_cap(), log_path=log_path, on_tick=watch_peers)
        except WorkerError as exc:  # the server itself failed: this trial is an error, the next gets a new one
            outcome = JobOutcome(result={"status": "error", "error": str(exc)}, returncode=None)
        self.current_worker = None
        row = self._row_from_outcome(trial, outcome, time.perf_counter() - started)
        if peer_note and row["status"] != "ok":
            row.update(status="error", error=f"{peer_note[0]}; this process's trial was ended")
        if row["status"] == "ok" and not self.options.verbose:
            log_path.unlink(missing_ok=True)
        return row

    def _reference_path(self, trial: Trial) -> Path:
        key = trial.group.key.replace("/", "_").replace("|", "_").replace("=", "-")
        return self.run_dir / "trials" / f"reference-{key}.npy"

    def _memory_cap(self) -> int:
        """A trial may use at most `memory_limit`, or a share of the memory available at the
        start, so a sweep never invites the kernel's OOM killer onto the user's machine."""
        if self.config.sweep.memory_limit:
            return self.config.sweep.memory_limit
        if not hasattr(self, "_default_cap"):
            self._default_cap = int(available_memory_bytes() * self.config.sweep.memory_fraction)
        return self._default_cap

    def memory_budget_mib(self) -> tuple[float, str]:
        """What a trial's peak is measured against: the device's memory on a GPU, the host cap
        on a CPU. Returns (MiB, which column it applies to)."""
        device_limit = self.config.sweep.device_memory_limit
        gpus = ((self.env.get("nvml") or {}).get("gpus") or []) if hasattr(self, "env") else []
        on_gpu = (self.preflight.get("device") or "cpu") != "cpu"
        if on_gpu and (device_limit or gpus):
            # The peak is summed over the GPUs used, so the budget is too.
            used = self.config.device.gpu_indices
            chosen = [g for g in gpus if used is None or g["index"] in used] or gpus[:1]
            if device_limit:
                return device_limit * len(chosen) / MiB, "peak_device_mib"
            return sum(g["memory_total_mib"] for g in chosen), "peak_device_mib"
        return self._memory_cap() / MiB, "peak_host_mib"

    def _row_from_outcome(self, trial: Trial, outcome: JobOutcome, wall_s: float) -> dict:
        result = outcome.result or {}
        status = result.get("status")
        error = result.get("error")
        if outcome.timed_out:
            status, error = "timeout", f"ran longer than trial_timeout_s={self.config.sweep.trial_timeout_s:g}s"
        elif outcome.memory_killed:
            cap = self._memory_cap() / MiB
            status, error = "oom", f"resident memory crossed the cap of {cap:.0f} MiB; the trial was ended"
            result["oom_kind"] = "host"
        elif status == "config_error":
            status, error = "error", result.get("message")
        elif status is None:
            status, error = self._classify_death(outcome)
        row = self._row(trial, status=status, error=error)
        row["wall_s"] = wall_s
        if status == "oom":
            row["oom_kind"] = result.get("oom_kind") or ("device" if self.preflight.get("device", "cpu") != "cpu"
                                                         else "host")
        if result.get("replicas"):
            row["replicas"] = result["replicas"]
            row["per_replica_batch_size"] = trial.batch_size // result["replicas"]
            row["bn_small_batch"] = bool(trial.mode == "fit" and self.preflight.get("has_batch_norm") and
                                         row["per_replica_batch_size"] < BN_SMALL_BATCH)
        if result.get("processes"):
            row["processes"] = result["processes"]
            row["devices_per_process"] = result.get("devices_per_process")
            row["per_process_batch_size"] = trial.batch_size // result["processes"]
        for key in ("params", "device", "max_abs_diff", "consistent", "nvml_process_mib"):
            if result.get(key) is not None:
                row[key] = result[key]
        for key, value in (result.get("quality") or {}).items():
            if value is not None:
                row[key] = value
        target = self.config.sweep.target
        if target and trial.mode == "fit" and trial.phase != "confirm":
            op = "<=" if any(w in target.metric for w in ("loss", "error")) else ">="
            row["target"] = f"{target.metric}{op}{target.value:g}"
        if status == "ok":
            row.update(self._figures(trial, result))
            budget, column = self.memory_budget_mib()
            peak = row.get(column)
            if peak is not None:
                row["headroom_mib"] = budget - peak
            cap = self.config.sweep.memory_limit
            if cap and (row.get("peak_host_mib") or 0) > cap / MiB:
                # Too brief for the watchdog to catch, but VmHWM saw it: it would not fit.
                row.update(status="oom", oom_kind="host",
                           error=f"peak resident memory {row['peak_host_mib']:.0f} MiB exceeded the memory limit "
                                 f"of {cap / MiB:.0f} MiB")
        return row

    def _classify_death(self, outcome: JobOutcome) -> tuple[str, str]:
        sig = outcome.signal_name
        if outcome.returncode is None:
            return "error", "the worker process died during the trial"
        if sig == "SIGKILL":
            available = available_memory_bytes()
            rss = (outcome.peak_rss_mib or 0) * MiB
            if rss and rss > 0.5 * (available + rss):
                return "oom", (f"killed by SIGKILL after reaching {outcome.peak_rss_mib:.0f} MiB resident: "
                               "most likely the kernel's out-of-memory killer")
            return "error", "the worker was killed by SIGKILL"
        if sig:
            return "error", f"the worker was killed by {sig}"
        return "error", f"the worker exited with code {outcome.returncode} before reporting a result"

    def _row(self, trial: Trial, status: str, error: str | None = None) -> dict:
        axes = dict(trial.group.axes)
        return {
            "run_id": self.run_id, "name": self.config.name, "model": self.config.model.label,
            "mode": trial.mode, "method": trial.method, "batch_size": trial.batch_size,
            "status": status, "error": error, "trial_id": trial.trial_id, "phase": trial.phase,
            "params": self.preflight.get("params"), "device": self.preflight.get("device"),
            "precision": axes["precision"], "jit_compile": axes["jit_compile"], "backend": axes["backend"],
            "strategy": axes["strategy"], "loss": self.preflight.get("loss") if trial.mode == "fit" else None,
            "bn_small_batch": bool(trial.mode == "fit" and self.preflight.get("has_batch_norm") and
                                   trial.batch_size < BN_SMALL_BATCH),
        }

    def _figures(self, trial: Trial, result: dict) -> dict:
        m = result["measurement"]
        batch = trial.batch_size
        throughputs = [s / t for s, t in zip(m["repeat_samples"], m["repeat_time_s"]) if t > 0]
        tp = Stats.from_values(throughputs)
        step_ms = [s * 1000 for s in m["step_s"]]
        st = Stats.from_values(step_ms)
        self.samples[trial.trial_id] = {"throughput_sps": throughputs, "step_ms": _thin(step_ms)}
        if tp.n > 1 and tp.cv > NOISY_CV:
            self.noisy[trial.trial_id] = tp.cv
        figures = {
            "throughput_sps": tp.median, "throughput_sps_min": tp.min, "throughput_sps_max": tp.max,
            "step_ms_median": st.median, "step_ms_p90": st.p90, "step_ms_p95": st.p95,
            "step_ms_p99": st.p99, "step_ms_max": st.max, "sample_ms": st.median / batch,
            "first_step_s": m.get("first_step_s"), "peak_host_mib": result.get("peak_host_mib"),
            "peak_device_mib": result.get("peak_device_mib"), "repeats": tp.n,
            "steps": m.get("steps"), "samples": sum(m["repeat_samples"]), "timed_s": sum(m["repeat_time_s"]),
        }
        if m.get("energy_j") is not None:
            figures["energy_j"] = m["energy_j"]
            figures["j_per_1k"] = m["energy_j"] / figures["samples"] * 1000 if figures["samples"] else None
        if trial.mode != "fit":
            figures["stable"] = m.get("stable")
            if m.get("stable") is False:
                self.unstable.append(trial.trial_id)
        return figures

    # ------------------------------------------------------------------ records
    def summary(self) -> dict:
        varying = self.config.varying_axes()
        summary = summarize(self.rows, varying, self.config.sweep.slo_ms, self.config.sweep.percentile,
                            self.frontier)
        recs = summary["recommendations"]
        for key, rec in recs.items():
            if not key.startswith("fit"):
                continue
            if self.noise and self.noise.get("gradient_noise_scale"):
                rec["gradient_noise_scale"] = self.noise["gradient_noise_scale"]
                rec["critical_batch_size"] = round(self.noise["gradient_noise_scale"])
            reached = [r for r in self.rows if group_key(r, varying) == key and r.get("time_to_target_s") is not None]
            if self.config.sweep.target:
                rec["fastest_to_target"] = (min(reached, key=lambda r: r["time_to_target_s"])["batch_size"]
                                            if reached else None)
        warnings = list(self.warnings)
        if self.noisy:
            worst = sorted(self.noisy.items(), key=lambda kv: -kv[1])
            listed = ", ".join(f"{tid} ({cv:.0%})" for tid, cv in worst[:4])
            more = f" and {len(worst) - 4} more" if len(worst) > 4 else ""
            warnings.append(f"{len(worst)} trial(s) are noisy (throughput varies over {NOISY_CV:.0%} between "
                            f"repeats): {listed}{more}; raise sweep.min_time_s or repeats, or quiet the machine")
        if self.unstable:
            warnings.append(f"{len(self.unstable)} predict trial(s) never stabilised (the last 3 windows did not "
                            f"agree within {self.config.sweep.stability.tolerance:.0%}): "
                            f"{', '.join(self.unstable[:4])}; their figures are marked unstable")
        inconsistent = [r["trial_id"] for r in self.rows if r.get("consistent") is False]
        if inconsistent:
            warnings.append(f"predictions change with the batch size beyond float noise: {', '.join(inconsistent[:4])}"
                            " (see max_abs_diff)")
        return {"run_dir": str(self.run_dir), **summary, "warnings": warnings}

    def _write_run_json(self) -> None:
        self.record = {
            "schema_version": RESULTS_SCHEMA_VERSION,
            "batchbench_version": __version__,
            "run_id": self.run_id,
            "name": self.config.name,
            "status": getattr(self, "status", "running"),
            "argv": sys.argv,
            "config_file": self.config.source_file,
            "base_dir": self.config.base_dir,
            "config": self.raw_config,
            "config_resolved": self.config.resolved(),
            "config_hash": self.config.measurement_hash(),
            "measured_settings": self.config.measured_settings(),
            "git": git_info(self.config.base_dir) or git_info("."),
            "environment": self.env,
            "model_info": getattr(self, "preflight", None),
            "started_at": self.started_at,
            "ended_at": self._now() if getattr(self, "status", "") != "running" else None,
            "samples": self.samples,
            "noise_scale": self.noise,
            "summary": self.summary(),
        }
        try:
            write_json_atomic(self.run_dir / RUN_JSON, _finite(self.record))
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

        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                previous[sig] = signal.signal(sig, handler)
            except ValueError:  # not the main thread (e.g. a notebook's executor)
                pass
        return previous

    @staticmethod
    def _restore_signals(previous: dict) -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    def _interrupted(self) -> InterruptedSweep:
        return InterruptedSweep(
            f"interrupted: {len(self.rows)} finished trial(s) kept in {self.run_dir}\n"
            f"resume with: {invocation()} sweep --resume {self.run_dir}")


def _group_of(row: dict, plan: GroupPlan) -> bool:
    group = plan.group
    return (row.get("mode") == group.mode and (row.get("method") or "") == group.method and
            all(str(row.get(axis)).lower() == str(value).lower() for axis, value in group.axes))


def _ending(outcome: JobOutcome) -> str | None:
    if outcome.timed_out:
        return "timed out"
    if outcome.signal_name:
        return f"killed by {outcome.signal_name}"
    return None


def _thin(values: list[float], limit: int = 2000) -> list[float]:
    """Raw samples kept in run.json, evenly thinned past `limit` to keep the file small."""
    if len(values) <= limit:
        return [round(v, 6) for v in values]
    step = len(values) / limit
    return [round(values[int(i * step)], 6) for i in range(limit)]


def _finite(obj: Any) -> Any:
    """JSON has no NaN: store null."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> str:
    return json.dumps(_finite(obj), indent=2, default=str)
