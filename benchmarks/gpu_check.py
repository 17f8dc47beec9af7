"""`make gpu-check`: the prepared device check, one command on the GPU machine.

On a GPU (NVML sees one) it runs, each as a real `batchbench` command:
  env       `batchbench env --json` for jax and torch
  resnet50  ResNet50 (224x224) predict and serve at batch 1, 32, 256, 1024 on JAX
  mlp       the quickstart MLP, fit and predict, on JAX and on torch
  findmax   a --find-max fit under --device-memory-limit 4GiB on JAX (real device OOMs, a confirmed max)
  findmax-torch  the same under torch's per-process memory fraction
and writes into one folder (at most 8 files, none nested: what a device run brings back):
  env.json, results.csv (every row of every check, a `check` column first), summary.md and
  summary.json (the figures the issue asks for), log.txt (every command's output), runs.tar.gz
  (the run folders, when under 15 MiB).
With no GPU it runs a small version (tiny model, tiny sizes, a host --memory-limit in place of
the device limit) and says so in its first line, so the script is rehearsed before GPU time is spent.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchbench.envinfo import gpus_from_nvml  # noqa: E402

MiB = 2**20
KERAS_IO_RESNET50 = "keras.io Applications table: ResNet50, 4.6 ms per inference step on an A100 GPU (batch 32), 58.2 ms on CPU"


def importable(name: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(name) is not None


def mlp(hidden: int, depth: int, samples: int, features: int, classes: int = 10) -> dict:
    return {"model": {"builtin": "mlp", "kwargs": {"hidden": hidden, "depth": depth}},
            "data": {"synthetic": {"samples": samples, "input_shape": [features], "num_classes": classes}}}


def checks(gpu: bool, backends: list[str]) -> list[dict]:
    """Each check: a name, the batchbench arguments, and a config (None for env)."""
    quick = {"rounds": 1, "repeats": 3, "min_time_s": 0.2 if gpu else 0.02, "warmup_steps": 1, "min_steps": 3}
    out = [{"name": f"env-{b}", "args": ["env", "--json", "--backend", b], "config": None} for b in backends]
    if gpu:
        resnet = {"name": "resnet50", "model": {"application": "ResNet50", "kwargs": {"input_shape": [224, 224, 3]}},
                  "data": {"synthetic": {"samples": 1024}},
                  "sweep": {**quick, "batch_sizes": [1, 32, 256, 1024], "modes": ["predict"],
                            "methods": ["predict", "serve"], "backend": "jax"}}
        quickstart = {"name": "mlp", **mlp(128, 2, 2048, 32),  # the quickstart's model and data, three sizes
                      "sweep": {**quick, "batch_sizes": [16, 128, 512], "modes": ["fit", "predict"],
                                "methods": ["predict"], "backend": [b for b in backends]}}
        # Wide layers, so the ladder reaches the 4 GiB limit within a few doublings (compiles are cheap).
        findmax = {"name": "findmax", **mlp(4096, 3, 65536, 1024),
                   "sweep": {**quick, "batch_sizes": {"min": 1024, "max": 65536}, "modes": ["fit"], "find_max": True,
                             "search_granularity": 512, "device_memory_limit": "4GiB", "backend": "jax"}}
    else:
        resnet = {"name": "resnet50-small", "model": {"builtin": "cnn"},
                  "data": {"synthetic": {"samples": 64, "input_shape": [16, 16, 3], "num_classes": 4}},
                  "sweep": {**quick, "batch_sizes": [1, 8], "modes": ["predict"], "methods": ["predict", "serve"],
                            "backend": "jax"}}
        quickstart = {"name": "mlp-small", **mlp(16, 1, 256, 8, 4),
                      "sweep": {**quick, "batch_sizes": [16, 64], "modes": ["fit", "predict"],
                                "methods": ["predict", "serve"], "backend": [b for b in backends]}}
        # No device to limit: a host cap stands in; a small CNN's activations grow with the batch
        # (about 0.7 MiB a sample here), so the ladder still ends in OOMs and a confirmed maximum.
        findmax = {"name": "findmax-small", "model": {"builtin": "cnn", "kwargs": {"hidden": 8, "depth": 1, "filters": 16}},
                   "data": {"synthetic": {"samples": 512, "input_shape": [32, 32, 3], "num_classes": 4}},
                   "sweep": {**quick, "batch_sizes": {"min": 64, "max": 512}, "modes": ["fit"], "find_max": True,
                             "search_granularity": 64, "memory_limit": "620MiB", "backend": "jax"}}
    # Cheapest first: a check that would outrun --budget-s is ended there and the rest skipped.
    out += [{"name": "mlp", "config": quickstart}, {"name": "findmax", "config": findmax},
            {"name": "resnet50", "config": resnet}]
    if gpu and "torch" in backends:
        torch_max = json.loads(json.dumps(findmax))
        torch_max["name"], torch_max["sweep"]["backend"] = "findmax-torch", "torch"
        out.append({"name": "findmax-torch", "config": torch_max})
    return out


def run(args: list[str], log, timeout_s: float) -> tuple[int, str, float]:
    """One batchbench command; its output goes to the log. Returns (exit code, stdout, seconds)."""
    started = time.monotonic()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log.write(f"\n$ batchbench {' '.join(args)}\n")
    log.flush()
    proc = subprocess.Popen([sys.executable, "-m", "batchbench", *args], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = proc.communicate(timeout=timeout_s)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        # SIGTERM: batchbench keeps what finished, ends its worker processes (which hold the GPU) and exits.
        proc.terminate()
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        code, err = 124, (err or "") + f"gpu-check: ended at its budget, after {timeout_s:.0f} s\n"
    log.write(out if not args[0] == "env" else "(env record: env.json)\n")
    log.write(err)
    log.write(f"[exit {code}, {time.monotonic() - started:.1f} s]\n")
    log.flush()
    return code, out, time.monotonic() - started


def number(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def fmt(value, digits: int = 1) -> str:
    x = number(value)
    return "" if x is None else f"{x:.{digits}f}"


def summarise(gpu: bool, nvml: dict, outcomes: list[dict], rows: list[dict], runs: dict[str, dict]) -> tuple[str, dict]:
    """summary.md's text and summary.json's figures, from the rows as measured."""
    lines = []
    if gpu:
        names = "; ".join(f"{g['name']} ({g['memory_total_mib']:.0f} MiB)" for g in nvml["gpus"])
        lines.append(f"# batchbench gpu-check: {names}, driver {nvml.get('driver')}")
    else:
        lines.append("# batchbench gpu-check: no GPU: small version (tiny model, tiny sizes, a host memory cap in "
                     "place of --device-memory-limit); the device figures come from a run on a GPU")
    lines.append("")
    lines.append("| check | exit | seconds | rows | statuses |")
    lines.append("|---|---|---|---|---|")
    for o in outcomes:
        mine = [r for r in rows if r["check"] == o["name"]]
        counts = {}
        for r in mine:
            counts[r["status"]] = counts.get(r["status"], 0) + 1
        code = o["code"] if o["code"] is not None else f"skipped ({o.get('skipped')})"
        lines.append(f"| {o['name']} | {code} | {o['seconds']:.0f} | {len(mine)} | "
                     f"{', '.join(f'{k} {v}' for k, v in sorted(counts.items()))} |")
    figures: dict = {"gpu": gpu, "small_version": not gpu, "checks": outcomes}

    def table(title: str, subset: list[dict], cols: list[str]) -> None:
        lines.extend(["", f"## {title}", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)])
        for r in subset:
            lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")

    def view(r: dict) -> dict:
        return {**r, "ms_per_batch": fmt(r.get("step_ms_median"), 2), "throughput": fmt(r.get("throughput_sps"), 0),
                "peak_device_mib": fmt(r.get("peak_device_mib")), "nvml_process_mib": fmt(r.get("nvml_process_mib")),
                "peak_host_mib": fmt(r.get("peak_host_mib")), "j_per_1k": fmt(r.get("j_per_1k"), 2)}

    cols = ["backend", "mode", "method", "batch_size", "status", "ms_per_batch", "throughput", "peak_device_mib",
            "nvml_process_mib", "peak_host_mib", "j_per_1k"]
    resnet = [view(r) for r in rows if r["check"] == "resnet50"]
    table("ResNet50 224x224 on JAX" if gpu else "small CNN on JAX (ResNet50 on the GPU)", resnet, cols)
    b32 = [r for r in resnet if r["batch_size"] == "32" and r["status"] == "ok"]
    if gpu:
        lines += ["", KERAS_IO_RESNET50 + "; here, batch 32: "
                  + (", ".join(f"{r['method']} {r['ms_per_batch']} ms" for r in b32) or "no ok row")]
    figures["resnet50_batch32_ms"] = {r["method"]: number(r["ms_per_batch"]) for r in b32}
    table("The quickstart MLP, fit and predict, per backend", [view(r) for r in rows if r["check"] == "mlp"], cols)
    for name in ("findmax", "findmax-torch"):
        subset = [view(r) for r in rows if r["check"] == name]
        if not subset and name not in runs:
            continue
        cfg = (runs.get(name) or {}).get("config_resolved", {}).get("sweep", {})
        limit = cfg.get("device_memory_limit") or cfg.get("memory_limit")
        table(f"{name}: fit, --find-max under a {'device' if gpu else 'host'} limit of "
              f"{(limit or 0) / 2**30:g} GiB", subset, ["backend", "phase", "batch_size", "status", "oom_kind",
                                                      "peak_device_mib", "nvml_process_mib", "peak_host_mib", "error"])
        rec = ((runs.get(name) or {}).get("summary") or {}).get("recommendations", {}).get("fit", {})
        ooms = sorted(int(r["batch_size"]) for r in subset if r["status"] == "oom")
        confirmed = [r for r in subset if r.get("phase") == "confirm"]
        fits = bool(confirmed) and all(r["status"] == "ok" for r in confirmed)
        peak_col = "peak_device_mib" if gpu else "peak_host_mib"
        peaks = [number(r.get(peak_col)) for r in confirmed if number(r.get(peak_col)) is not None]
        under = bool(peaks) and limit is not None and max(peaks) * MiB <= limit
        figures[name] = {"limit_bytes": limit, "max_batch_size": rec.get("max_batch_size"),
                         "safe_batch_size": rec.get("safe_batch_size"), "oom_batch_sizes": ooms,
                         "confirm_rows_ok": fits, "confirm_peak_mib": max(peaks) if peaks else None,
                         "confirm_peak_under_limit": under}
        lines += ["", f"max_batch_size {rec.get('max_batch_size')}, safe_batch_size {rec.get('safe_batch_size')}; "
                      f"OOM at {', '.join(map(str, ooms)) or 'none'}; the confirm trial(s) "
                      f"{'ran ok' if fits else 'did not all run ok' if confirmed else 'did not run'}"
                      + (f", peak {max(peaks):.0f} MiB {'within' if under else 'OVER'} the limit" if peaks else "")]
    pairs = [(number(r.get("peak_device_mib")), number(r.get("nvml_process_mib"))) for r in rows]
    pairs = [(a, b) for a, b in pairs if a is not None and b is not None]
    energy = [number(r.get("j_per_1k")) for r in rows if number(r.get("j_per_1k")) is not None]
    figures["peak_vs_nvml_rows"] = len(pairs)
    figures["nvml_minus_peak_mib_median"] = sorted(b - a for a, b in pairs)[len(pairs) // 2] if pairs else None
    figures["rows_with_energy"] = len(energy)
    lines += ["", "## Memory and energy", "",
              f"peak_device_mib beside nvml_process_mib in {len(pairs)} row(s)"
              + (f"; NVML's figure exceeds the allocator's peak by {figures['nvml_minus_peak_mib_median']:.0f} MiB "
                 "(median)" if pairs else ""),
              f"j_per_1k (joules per 1000 samples) in {len(energy)} row(s)"
              + (f", from {min(energy):.2f} to {max(energy):.2f}" if energy else "")]
    return "\n".join(lines) + "\n", figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="the one folder everything is written to")
    parser.add_argument("--budget-s", type=float, default=420,
                        help="end the check running at this many seconds and skip the rest (default 420: a rerun "
                             "still fits the device's 15 minutes)")
    opts = parser.parse_args()
    out = Path(opts.out)
    out.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="batchbench-gpu-check-"))
    nvml = gpus_from_nvml()
    gpu = bool(nvml.get("gpus"))
    backends = [b for b in ("jax", "torch") if importable(b)]
    started = time.monotonic()
    print("gpu-check: " + ("GPU: " + ", ".join(g["name"] for g in nvml["gpus"]) if gpu else
                           "no GPU: small version") + f"; backends {', '.join(backends) or 'none'}", flush=True)
    outcomes, rows, runs, env = [], [], {}, {}
    with open(out / "log.txt", "w") as log:
        for check in checks(gpu, backends):
            left = opts.budget_s - (time.monotonic() - started)
            if left < 20:
                outcomes.append({"name": check["name"], "code": None, "seconds": 0.0, "skipped": "out of time"})
                continue
            if check["config"] is None:
                code, stdout, seconds = run(check["args"], log, min(left, 180))
                try:
                    env[check["name"].removeprefix("env-")] = json.loads(stdout)
                except json.JSONDecodeError:
                    env[check["name"].removeprefix("env-")] = {"error": f"exit {code}"}
            else:
                config_path = scratch / f"{check['name']}.yaml"
                config = {**check["config"], "output": {"plots": False}}  # the figures are the rows; plots cost seconds
                config_path.write_text(yaml.safe_dump(config))
                run_dir = scratch / "runs" / check["name"]
                code, _, seconds = run(["sweep", str(config_path), "--out", str(run_dir), "-q"], log, left)
                if (run_dir / "results.csv").exists():
                    with open(run_dir / "results.csv", newline="") as fh:
                        rows += [{"check": check["name"], **r} for r in csv.DictReader(fh)]
                if (run_dir / "run.json").exists():
                    runs[check["name"]] = json.loads((run_dir / "run.json").read_text())
            outcomes.append({"name": check["name"], "code": code, "seconds": round(seconds, 1)})
            print(f"gpu-check: {check['name']}: exit {code} in {seconds:.0f} s", flush=True)
    (out / "env.json").write_text(json.dumps({"nvml": nvml, "backends": env}, indent=2, default=str))
    fields = ["check"] + sorted({k for r in rows for k in r if k != "check"},
                                key=lambda k: list(rows[0]).index(k) if k in rows[0] else 999)
    with open(out / "results.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    text, figures = summarise(gpu, nvml, outcomes, rows, runs)
    figures["total_s"] = round(time.monotonic() - started, 1)
    (out / "summary.md").write_text(text + f"\ntotal {figures['total_s']:.0f} s\n")
    (out / "summary.json").write_text(json.dumps(figures, indent=2, default=str))
    if (scratch / "runs").exists():
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            tar.add(scratch / "runs", arcname="runs")
        if buffer.tell() < 15 * MiB:
            (out / "runs.tar.gz").write_bytes(buffer.getvalue())
    shutil.rmtree(scratch, ignore_errors=True)
    print(text, flush=True)
    failed = [o["name"] for o in outcomes if o["code"] not in (0,)]
    print(f"gpu-check: wrote {', '.join(sorted(p.name for p in out.iterdir()))} to {out} in {figures['total_s']:.0f} s"
          + (f"; not clean: {', '.join(failed)}" if failed else ""), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
