"""`make bench`: batchbench's figures against hand-written Keras, side by side.

    .venv/bin/python benchmarks/bench.py [--quick] [--out DIR] [--keep-runs] [--compare-scale]

Five sections, one table: (1) fidelity, batchbench's throughput over a hand-written
script's, per model, mode and batch size; (2) overhead, a sweep's wall time over one
process doing the same trials; (3) repeatability, the same sweep twice; (4) memory, the
reported peak against a fresh process's; (5) start-up of the commands that never import
TensorFlow. Every figure is printed beside its goal and written to DIR as bench.csv,
bench.md and bench.json. `--quick` runs the smallest case of everything (the test suite
runs it so that this code cannot rot); its figures prove nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script (`make bench`): make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cases, fidelity, memory, overhead, repeatability, startup, tool  # noqa: E402
from benchmarks.figures import Figure, goals_summary, markdown_table, text_table, to_csv  # noqa: E402

DEFAULT_OUT = Path(__file__).resolve().parent / "results"
QUIET_SHARE = 0.10  # other processes' CPU share above which the summary warns


def measure(ctx: tool.Context) -> list[Figure]:
    """Every section in order; a section that fails becomes a failed figure, not a lost run."""
    figures: list[Figure] = []

    def guarded(section: str, fn):
        try:
            return fn()
        except tool.BenchError as exc:
            ctx.log(f"{section} failed: {exc}")
            figures.append(Figure(section, "section could not run", None, "", "runs", False, detail=str(exc)))
            return None

    fid = guarded("fidelity", lambda: fidelity.run(ctx))
    runs = fid[1] if fid else {}
    figures += fid[0] if fid else []
    over = guarded("overhead", lambda: overhead.run(ctx))
    if over:
        figures += over[0] + repeatability.figures(ctx.plan.sweep.name, over[1], over[2])
    else:
        figures.append(Figure("repeatability", "section could not run", None, "", "runs", False,
                              detail="it compares the overhead section's two sweeps"))
    figures += guarded("memory", lambda: memory.run(ctx, runs)) or []
    # compare needs two saved runs: the overhead section's, else two small ones of its own
    figures += guarded("startup", lambda: startup.run(ctx, *(over[1:] if over else startup.two_runs(ctx)))) or []
    return figures


def machine() -> dict:
    """What produced the figures: the machine and the code, without importing TensorFlow."""
    from batchbench.envinfo import git_info, host_environment

    env = host_environment()

    def version(dist: str) -> str | None:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return None

    gpus = [g["name"] for g in (env.get("nvml") or {}).get("gpus") or []]
    return {
        "cpu_model": env["cpu_model"], "cpu_cores_logical": env["cpu_cores_logical"],
        "memory_total_mib": round(env["memory_total_mib"]), "gpus": gpus, "os": env["os"],
        "python": env["python"], "tensorflow": version("tensorflow"), "keras": version("keras"),
        "batchbench": version("batchbench"), "git": git_info(str(tool.ROOT)),
        "load_average_start": env["load_average"],
    }


def describe(info: dict) -> str:
    cores = f"{info['cpu_cores_logical']} cores"
    device = ", ".join(info["gpus"]) if info["gpus"] else "no GPU"
    git = info.get("git") or {}
    commit = f", batchbench {git['commit'][:10]}{' (dirty)' if git.get('dirty') else ''}" if git else ""
    def load(key: str) -> str:
        return "/".join(f"{v:.2f}" for v in info.get(key) or [])

    return (f"{info['cpu_model']}, {cores}, {info['memory_total_mib'] / 1024:.0f} GiB, {device}; "
            f"TensorFlow {info['tensorflow']}, Keras {info['keras']}, Python {info['python']}{commit}; "
            f"load average {load('load_average_start')} at the start, {load('load_average_end')} at the end; "
            f"bench took {info['bench_wall_s'] / 60:.1f} min")


def noise_warning(info: dict) -> str:
    share = info.get("others_cpu_share_max")
    if share is None or share <= QUIET_SHARE:
        return ""
    return (f" Warning: other processes took up to {share:.0%} of the CPUs while a side ran; ratios outside "
            "their spread are more likely the machine than the tool.")


def write_outputs(out: Path, figures: list[Figure], info: dict, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench.csv").write_text(to_csv(figures))
    (out / "bench.json").write_text(json.dumps({"machine": info, "quick": quick,
                                                "figures": [asdict(f) for f in figures]}, indent=2))
    title = "batchbench against hand-written Keras" + (" (--quick: smallest cases, figures prove nothing)"
                                                        if quick else "")
    (out / "bench.md").write_text(f"### {title}\n\nMeasured {info['date']} on {describe(info)}.\n\n"
                                  f"{markdown_table(figures)}\n\n{goals_summary(figures)}.{noise_warning(info)}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="the smallest case of everything (seconds, not proof)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where the table goes (default {DEFAULT_OUT})")
    parser.add_argument("--keep-runs", action="store_true",
                        help="keep the sweeps and hand-written results under OUT/work (default: a temporary folder)")
    parser.add_argument("--compare-scale", action="store_true",
                        help="only compare at scale: two 100k-row runs, each format timed (no TensorFlow)")
    args = parser.parse_args(argv)
    if args.compare_scale:
        from benchmarks import compare_scale

        return compare_scale.main(["--rows", "1000"] if args.quick else [])

    started = time.perf_counter()
    info = machine()
    info["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    with tempfile.TemporaryDirectory(prefix="batchbench-bench-") as tmp:
        work = args.out / "work" if args.keep_runs else Path(tmp)
        ctx = tool.Context(cases.plan(args.quick), work)
        figures = measure(ctx)
    info["load_average_end"] = list(os.getloadavg())
    info["bench_wall_s"] = time.perf_counter() - started
    info["others_cpu_share_max"] = ctx.busiest_share()
    write_outputs(args.out, figures, info, args.quick)
    print(f"Measured on {describe(info)}\n")
    print(text_table(figures))
    print(f"\n{goals_summary(figures)}.{noise_warning(info)} Written to {args.out}/bench.csv, bench.md and bench.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
