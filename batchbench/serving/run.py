"""The serving run: preflight, the latency profile, the simulator's ranking, then a measured
rate search for the most promising settings, one worker job per max_batch_size. Every load
point lands in serving.csv as it ends; an interrupted run resumes with the points it has."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchbench.config import Config
from batchbench.config.settings import settings_hash
from batchbench.envinfo import busy_warning, git_info, host_environment
from batchbench.errors import BatchbenchError, ConfigError, InterruptedSweep, OutputError
from batchbench.results import RUN_JSON, finite, write_json_atomic
from batchbench.rows import preflight_result
from batchbench.rundir import ended_by, invocation, now_iso, open_run
from batchbench.runfiles import install_handler, restore_handlers
from batchbench.runner import JobOutcome, Worker, WorkerError
from batchbench.serving import outputs
from batchbench.serving.batching import profile_sizes
from batchbench.serving.options import check_against_data
from batchbench.serving.simulate import ServiceTimes, simulated_max
from batchbench.version import RESULTS_SCHEMA_VERSION, __version__

PLOT = "serving_latency.png"


@dataclass
class ServingOptions:
    out: Path | None = None
    resume: Path | None = None
    verbose: bool = False
    given: set[str] = field(default_factory=set)      # the keys the command line set (messages name them)
    progress: Callable[[str], None] | None = None
    worker_factory: Callable[..., Worker] | None = None
    trackers: Any = None  # export.Trackers: MLflow/TensorBoard, a child per setting (serving/track.py)


@dataclass
class ServingOutcome:
    run_dir: Path
    rows: list[dict]
    summary: dict
    warnings: list[str]
    exit_code: int = 0


class ServingRun:
    def __init__(self, config: Config, options: ServingOptions, raw_config: Any = None):
        self.config, self.options, self.raw = config, options, raw_config
        self.spec = config.serving
        # The repeats an answer needs (outputs.setting_max); given rates are measured once.
        self.confirm_repeats = 0 if self.spec.rates else self.spec.confirm_repeats
        self.rows: list[dict] = []
        self.warnings: list[str] = []
        self.interrupted = 0
        self.worker: Worker | None = None
        self.status = "starting"
        self.error: str | None = None  # what ended a failed run, in one line
        self.profile: dict | None = None
        self.preflight: dict | None = None
        self.env: dict = {}
        self.simulated: dict[str, dict] = {}
        self.searched: set[tuple[int, float]] = set()  # settings whose measured search ended

    # ------------------------------------------------------------------ set-up
    def _worker(self) -> Worker:
        if self.worker is None:
            from batchbench.sweep import make_worker

            factory = self.options.worker_factory or make_worker
            self.worker = factory(self.config.sweep.backend[0], self.run_dir / "worker.log", self.options.verbose,
                                  self.config.base_dir)
        return self.worker

    def _job_config(self) -> dict:
        data = self.config.resolved()
        data["_base_dir"] = self.config.base_dir
        return data

    def _axes(self) -> dict:
        return {axis: values[0] for axis, values in self.config.axes().items()}

    def _job(self, request: dict, timeout_s: float, log: Path, on_tick=None) -> JobOutcome:
        try:
            return self._worker().run({**request, "config": self._job_config(), "axes": self._axes()},
                                      timeout_s=timeout_s, memory_cap_bytes=self.config.sweep.memory_limit,
                                      log_path=log, on_tick=on_tick)
        except WorkerError as exc:
            return JobOutcome(result={"status": "error", "error": str(exc)}, returncode=None)

    def _say(self, text: str) -> None:
        if self.options.progress:
            self.options.progress(text)

    # ------------------------------------------------------------------ run
    def run(self) -> ServingOutcome:
        if not self.options.resume and self.options.out and (Path(self.options.out) / outputs.SERVING_CSV).exists():
            raise ConfigError(f"{self.options.out} already holds serving results; finish it with --resume "
                              f"{self.options.out}, or choose another --out", key="--out")
        self.start = open_run(self.config, self.options.out, self.options.resume)
        self.run_dir = self.start.run_dir
        self.writer = outputs.ServingWriter(self.run_dir)
        self.rows = self.writer.rows()
        self.env = host_environment()
        if warning := busy_warning(self.env):
            self.warnings.append(warning)
        handlers = install_handler(self._on_signal)
        try:
            self._say(f"serving run in {self.run_dir}" + (f" ({len(self.rows)} points kept)" if self.rows else ""))
            self.preflight = self._preflight()
            check_against_data(self.config, int(self.preflight["samples"]), self.options.given)
            self.env["framework"] = self.preflight.pop("framework", {})
            self.status = "running"
            self._write_run_json()
            self._profile()
            service = ServiceTimes.from_profile(self.profile)
            if service.stalls:
                self.warnings.append(f"{service.stalls} of the profile's {service.calls} calls stalled far beyond their batch "
                                     "size's usual time (other load on the machine, most likely); the simulator "
                                     "leaves them out, the measured points do not")
            self._simulate(service)
            self._check_interrupt()
            if self._slo_reachable(service):
                self._measure(self._ranked())
            self.status = "complete"
        except BaseException as exc:
            self.status, self.error = ended_by(exc)
            raise
        finally:
            restore_handlers(handlers)
            if self.worker:
                self.worker.close()
            if self.preflight is not None:
                try:
                    self._finish()
                except (OSError, OutputError):
                    pass
            self.start.lock.release()
            if self.preflight is not None:
                self._file_trackers()  # the run folder is complete first (and unlocked)
        measured = [r for r in self.rows if r.get("source") == "measured"]
        all_failed = bool(measured) and all(r.get("status") == "error" for r in measured)
        return ServingOutcome(self.run_dir, self.rows, self.summary(), self.warnings, 1 if all_failed else 0)

    def _on_signal(self, signum, frame) -> None:
        self.interrupted += 1
        if self.interrupted > 1:
            os._exit(130)
        if self.worker:
            self.worker.interrupt()

    def _check_interrupt(self) -> None:
        if self.interrupted:
            kept = sum(1 for r in self.rows if r.get("source") == "measured")
            raise InterruptedSweep(f"interrupted: {kept} measured load point(s) kept in {self.run_dir}\n"
                                   f"resume with: {invocation()} serving --resume {self.run_dir}")

    def _preflight(self) -> dict:
        log = self.run_dir / "trials" / "preflight.log"
        outcome = self._job({"op": "preflight"}, self.config.sweep.trial_timeout_s, log)
        self._check_interrupt()
        result = preflight_result(outcome, log, self.config.source_file or "config", self.options.verbose)
        log.unlink(missing_ok=True)
        return result

    def _profile(self) -> None:
        """The latency of one call at each batch size up to the largest max_batch_size, and the
        load generator's ceiling; kept in the run folder (resume reuses it)."""
        path = self.run_dir / outputs.PROFILE_JSON
        if path.exists():
            with open(path) as fh:
                self.profile = json.load(fh)
            return
        biggest = max(self.spec.max_batch_sizes)
        self._say(f"profiling the compiled call at batch sizes 1..{biggest}")
        log = self.run_dir / "trials" / "serving-profile.log"
        outcome = self._job({"op": "serving_profile", "max_batch_size": biggest, "sizes": profile_sizes(biggest)},
                            self.config.sweep.trial_timeout_s, log)
        self._check_interrupt()
        result = outcome.result or {}
        if result.get("status") != "ok":
            raise BatchbenchError(f"the latency profile failed: {result.get('error') or 'the worker ended'} "
                                  f"(details in {log})")
        self.profile = {k: result[k] for k in ("batch_sizes", "samples_ms", "generator_ceiling_qps")}
        self.profile.update({k: result[k] for k in ("idle_ms", "after_idle_ms") if k in result})
        write_json_atomic(path, self.profile)
        if not self.options.verbose:
            log.unlink(missing_ok=True)

    def _simulate(self, service: ServiceTimes) -> None:
        """The simulated max rate of every setting; one `simulated` row each, at that rate."""
        have = {outputs.point_key(r)[1:3] for r in self.rows if r.get("source") == "simulated"}
        for m in self.spec.max_batch_sizes:
            for t in self.spec.timeouts_ms:
                if m == 1 and t != self.spec.timeouts_ms[0]:
                    pass  # a batch of one never waits: every timeout is the same setting
                else:
                    best, result = simulated_max(service, m, t, self.spec.slo_ms, self.spec.percentile,
                                                 self.spec.num_batch_threads, seed=self.config.sweep.seed)
                self.simulated[f"{m}/{t:g}"] = {"max_batch_size": m, "batch_timeout_ms": t, "max_qps": best}
                if (m, float(t)) in have:
                    continue
                row = {**self._ids(), "source": "simulated", "status": "ok", "max_batch_size": m,
                       "batch_timeout_ms": t, "num_batch_threads": self.spec.num_batch_threads}
                if result is not None:
                    row.update(result.as_row(), latency_ms_at_percentile=result.latency_ms_at, slo_met=True)
                else:
                    row.update(slo_met=False, error="no simulated rate meets the SLO")
                self._append(row)

    def _slo_reachable(self, service: ServiceTimes) -> bool:
        single = service.percentile_ms(1, self.spec.percentile)
        if single > self.spec.slo_ms:
            self.warnings.append(
                f"the SLO ({self.spec.slo_ms:g} ms at p{self.spec.percentile:g}) is below the latency of a single "
                f"request alone ({single:.2f} ms at p{self.spec.percentile:g}): no setting can meet it, so none "
                "was measured")
            return False
        return True

    def _ranked(self) -> list[dict]:
        """The settings worth measuring: the simulator's best `measure_top`."""
        found = [s for s in self.simulated.values() if s["max_qps"]]
        found.sort(key=lambda s: (-s["max_qps"], s["batch_timeout_ms"], s["max_batch_size"]))
        return found[: self.spec.measure_top]

    def _measure(self, settings: list[dict]) -> None:
        by_size: dict[int, list[dict]] = {}
        for s in settings:
            entry = {"batch_timeout_ms": s["batch_timeout_ms"]}
            if self.spec.rates:
                entry["rates"] = list(self.spec.rates)
            else:
                entry["start_qps"] = s["max_qps"]
            by_size.setdefault(s["max_batch_size"], []).append(entry)
        for m, entries in sorted(by_size.items()):
            self._size_job(m, entries)
            self._check_interrupt()

    def _size_job(self, m: int, entries: list[dict]) -> None:
        points_path = self.run_dir / "trials" / f"serving-m{m}.points.jsonl"
        log = self.run_dir / "trials" / f"serving-m{m}.log"
        known = [r for r in self.rows if r.get("source") == "measured" and r.get("max_batch_size") == m
                 and r.get("status") != "error"]
        have = {outputs.point_key(r) for r in self.rows}
        # Points a previous session measured but did not get into serving.csv (it was killed in between).
        self._read_points(points_path, 0, have)
        known = [r for r in self.rows if r.get("source") == "measured" and r.get("max_batch_size") == m
                 and r.get("status") != "error"]
        offset = [points_path.stat().st_size if points_path.exists() else 0]
        what = ", ".join(f"{e['batch_timeout_ms']:g} ms" for e in entries)
        self._say(f"max_batch_size {m}: measuring timeout(s) {what}")
        spec = self.spec
        if spec.rates:
            per_setting = len(spec.rates) * (spec.max_duration_s + 2)
        else:  # the search, then 3 candidates at most, each with its repeats and 3 more points below it
            per_setting = (spec.max_points + 9) * (spec.max_duration_s + 2) \
                + 3 * spec.confirm_repeats * (max(spec.confirm_duration_s, spec.max_duration_s) + 2)
        timeout_s = 120 + len(entries) * per_setting * 2

        def tick() -> None:
            offset[0] = self._read_points(points_path, offset[0], have)

        outcome = self._job({"op": "serving_points",
                             "job": {"max_batch_size": m, "settings": entries, "known": known,
                                     "points_path": str(points_path)}}, timeout_s, log, on_tick=tick)
        tick()
        result = outcome.result or {}
        if result.get("status") != "ok" and not self.interrupted:
            from batchbench.rows import ending

            reason = result.get("error") or ending(outcome) or "the worker ended"
            for e in entries:
                self._append({**self._ids(), "source": "measured", "status": "error", "max_batch_size": m,
                              "batch_timeout_ms": e["batch_timeout_ms"], "error": f"{reason} (log: {log})"})
            self.warnings.append(f"max_batch_size {m}: the load test failed: {reason}")
        elif not self.options.verbose:
            log.unlink(missing_ok=True)
        if not self.interrupted:
            self._searched(m, entries)

    def _read_points(self, path: Path, offset: int, have: set) -> int:
        if not path.exists():
            return offset
        with open(path, "rb") as fh:
            fh.seek(offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            row = {**self._ids(), **row}
            if outputs.point_key(row) in have:
                continue
            have.add(outputs.point_key(row))
            self._append(row)
            mark = "meets" if row.get("slo_met") else "misses"
            self._say(f"  max_batch_size {row['max_batch_size']}, timeout {row['batch_timeout_ms']:g} ms, "
                      f"{row['offered_qps']:.0f} req/s{' (again)' if row.get('repeat') else ''}: p{self.spec.percentile:g} "
                      f"{row['latency_ms_at_percentile']:.2f} ms, batch {row['batch_size_mean']:.1f} "
                      f"-> {mark} the SLO" + ("" if row.get("status") == "ok" else f" [{row['status']}]"))
        return offset + end

    def _append(self, row: dict) -> None:
        self.writer.append(row)
        self.rows.append(row)
        if self.options.trackers:  # after serving.csv: a tracker that fails never loses a point
            from batchbench.serving.track import SETTING, STEP, setting_row

            key = (int(row["max_batch_size"]), float(row["batch_timeout_ms"]))
            point = setting_row(self.rows, *key, done=key in self.searched, repeats=self.confirm_repeats)
            self.options.trackers.point(self.run_dir, point, identity=SETTING, step=STEP)

    def _searched(self, m: int, entries: list[dict]) -> None:
        """A size job ended: its settings' maxima are final (their trackers' children get them)."""
        from batchbench.serving.track import SETTING, STEP, setting_row

        for e in entries:
            key = (m, float(e["batch_timeout_ms"]))
            self.searched.add(key)
            if self.options.trackers:
                point = setting_row(self.rows, *key, done=True, repeats=self.confirm_repeats)
                self.options.trackers.point(self.run_dir, point, identity=SETTING, step=STEP)

    def _file_trackers(self) -> None:
        """Every setting, the parent's tags (the answer) and artifacts, its end state."""
        trackers = self.options.trackers
        if not trackers or not self.rows:
            return
        from batchbench.serving.track import setting_points

        points = setting_points(self.rows, self.summary()["serving"],
                                None if self.status == "complete" else self.searched, self.confirm_repeats)
        if trackers.run is None:  # a resume that added no row: the saved run, filed whole
            trackers.file(self.run_dir, points)
        else:
            trackers.finish(self.run_dir, points)

    def _ids(self) -> dict:
        return {"run_id": self.start.run_id, "name": self.config.name, "model": self.config.model.label}

    # ------------------------------------------------------------------ records
    def summary(self) -> dict:
        spec = self.spec
        repeats = self.confirm_repeats
        answer = outputs.choose(self.rows, spec.num_batch_threads, repeats)
        measured = [r for r in self.rows if r.get("source") == "measured"]
        counts: dict[str, int] = {}
        for r in measured:
            counts[r.get("status") or "ok"] = counts.get(r.get("status") or "ok", 0) + 1
        warnings = list(self.warnings) + self._point_warnings(measured, answer)
        summary = {"run_dir": str(self.run_dir), "kind": "serving", "serving": answer,
                   "slo_ms": spec.slo_ms, "percentile": spec.percentile, "measured_points": len(measured),
                   "confirm_repeats": repeats, "status_counts": counts,
                   "simulated_vs_measured": outputs.comparison(self.rows, repeats),
                   "generator_ceiling_qps": (self.profile or {}).get("generator_ceiling_qps"),
                   "files": [f for f in (outputs.TF_SERVING_FILE, outputs.TRITON_FILE)
                             if answer and (self.run_dir / f).exists()]}
        if self.profile:
            service = ServiceTimes.from_profile(self.profile)
            summary["single_request_ms"] = float(service.median_ms(1))
        if warnings:
            summary["warnings"] = warnings
        return summary

    def _point_warnings(self, measured: list[dict], answer: dict | None) -> list[str]:
        out = []
        bound = [r for r in measured if r.get("status") == "generator_bound"]
        if bound:
            out.append(f"{len(bound)} load point(s) asked for more than half the load generator's own ceiling "
                       f"({bound[0].get('generator_ceiling_qps'):.0f} req/s with an empty model): they measure the "
                       "load test, not the server, and count as failed")
        unsteady = [r for r in measured if r.get("steady") is False and r.get("latency_ms_at_percentile") is not None
                    and r["latency_ms_at_percentile"] <= self.spec.slo_ms]
        if unsteady:
            out.append(f"{len(unsteady)} load point(s) never reached a steady state (latency still growing at the "
                       "end) though their percentile met the SLO: they count as failed")
        thin = [r for r in measured if r.get("enough_requests") is False and r.get("slo_met")]
        if thin:
            out.append(f"{len(thin)} passing load point(s) had fewer requests than their percentile needs "
                       f"(serving.max_duration_s caps a point's length): their p{self.spec.percentile:g} rests on "
                       "fewer than 50 requests in the tail")
        if answer is None and measured:
            out.append("no measured setting met the SLO at any rate tried")
        return out

    def _finish(self) -> None:
        summary = self.summary()
        answer = summary["serving"]
        if answer is not None and self.profile:
            service = ServiceTimes.from_profile(self.profile)
            outputs.write_server_files(self.run_dir, answer, self.spec.slo_ms,
                                       float(service.median_ms(answer["max_batch_size"])))
        image = None
        if self.config.output.plots:
            try:
                from batchbench.serving.plot import write_plot

                image = PLOT if write_plot(self.rows, answer, self.spec.slo_ms, self.spec.percentile,
                                           self.run_dir / PLOT) else None
            except Exception as exc:  # noqa: BLE001 - the measurements are on disk already
                self.warnings.append(f"could not draw {PLOT}: {exc}")
        from batchbench.runfiles import write_atomic
        from batchbench.serving.report import serving_markdown

        write_atomic(self.run_dir / "report.md", serving_markdown(self.config.name, self.rows, self.summary(), image),
                     fsync=False)
        self._write_run_json()

    def _write_run_json(self) -> None:
        settings = self.config.measured_settings()
        record = {
            "schema_version": RESULTS_SCHEMA_VERSION, "batchbench_version": __version__, "kind": "serving",
            "run_id": self.start.run_id, "name": self.config.name, "status": self.status, "error": self.error,
            "argv": sys.argv,
            "config_file": self.config.source_file, "base_dir": self.config.base_dir, "config": self.raw,
            "config_resolved": self.config.resolved(), "config_hash": settings_hash(settings),
            "measured_settings": settings, "git": git_info(self.config.base_dir) or git_info("."),
            "environment": self.env, "model_info": self.preflight, "started_at": self.start.started_at,
            "ended_at": now_iso() if self.status != "running" else None, "samples": {},
            "summary": self.summary(),
        }
        try:
            write_json_atomic(self.run_dir / RUN_JSON, finite(record))
        except OSError as exc:
            raise OutputError(f"cannot write {self.run_dir / RUN_JSON}: {exc.strerror or exc}") from None
