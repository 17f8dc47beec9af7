"""The statistics behind a speed verdict, with Holm's correction for testing many rows at once.
Pure Python, checked against scipy in the tests: importing scipy.stats alone takes longer than
comparing 100,000 rows.

Two tests, by what the runs hold:

- rounds (each a fresh process) on both sides, two or more each: the rounds are the independent
  unit and the repeats inside a round are sub-samples of it. The model is two-level, log
  throughput = side + round + repeat; its side effect is tested against the variation between
  rounds: Welch's t on the rounds' log medians (Satterthwaite's degrees of freedom), the same
  figures the sweep's interval (throughput_sps_ci_low/high) is made of. `rounds_test`.
- a group's speed as a whole (every batch size of one mode/method): per round, the mean over
  the group's rows of their log round medians, then Welch's t on those per-round figures. The
  rows of one round ran in the same pass over the machine, so the round stays the unit; the
  average over rows takes out most of each row's own noise, which is what lets a uniform
  slowdown too small for any single row be found. `group_test`.
- otherwise (a run saved before rounds, or one round a side): the repeats are the unit, and the
  test is a two-sided Mann–Whitney U on the per-repeat throughputs. `mann_whitney`.
"""

from __future__ import annotations

import math
import statistics


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


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Ranks from 1, ties given their average rank; and the size of each group of ties."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks, ties = [0.0] * len(values), []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def _u_counts(m: int, n: int) -> list[int]:
    """How many of the C(m+n, m) orderings of two samples give each U = 0..m*n: the
    coefficients of the Gaussian binomial [m+n choose m], built by exact polynomial steps."""
    k = min(m, n)
    poly = [1]
    for i in range(1, k + 1):
        # multiply by (1 - q^(m+n-k+i)), then divide by (1 - q^i): both exact over the integers
        a = m + n - k + i
        grown = poly + [0] * a
        for d in range(len(poly)):
            grown[d + a] -= poly[d]
        for d in range(i, len(grown)):
            grown[d] += grown[d - i]
        poly = grown[: len(grown) - i]
    return poly


def mann_whitney(baseline: list[float], current: list[float]) -> tuple[float, bool]:
    """Two-sided Mann–Whitney U p-value, and whether the current samples tend to be lower than
    the baseline's. As scipy.stats.mannwhitneyu(current, baseline) decides by default: the exact
    null distribution when a sample has at most 8 values and nothing is tied, else the normal
    approximation with the tie correction and a continuity correction of 1/2."""
    n1, n2 = len(current), len(baseline)
    ranks, ties = _ranks(list(current) + list(baseline))
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2
    lower = u1 < n1 * n2 / 2
    u = max(u1, n1 * n2 - u1)
    if min(n1, n2) <= 8 and all(t == 1 for t in ties):
        counts = _u_counts(n1, n2)
        p = 2 * sum(counts[int(round(u)):]) / math.comb(n1 + n2, n1)
    else:
        n = n1 + n2
        variance = n1 * n2 / 12 * ((n + 1) - sum(t ** 3 - t for t in ties) / (n * (n - 1)))
        if variance <= 0:
            return 1.0, lower  # every value the same: nothing to tell apart
        z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
        p = math.erfc(z / math.sqrt(2))
    return (min(1.0, p) if math.isfinite(p) else 1.0), lower


def round_medians(values: list[float], rounds: list[int] | None) -> list[float]:
    """The median throughput of each round, in round order (one round when `rounds` is None)."""
    if rounds is None:
        return [statistics.median(values)]
    by_round = medians_by_round(values, rounds)
    return [by_round[r] for r in sorted(by_round)]


def medians_by_round(values: list[float], rounds: list[int]) -> dict[int, float]:
    """Round -> the median throughput of its repeats."""
    by_round: dict[int, list[float]] = {}
    for value, r in zip(values, rounds, strict=True):
        by_round.setdefault(r, []).append(value)
    return {r: statistics.median(v) for r, v in by_round.items()}


def round_count(rounds: list[int] | None) -> int:
    return len(set(rounds)) if rounds else 1


def _beta_cf(a: float, b: float, x: float) -> float:
    """The continued fraction of the regularized incomplete beta function (modified Lentz)."""
    tiny, qab, qap, qam = 1e-300, a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 400):
        m2 = 2 * m
        for num in (m * (b - m) * x / ((qam + m2) * (a + m2)), -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))):
            d = 1.0 + num * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + num / c
            c = c if abs(c) > tiny else tiny
            h *= d * c
        if abs(d * c - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """The regularized incomplete beta function I_x(a, b)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_cf(a, b, x) / a
    return 1.0 - front * _beta_cf(b, a, 1.0 - x) / b


def t_two_sided(t: float, df: float) -> float:
    """P(|T| >= |t|) for Student's t with `df` degrees of freedom (df need not be whole)."""
    if not math.isfinite(t):
        return 0.0
    return min(1.0, _betainc(df / 2.0, 0.5, df / (df + t * t)))


def welch(baseline: list[float], current: list[float]) -> tuple[float, float, float] | None:
    """Welch's t of current against baseline: (t, degrees of freedom, two-sided p). None when
    both samples are constant (no variation to test against) or one has fewer than 2 values."""
    nb, nc = len(baseline), len(current)
    if nb < 2 or nc < 2:
        return None
    vb, vc = statistics.variance(baseline) / nb, statistics.variance(current) / nc
    se2 = vb + vc
    if se2 <= 0.0:
        return None
    t = (statistics.fmean(current) - statistics.fmean(baseline)) / math.sqrt(se2)
    df = se2 * se2 / (vb * vb / (nb - 1) + vc * vc / (nc - 1))
    return t, df, t_two_sided(t, df)


def rounds_test(baseline: list[float], baseline_rounds: list[int], current: list[float],
                current_rounds: list[int]) -> tuple[float, bool] | None:
    """The two-level test: Welch's t on the log of each round's median throughput. Returns the
    two-sided p-value and whether the current rounds tend to be slower; None when it cannot
    be made (fewer than two rounds a side, a median that is not positive, or rounds that do not
    vary at all: then the repeats are the unit, see mann_whitney)."""
    b, c = round_medians(baseline, baseline_rounds), round_medians(current, current_rounds)
    if min(b + c) <= 0:
        return None
    found = welch([math.log(v) for v in b], [math.log(v) for v in c])
    if found is None:
        return None
    t, _, p = found
    return (p if math.isfinite(p) else 1.0), t < 0


def group_rounds(rows: list[tuple[list[float], list[int]]]) -> list[float]:
    """A group's log throughput per round: the mean over its rows of each row's log round
    median, over the rounds every row has (rows past the minimum rounds have more than others)."""
    by_row = [medians_by_round(values, rounds) for values, rounds in rows]
    common = set.intersection(*(set(m) for m in by_row)) if by_row else set()
    if any(by_row[i][r] <= 0 for i in range(len(by_row)) for r in common):
        return []
    return [statistics.fmean(math.log(m[r]) for m in by_row) for r in sorted(common)]


def group_test(baseline: list[float], current: list[float]) -> tuple[float, float, bool] | None:
    """Welch's t on two sides' per-round group figures (group_rounds): the ratio of the group's
    geometric-mean throughput (current / baseline), the two-sided p-value, and whether the
    current is slower; None with fewer than two rounds a side or no variation at all."""
    found = welch(baseline, current)
    if found is None:
        return None
    t, _, p = found
    ratio = math.exp(statistics.fmean(current) - statistics.fmean(baseline))
    return ratio, (p if math.isfinite(p) else 1.0), t < 0


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
