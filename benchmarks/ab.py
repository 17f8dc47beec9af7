"""Why a fidelity ratio misses: batchbench's own timing functions and the hand-written
ones, alternating on one model in one process, so that the machine's drift (which moves
`make bench`'s two sides, minutes apart, by tens of percent on a shared machine) cancels
and what is left is the difference between the two definitions. A diagnostic, not part
of `make bench`:

    .venv/bin/python benchmarks/ab.py --model mlp --batch-sizes 16,128,1024 --rounds 5

Prints, per mode and batch size, the median over rounds of batchbench's figure over the
hand-written one measured next to it (just before it in even rounds, just after in odd). No fork here: a process effect would not show.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import cases, handwritten  # noqa: E402


def median_of(repeat_samples: list[int], repeat_time_s: list[float]) -> float:
    return statistics.median(s / t for s, t in zip(repeat_samples, repeat_time_s, strict=True))


def one_side(side: str, mode: str, model, x, y, b: int, sweep: dict, reps: int, min_time: float):
    """The hand-written throughputs (side "hand") or batchbench's measurement ("bb")."""
    from batchbench.worker.data import Dataset
    from batchbench.worker.fit import measure_fit
    from batchbench.worker.predict import measure_predict, measure_serve

    if side == "hand":
        if mode == "fit":
            return handwritten.fit_throughputs(model, x, y, b, reps, min_time)
        if mode == "serve":
            return handwritten.serve_throughputs(model, x, b, reps, min_time)
        return handwritten.predict_throughputs(model, x, b, reps, min_time)
    if mode == "fit":
        return measure_fit(model, Dataset(x, y, "synthetic"), b, sweep)
    if mode == "serve":
        return measure_serve(model, x, b, sweep, jit_compile=False)
    return measure_predict(model, x, b, sweep)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="mlp", choices=["mlp", "wide", "cnn", "mobilenetv2"])
    parser.add_argument("--batch-sizes", default="16,128,1024")
    parser.add_argument("--modes", default="fit,predict,serve")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    case = {c.name: c for c in (cases.MLP, cases.WIDE, cases.CNN, cases.MOBILENET)}[args.model]
    settings = cases.FULL
    request = case.request("fidelity", settings)
    sweep = {**settings.sweep(), "stability": {"window_steps": 10, "tolerance": 0.10, "max_windows": 12}}
    x, y = handwritten.make_data(request)
    reps, min_time = settings.repeats, settings.min_time_s
    print(f"{args.model}: batchbench / hand-written, same model, same process, {args.rounds} alternating rounds")
    for mode in args.modes.split(","):
        for b in (int(v) for v in args.batch_sizes.split(",")):
            model = handwritten.build_model(request)
            ratios = []
            for r in range(args.rounds):
                # Odd rounds run batchbench first: a drift within a round cancels over pairs.
                order = ("bb", "hand") if r % 2 else ("hand", "bb")
                got = {side: one_side(side, mode, model, x, y, b, sweep, reps, min_time) for side in order}
                m, hand = got["bb"], got["hand"]
                ratios.append(median_of(m["repeat_samples"], m["repeat_time_s"]) / statistics.median(hand))
            print(f"  {mode:8} b={b:<5} median {statistics.median(ratios):.3f}  "
                  f"rounds {' '.join(f'{r:.3f}' for r in ratios)}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
