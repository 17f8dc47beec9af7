"""Which figures compare judges, which way is better, and how far a figure may move."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from batchbench.errors import BatchbenchError

SPEED = "speed"    # judged by threshold and a significance test on the raw repeats
MEMORY = "memory"  # nearly deterministic: judged by threshold alone


@dataclass(frozen=True)
class Metric:
    name: str
    higher_is_better: bool
    kind: str
    default_threshold: float | None  # a fraction; None: reported, judged only when named in --threshold


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("throughput_sps", True, SPEED, 0.05),
    Metric("step_ms_median", False, SPEED, 0.05),
    Metric("step_ms_p90", False, SPEED, 0.05),
    Metric("step_ms_p95", False, SPEED, 0.05),
    Metric("step_ms_p99", False, SPEED, 0.05),
    # The slowest single step: one GC pause or retrace decides it, so by default it is shown, not judged.
    Metric("step_ms_max", False, SPEED, None),
    Metric("sample_ms", False, SPEED, 0.05),
    Metric("peak_host_mib", False, MEMORY, 0.10),
    Metric("peak_device_mib", False, MEMORY, 0.10),
    # Per group, from run.json's summary (find_max): the largest batch that fits.
    Metric("max_batch_size", True, MEMORY, 0.10),
)}

# In METRICS' order, peak_device_mib last: inputs reads the rows of a CPU run (no device memory) fast.
ROW_METRICS = [name for name in METRICS if name != "max_batch_size"]

_PERCENT = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$")


class ThresholdError(BatchbenchError):
    """A --threshold that cannot be understood."""


def _percent(spec: str, text: str) -> float:
    match = _PERCENT.match(text)
    if not match:
        raise ThresholdError(f"--threshold {spec!r}: expected a percentage such as 5% or METRIC=PERCENT "
                             "such as peak_host_mib=10%")
    return float(match.group(1)) / 100.0


def parse_thresholds(specs: Iterable[str] = ()) -> dict[str, float | None]:
    """`5%` sets every metric judged by default; `METRIC=10%` sets one (and wins over `5%`,
    whatever the order). Returns metric -> fraction, None where a metric is only reported."""
    thresholds = {name: m.default_threshold for name, m in METRICS.items()}
    overall: float | None = None
    named: dict[str, float] = {}
    for spec in specs:
        if "=" in spec:
            name, _, text = spec.partition("=")
            name = name.strip()
            if name not in METRICS:
                raise ThresholdError(f"--threshold {spec!r}: unknown metric {name!r} "
                                     f"(known: {', '.join(METRICS)})")
            named[name] = _percent(spec, text)
        else:
            overall = _percent(spec, spec)
    if overall is not None:
        thresholds = {name: overall if t is not None else None for name, t in thresholds.items()}
    thresholds.update(named)
    return thresholds
