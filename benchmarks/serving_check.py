"""`batchbench serving`'s finish line, measured: is the max it reports a real max?

    .venv/bin/python benchmarks/serving_check.py [--slo-ms 20] [--remeasure-s 1] [--keep DIR] [--skip-example]

1. A model the tool was not tuned on (a wide MLP: 2 Dense layers of 1536 on 128 inputs) is
   searched with `batchbench serving --slo-ms 20`. Its answer (max_batch_size, timeout, max_qps)
   is then re-measured alone, with another arrival seed, at max_qps and at 1.5 x max_qps
   (`--rates`, each point at least `--remeasure-s` long: default 1 s, as a search point; 5 s
   is as long as the tool's own repeats): at max_qps the p99 must be <= 1.1 x SLO with achieved
   >= 0.95 x offered, and at 1.5 x it must miss (p99 > SLO, or the server falls behind).
2. The TF Serving and Triton files of that run must carry the setting of its JSON summary.
3. The shipped example (examples/serving/serving.yaml) is run as shipped, and its simulated and
   measured max rates are printed per measured setting, with the gap (done when within 20%).

Each run is a real `batchbench serving` command in its own process (this script never imports
TensorFlow). On a shared machine the figures move with the other load: the script prints the
load average before and after, and a miss is reported as such, never retried until it passes."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchbench.serving.outputs import parse_server_files, read_serving_rows  # noqa: E402

WIDE_MLP = {
    "name": "serving-check-wide-mlp",
    "model": {"builtin": "mlp", "kwargs": {"hidden": 1536, "depth": 2}},
    "data": {"synthetic": {"samples": 1024, "input_shape": [128], "num_classes": 10}},
    "serving": {"max_batch_sizes": [1, 4, 16, 64], "timeouts_ms": [0, 2, 5], "measure_top": 3},
}


WIDE_MLP_MAX_DURATION_S = 4.0  # the serving default: a re-measure is never shorter than a search point


def serving(*args: str) -> tuple[int, dict | None, str]:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "batchbench", "serving", *args, "--json", "--quiet"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    print(f"  batchbench serving {' '.join(args)}: exit {proc.returncode}, {time.perf_counter() - started:.0f} s")
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = None
    return proc.returncode, summary, proc.stderr


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg()) + f" on {os.cpu_count()} cores"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--slo-ms", type=float, default=20.0)
    parser.add_argument("--keep", type=Path, help="Keep the run folders here.")
    parser.add_argument("--skip-example", action="store_true")
    parser.add_argument("--remeasure-s", type=float, default=1.0,
                        help="How long each re-measured point runs, at least (default 1 s, a search point's own "
                             "minimum; 5 = as long as the tool's repeats, confirm_duration_s).")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="A serving: key of the search's config (e.g. confirm_repeats=1), to compare variants.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="serving-check-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"load average at start: {load()}")
    failures = []

    # 1. search the wide MLP, then re-measure its answer alone
    config = work / "wide.yaml"
    given = {k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)}
    config.write_text(yaml.safe_dump({**WIDE_MLP, "serving": {**WIDE_MLP["serving"], **given}}))
    code, summary, err = serving(str(config), "--slo-ms", f"{args.slo_ms:g}", "--out", str(work / "search"))
    if code != 0 or not summary:
        print(err[-2000:])
        return 1
    answer = summary["serving"]
    print(f"  answer: {answer}")
    if answer is None:
        print("FAIL: no setting met the SLO")
        return 1
    again = {**WIDE_MLP, "name": "serving-check-again", "sweep": {"batch_sizes": [1], "modes": ["predict"],
                                                                   "methods": ["serve"], "seed": 1},
             "serving": {"min_duration_s": args.remeasure_s,
                         "max_duration_s": max(args.remeasure_s, WIDE_MLP_MAX_DURATION_S)}}
    config2 = work / "again.yaml"
    config2.write_text(yaml.safe_dump(again))
    rate, above = answer["max_qps"], 1.5 * answer["max_qps"]
    code, _, err = serving(str(config2), "--slo-ms", f"{args.slo_ms:g}", "--out", str(work / "again"),
                          "--max-batch-sizes", str(answer["max_batch_size"]),
                          "--timeouts-ms", f"{answer['batch_timeout_ms']:g}", "--rates", f"{rate:.6g},{above:.6g}",
                          "--measure-top", "1")
    if code != 0:
        print(err[-2000:])
        return 1
    rows = [r for r in read_serving_rows(work / "again" / "serving.csv") if r["source"] == "measured"]
    at = min(rows, key=lambda r: abs(r["offered_qps"] - rate))
    hi = min(rows, key=lambda r: abs(r["offered_qps"] - above))
    holds = at["latency_ms_p99"] <= 1.1 * args.slo_ms and at["achieved_qps"] >= 0.95 * at["offered_qps"]
    breaks = hi["latency_ms_p99"] > args.slo_ms or hi["achieved_qps"] < 0.95 * hi["offered_qps"]
    for name, row in (("at max_qps", at), ("at 1.5 x max_qps", hi)):
        print(f"  re-measured {name}: offered {row['offered_qps']:.0f} req/s, achieved {row['achieved_qps']:.0f}, "
              f"p99 {row['latency_ms_p99']:.2f} ms, mean batch {row['batch_size_mean']:.1f}, "
              f"{row['requests']} requests")
    print(f"  {'PASS' if holds else 'FAIL'}: holds at max_qps (p99 <= {1.1 * args.slo_ms:g} ms, achieved >= 95%)")
    print(f"  {'PASS' if breaks else 'FAIL'}: misses at 1.5 x max_qps")
    failures += [] if holds else ["the answer does not hold when re-measured"]
    failures += [] if breaks else ["1.5 x the answer still meets the SLO: not a max"]

    # 2. the files carry the summary's setting
    files = parse_server_files(work / "search")
    same = all(files[form] == {k: answer[k] for k in ("max_batch_size", "batch_timeout_ms", "num_batch_threads")}
               for form in files)
    print(f"  {'PASS' if same else 'FAIL'}: TF Serving and Triton files carry the summary's setting {files}")
    failures += [] if same else ["the server files disagree with the summary"]

    # 3. the shipped example: simulated against measured
    if not args.skip_example:
        code, summary, err = serving(str(ROOT / "examples" / "serving" / "serving.yaml"), "--out",
                                     str(work / "example"))
        if code != 0 or not summary:
            print(err[-2000:])
            return 1
        print(f"  example answer: {summary['serving']}")
        for gap in summary["simulated_vs_measured"]:
            within = gap["gap_pct"] is not None and abs(gap["gap_pct"]) <= 20
            print(f"  max_batch_size {gap['max_batch_size']}, timeout {gap['batch_timeout_ms']:g} ms: simulated "
                  f"{gap['simulated_max_qps']}, measured {gap['measured_max_qps']} req/s, gap "
                  f"{'n/a' if gap['gap_pct'] is None else format(gap['gap_pct'], '+.0f') + '%'}"
                  f" {'(within 20%)' if within else '(OUTSIDE 20%)'}; the search's max before the repeats "
                  f"{gap['search_max_qps']} req/s, gap "
                  f"{'n/a' if gap['search_gap_pct'] is None else format(gap['search_gap_pct'], '+.0f') + '%'}")
    print(f"load average at end: {load()}")
    print(f"run folders: {work}")
    for failure in failures:
        print(f"FAIL: {failure}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
