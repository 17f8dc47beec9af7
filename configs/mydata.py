"""A data loader for configs/callable-data.yaml (`callable: {function: "mydata:spirals"}`).

batchbench calls it in its worker process with the config's `kwargs`; it returns `(x, y)`
arrays: here two interleaved spirals, made from a fixed seed (nothing downloaded).
"""

from __future__ import annotations

import numpy as np


def spirals(samples: int = 1024, noise: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    half = samples // 2
    t = np.sqrt(rng.uniform(0, 1, half)) * 3 * np.pi
    arm = np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x = np.concatenate([arm, -arm]) + rng.normal(0, noise, (2 * half, 2))
    y = np.concatenate([np.zeros(half), np.ones(half)]).astype("int32")
    order = rng.permutation(2 * half)
    return x[order].astype("float32"), y[order]
