"""The statistics behind a speed verdict: Mann–Whitney U on per-repeat throughputs, with
Holm's correction for testing many rows at once. scipy is imported only when a test runs."""

from __future__ import annotations

import math


def min_p_value(n_baseline: int, n_current: int) -> float:
    """The smallest two-sided Mann–Whitney p-value these sample sizes can ever give (complete
    separation): 0.10 at 3 vs 3, 0.0022 at 6 vs 6, 0.00058 at 7 vs 7."""
    if n_baseline < 1 or n_current < 1:
        return 1.0
    return min(1.0, 2.0 / math.comb(n_baseline + n_current, n_baseline))


def repeats_needed(alpha: float) -> int:
    """The fewest repeats per run (equal on both sides) that can reach `alpha` at all."""
    n = 1
    while min_p_value(n, n) > alpha:
        n += 1
    return n


def mann_whitney(baseline: list[float], current: list[float]) -> tuple[float, bool]:
    """Two-sided p-value, and whether the current samples tend to be lower than the baseline's."""
    from scipy.stats import mannwhitneyu

    result = mannwhitneyu(current, baseline, alternative="two-sided")
    p = float(result.pvalue)
    lower = float(result.statistic) < len(current) * len(baseline) / 2
    return (p if math.isfinite(p) else 1.0), lower


def holm(p_values: list[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values, in the order given (step-down, monotone)."""
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted = [1.0] * m
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted
