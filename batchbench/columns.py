"""The results.csv columns, in one place: name, type, unit and meaning. The CSV header order,
the typed reading (results.py), the pandas dtypes and the README's column table all come from
this list (`python -m batchbench.columns` prints the table; a test keeps the README equal)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from batchbench.axes import SPEC as AXIS_SPEC

Kind = Literal["text", "int", "float", "bool", "flag_or_text"]


@dataclass(frozen=True)
class Column:
    name: str
    kind: Kind
    unit: str
    meaning: str


C = Column
SPEC: tuple[Column, ...] = (
    # The columns every run has (the contract) first.
    C("run_id", "text", "", "which run"),
    C("name", "text", "", "the config's name"),
    C("model", "text", "", "which model"),
    C("mode", "text", "", "`fit` or `predict`"),
    C("method", "text", "", "empty for fit; `predict` (model.predict) or `serve` (the compiled call)"),
    C("batch_size", "int", "samples", "the global batch size"),
    C("status", "text", "", "`ok`, `oom`, `error`, `timeout` or `skipped`"),
    C("error", "text", "", "one-line reason when not ok (the traceback is in `trials/<trial_id>-r<round>.log`)"),
    C("throughput_sps", "float", "samples/s", "steady state: the geometric mean of the rounds' medians (one "
      "round: its median repeat)"),
    C("throughput_sps_min", "float", "samples/s", "the slowest repeat of any round"),
    C("throughput_sps_max", "float", "samples/s", "the fastest repeat of any round"),
    C("step_ms_median", "float", "ms", "per step (fit) or per batch (predict), the median (p50)"),
    C("step_ms_p90", "float", "ms", "90th percentile of the step times"),
    C("step_ms_p95", "float", "ms", "95th percentile of the step times"),
    C("step_ms_p99", "float", "ms", "99th percentile of the step times"),
    C("step_ms_max", "float", "ms", "the slowest step"),
    C("sample_ms", "float", "ms", "`step_ms_median / batch_size`"),
    C("first_step_s", "float", "s", "the first step, trace/compile included, kept out of the steady state"),
    C("wall_s", "float", "s", "the point's trials, all rounds, model building included"),
    C("peak_host_mib", "float", "MiB", "peak resident memory over `memory_window`, as if the trial had run alone "
      "(the highest of its rounds)"),
    C("peak_device_mib", "float", "MiB", "the trial's own peak accelerator memory (empty on CPU)"),
    C("repeats", "int", "", "timed repeats, all rounds together"),
    C("params", "int", "", "the model's parameter count"),
    C("stable", "bool", "", "predict: whether the timing windows agreed, in every round (each round's last three)"),
    # Later capabilities.
    C("trial_id", "text", "", "stable id of the point (used by compare; its rounds are `trials/<trial_id>-r<k>.*`)"),
    C("rounds", "int", "", "rounds that measured the point: the first in a fresh trial process, later ones "
      "shared with the group's other points (`sweep.rounds.shared`)"),
    C("throughput_sps_ci_low", "float", "samples/s", "95% interval of `throughput_sps` over rounds, low end (empty "
      "with one round)"),
    C("throughput_sps_ci_high", "float", "samples/s", "95% interval of `throughput_sps` over rounds, high end"),
    C("phase", "text", "", "`ladder`, or find-max's `search` / `confirm`"),
    C("steps", "int", "", "steady-state steps"),
    C("samples", "int", "samples", "steady-state samples (`samples / timed_s` lies within the throughput spread)"),
    C("timed_s", "float", "s", "steady-state seconds"),
    C("device", "text", "", "the device the trial ran on"),
    C("oom_kind", "text", "", "`host` or `device`"),
    C("headroom_mib", "float", "MiB", "memory left under the budget at the peak"),
    C("memory_window", "text", "", "what the memory peaks cover: `trial` (fit: the whole trial), `first_call` "
      "(predict: building everything and one whole `model.predict` over the data), `first_pass` (serve: the "
      "batches and one pass over them)"),
    C("max_abs_diff", "float", "", "predict: largest difference from the smallest batch size's predictions"),
    C("consistent", "bool", "", "predict: predictions agree with the smallest batch size within float noise"),
    *(C(a.name, "flag_or_text" if any(isinstance(v, bool) for v in a.values) else "text" if a.values else "int",
        "", f"sweep axis: {a.meaning}") for a in AXIS_SPEC),
    C("tokens_per_s", "float", "tokens/s", "with `sequence_length`: `throughput_sps × sequence_length`"),
    C("compute_only_sps", "float", "samples/s", "tf.data pipelines: the same model on a few of the same batches "
      "held in memory (fit and predict, in the first round); empty for arrays, which are in memory already"),
    C("input_bound_ratio", "float", "", "`compute_only_sps / throughput_sps`: about 1 when the pipeline keeps up"),
    C("input_bound", "bool", "", "`input_bound_ratio >= 1.25`, every compute-only repeat faster than every measured "
      "one (measured in the point's first round): the input pipeline, not the model, limits this batch size"),
    C("replicas", "int", "", "devices the global batch is split over"),
    C("per_replica_batch_size", "int", "samples", "each replica's share of the batch"),
    C("processes", "int", "", "multi-process runs: processes"),
    C("devices_per_process", "int", "", "multi-process runs: devices in each process"),
    C("per_process_batch_size", "int", "samples", "multi-process runs: each process's share of the batch"),
    C("final_loss", "float", "", "fit with `epochs` or `target`: the training loss reached"),
    C("val_loss", "float", "", "fit with validation data: the validation loss reached"),
    C("learning_rate", "float", "", "fit: the learning rate used (after `lr_scaling`)"),
    C("updates", "int", "", "fit quality run: optimizer steps"),
    C("epochs", "int", "", "fit quality run: epochs"),
    C("samples_seen", "int", "samples", "fit quality run: samples trained on"),
    C("train_time_s", "float", "s", "fit quality run: training time"),
    C("target", "text", "", "the target, e.g. `val_accuracy>=0.9`"),
    C("time_to_target_s", "float", "s", "when the target was reached (empty: never)"),
    C("epochs_to_target", "int", "", "epochs until the target was reached"),
    C("bn_small_batch", "bool", "", "fit: the model has BatchNormalization and the per-replica batch is under 16"),
    C("energy_j", "float", "J", "energy over the steady state (empty where not reported)"),
    C("j_per_1k", "float", "J", "energy per 1000 samples"),
    C("nvml_process_mib", "float", "MiB", "NVML's view of the trial process's GPU memory"),
    C("loss", "text", "", "fit: the loss the model was trained with"),
    C("finished_at", "text", "UTC", "when the trial ended (ISO 8601)"),
)
# Columns named after the user's metrics, e.g. val_accuracy, final_mae: floats.
PATTERNS = (("val_<metric>", "fit with validation data: each compiled metric on the validation data"),
            ("final_<metric>", "fit quality run: each compiled metric on the training data"))

COLUMNS: list[str] = [c.name for c in SPEC]
BY_NAME: dict[str, Column] = {c.name: c for c in SPEC}
INT_COLUMNS = frozenset(c.name for c in SPEC if c.kind == "int")
BOOL_COLUMNS = frozenset(c.name for c in SPEC if c.kind == "bool")
TEXT_COLUMNS = frozenset(c.name for c in SPEC if c.kind in ("text", "flag_or_text"))


def markdown_table() -> str:
    """The README's column table."""
    lines = ["| column | type | unit | meaning |", "|---|---|---|---|"]
    for c in SPEC:
        kind = {"flag_or_text": "text", "bool": "true/false"}.get(c.kind, c.kind)
        lines.append(f"| `{c.name}` | {kind} | {c.unit} | {c.meaning} |")
    for name, meaning in PATTERNS:
        lines.append(f"| `{name}` | float |  | {meaning} |")
    return "\n".join(lines) + "\n"


README_START = "<!-- columns:start (generated by `python -m batchbench.columns --write`) -->"
README_END = "<!-- columns:end -->"


def update_readme(path: str) -> bool:
    """Replace the README's column table with the generated one; True when it changed."""
    from pathlib import Path

    readme = Path(path)
    text = readme.read_text(encoding="utf-8")
    start, end = text.index(README_START) + len(README_START), text.index(README_END)
    new = text[:start] + "\n" + markdown_table() + text[end:]
    if new != text:
        readme.write_text(new, encoding="utf-8")
    return new != text


if __name__ == "__main__":
    import sys

    if "--write" in sys.argv:
        changed = update_readme(sys.argv[sys.argv.index("--write") + 1] if len(sys.argv) > 2 else "README.md")
        print("README.md updated" if changed else "README.md already up to date")
    else:
        sys.stdout.write(markdown_table())
