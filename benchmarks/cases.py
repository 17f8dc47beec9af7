"""What the bench measures: the models, data and sweep settings, full and --quick.

Each case is written once and turned into both sides: a batchbench config and the request
the hand-written script reads, so the two cannot drift apart. Every case's sample count is
a multiple of every batch size it runs, so neither side ever meets a partial last batch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

SEED = 0
NUM_CLASSES = 10


@dataclass(frozen=True)
class Settings:
    """batchbench's sweep settings; the hand-written side takes `repeats` and `min_time_s`
    for its own repeats (whole epochs / calls / passes lasting at least `min_time_s`)."""

    repeats: int = 5
    min_time_s: float = 0.25
    warmup_steps: int = 2
    min_steps: int = 5
    rounds: int = 3  # batchbench's rounds (fresh processes); the hand-written side is one process
    input_bound_check: bool = True  # as a user runs it (the diagnosis runs for pipelines only)

    def sweep(self) -> dict[str, Any]:
        return {"repeats": self.repeats, "min_time_s": self.min_time_s, "rounds": self.rounds,
                "warmup_steps": self.warmup_steps, "min_steps": self.min_steps, "seed": SEED,
                "input_bound_check": self.input_bound_check}


FULL = Settings()
QUICK = Settings(repeats=3, min_time_s=0.02, warmup_steps=1, min_steps=3, rounds=1, input_bound_check=False)


@dataclass(frozen=True)
class Case:
    name: str
    model: dict[str, Any]          # batchbench's `model` section
    input_shape: tuple[int, ...]
    samples: int
    batch_sizes: tuple[int, ...]
    modes: tuple[str, ...] = ("fit", "predict")
    methods: tuple[str, ...] = ("predict", "serve")

    def config(self, settings: Settings) -> dict[str, Any]:
        return {
            "name": self.name,
            "model": self.model,
            "data": {"synthetic": {"samples": self.samples, "num_classes": NUM_CLASSES}},
            "device": "auto",
            "sweep": {"batch_sizes": list(self.batch_sizes), "modes": list(self.modes),
                      "methods": list(self.methods), **settings.sweep()},
        }

    def trials(self) -> list[dict[str, Any]]:
        """In batchbench's order: fit at every size, then each predict method at every size."""
        out: list[dict[str, Any]] = []
        if "fit" in self.modes:
            out += [{"mode": "fit", "method": "", "batch_size": b} for b in self.batch_sizes]
        if "predict" in self.modes:
            out += [{"mode": "predict", "method": m, "batch_size": b} for m in self.methods for b in self.batch_sizes]
        return out

    def request(self, op: str, settings: Settings, trials: list[dict] | None = None) -> dict[str, Any]:
        """What the hand-written script needs to build the same model and data."""
        return {"op": op, "model": self.model, "input_shape": list(self.input_shape),
                "num_classes": NUM_CLASSES, "samples": self.samples, "seed": SEED,
                "repeats": settings.repeats, "min_time_s": settings.min_time_s,
                "warmup_steps": settings.warmup_steps, "trials": trials if trials is not None else self.trials()}


def powers_of_two(lo: int, hi: int) -> tuple[int, ...]:
    out, b = [], lo
    while b <= hi:
        out.append(b)
        b *= 2
    return tuple(out)


MLP = Case("mlp", {"builtin": "mlp", "kwargs": {"hidden": 64, "depth": 2}}, (32,), 8192, powers_of_two(16, 1024))
CNN = Case("cnn", {"builtin": "cnn", "kwargs": {"filters": 16, "depth": 2, "hidden": 64}}, (32, 32, 3), 2048,
           powers_of_two(16, 1024))
# Wide enough that a step is compute (256 -> 1024 x3 -> 10): where a per-step host sync
# shows in fit throughput. Diagnostic (benchmarks/ab.py --model wide), not in `make bench`.
WIDE = Case("wide", {"builtin": "mlp", "kwargs": {"hidden": 1024, "depth": 3}}, (256,), 4096,
            powers_of_two(16, 1024))
# Fit is slow on two cores at this size: predict only, up to 256.
MOBILENET = Case("mobilenetv2",
                 {"application": "MobileNetV2",
                  "kwargs": {"input_shape": [64, 64, 3], "alpha": 0.35, "classes": NUM_CLASSES}},
                 (64, 64, 3), 1024, powers_of_two(16, 256), modes=("predict",))
# The overhead and repeatability sweep: 8 batch sizes x fit and predict (model.predict).
SWEEP = Case("overhead-mlp", {"builtin": "mlp", "kwargs": {"hidden": 128, "depth": 2}}, (32,), 2048,
             powers_of_two(8, 1024), methods=("predict",))

TINY_MLP = {"builtin": "mlp", "kwargs": {"hidden": 16, "depth": 1}}


@dataclass(frozen=True)
class Plan:
    """Everything one bench run measures."""

    settings: Settings
    fidelity: tuple[Case, ...]
    sweep: Case
    memory: tuple[tuple[str, str, str, int], ...]  # (case, mode, method, batch size) from the fidelity rows
    startup_runs: int


def plan(quick: bool) -> Plan:
    if quick:
        tiny = replace(MLP, model=TINY_MLP, samples=256, batch_sizes=(16, 64))
        sweep = replace(SWEEP, name="overhead-tiny", model=TINY_MLP, samples=256, batch_sizes=(16, 64))
        return Plan(QUICK, (tiny,), sweep, (("mlp", "fit", "", 64),), startup_runs=1)
    return Plan(FULL, (MLP, CNN, MOBILENET), SWEEP,
                (("mlp", "fit", "", 1024), ("cnn", "fit", "", 1024), ("mobilenetv2", "predict", "predict", 256)),
                startup_runs=5)
