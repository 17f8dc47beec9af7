"""What differs between the machines and software of two runs: the figures of runs made on
different machines differ for reasons that have nothing to do with the change under test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# (key, label) in the order a warning names them.
FIELDS = [
    ("tf_devices", "devices TensorFlow used"),
    ("gpu_names", "GPU"),
    ("gpu_count", "GPU count"),
    ("driver", "NVIDIA driver"),
    ("tensorflow", "TensorFlow"),
    ("keras", "Keras"),
    ("keras_backend", "Keras backend"),
    ("jax", "JAX"),
    ("torch", "torch"),
    ("cpu_model", "CPU model"),
]
# The backends' own versions, which run.json holds only where that backend ran.
BACKEND_VERSIONS = ("jax", "torch")


def describe(env: dict[str, Any] | None) -> dict[str, Any]:
    """The fields that decide what a run measures, from run.json's environment record."""
    if not env:
        return {}
    nvml = env.get("nvml") if isinstance(env.get("nvml"), dict) else {}
    framework = env.get("framework") if isinstance(env.get("framework"), dict) else {}
    gpus = [g for g in nvml.get("gpus") or [] if isinstance(g, dict)] if isinstance(nvml.get("gpus"), list) else []
    out: dict[str, Any] = {
        "cpu_model": env.get("cpu_model"),
        "gpu_count": len(gpus) if "gpus" in nvml else None,
        "gpu_names": ", ".join(str(g.get("name")) for g in gpus) or ("none" if "gpus" in nvml else None),
        "driver": nvml.get("driver"),
        "tensorflow": framework.get("tensorflow"),
        "keras": framework.get("keras"),
        "keras_backend": framework.get("keras_backend"),
    }
    out.update((key, framework[key]) for key in BACKEND_VERSIONS if framework.get(key) is not None)
    devices = framework.get("tf_devices")
    if isinstance(devices, list):
        kinds = [str(d.get("type")) for d in devices if isinstance(d, dict)]
        out["tf_devices"] = ", ".join(f"{kinds.count(k)}× {k}" for k in sorted(set(kinds))) or None
    return out


@dataclass
class EnvironmentDiff:
    baseline: dict[str, Any]
    current: dict[str, Any]
    differences: list[tuple[str, Any, Any]] = field(default_factory=list)  # (label, baseline, current)
    unknown: list[str] = field(default_factory=list)  # run labels with no environment record

    @property
    def differs(self) -> bool:
        return bool(self.differences)

    def warnings(self) -> list[str]:
        out = []
        if self.differences:
            what = "; ".join(f"{label} {b!r} → {c!r}" for label, b, c in self.differences)
            out.append(f"the two runs were made in different environments ({what}): differences in the "
                       "figures may come from the machine, not the change. Compare runs made on the same "
                       "runner.")
        if self.unknown:
            which = " and ".join(dict.fromkeys(self.unknown))
            out.append(f"no environment record (no run.json) for {which}: the environments cannot be compared")
        return out


def diff_environments(baseline: dict | None, current: dict | None, labels: tuple[str, str]) -> EnvironmentDiff:
    b, c = describe(baseline), describe(current)
    unknown = [label for label, env in zip(labels, (baseline, current), strict=True) if not env]
    result = EnvironmentDiff(b, c, unknown=unknown)
    if b and c:
        for key, label in FIELDS:
            # A field one record lacks (an older run.json) is unknown, not different.
            if b.get(key) is not None and c.get(key) is not None and b[key] != c[key]:
                result.differences.append((label, b[key], c[key]))
    return result
