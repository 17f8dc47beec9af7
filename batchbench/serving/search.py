"""The search for the highest request rate a setting holds: a bracket, then a bisection.

From a starting rate (the simulator's answer, itself from the measured latency of each batch
size), rates go up or down by `factor` until one point meets the SLO and one does not; then
the geometric middle of the two is measured until they are within `rel_tol` of each other.
The answer is the highest rate that met the SLO below the lowest that did not: a noisy point
above a failure never counts. Pure: the caller measures; tests give it a synthetic latency."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field


def rate_key(rate: float) -> float:
    """Rates as stored and looked up (resume finds a point by it): 4 significant digits."""
    if rate <= 0:
        return rate
    digits = 3 - int(math.floor(math.log10(rate)))
    return round(rate, digits)


@dataclass
class RateSearch:
    start_qps: float
    rel_tol: float = 0.05
    factor: float = 1.5
    max_points: int = 10
    max_steps: int = 6  # bracket steps each way before giving up
    points: dict[float, bool] = field(default_factory=dict)  # rate -> met the SLO

    @property
    def lowest_failed(self) -> float | None:
        failed = [r for r, met in self.points.items() if not met]
        return min(failed) if failed else None

    @property
    def max_qps(self) -> float | None:
        """The highest rate that met the SLO below every rate that did not."""
        hi = self.lowest_failed
        met = [r for r, ok in self.points.items() if ok and (hi is None or r < hi)]
        return max(met) if met else None

    def next_rate(self) -> float | None:
        """The next rate to measure, or None when the search is over."""
        if not self.points:
            return rate_key(self.start_qps)
        if len(self.points) >= self.max_points:
            return None
        lo, hi = self.max_qps, self.lowest_failed
        if lo is None:
            if hi <= 1.001 * self.start_qps / self.factor ** self.max_steps:  # (rates are rounded)
                return None  # nothing meets the SLO, however light the load
            rate = hi / self.factor
        elif hi is None:
            if lo >= 0.999 * self.start_qps * self.factor ** self.max_steps:
                return None
            rate = lo * self.factor
        else:
            if hi / lo - 1.0 <= self.rel_tol:
                return None
            rate = math.sqrt(lo * hi)
        rate = rate_key(rate)
        return None if rate in self.points else rate

    def record(self, rate: float, met: bool) -> None:
        self.points[rate_key(rate)] = bool(met)

    def run(self, measure: Callable[[float], bool]) -> float | None:
        """Measure until the search is over; the max rate (None: no rate met the SLO)."""
        while (rate := self.next_rate()) is not None:
            self.record(rate, measure(rate))
        return self.max_qps


def search_settings(settings: list[dict], measure: Callable[[float, float, int], dict], known: list[dict],
                    rel_tol: float = 0.05, max_points: int = 10, confirmations: int = 3, repeats: int = 2,
                    holds: Callable[[dict], bool] | None = None) -> dict[str, float | None]:
    """One worker job's load points: for each setting ({batch_timeout_ms, start_qps} or
    {batch_timeout_ms, rates}) a search (or the given rates), `measure(timeout_ms, rate, repeat)`
    making each point's row. A point in `known` (measured before a resume) is not measured
    again: the search is deterministic, so it asks for the same points and finds them there.

    The search's answer is measured `repeats` more times with fresh arrivals (repeat 1, 2, ...):
    at the max rate the percentile sits on a cliff (a few percent more load and the queue never
    drains), so one point that met the SLO there is as likely luck as a max. Every repeat must
    pass `holds(row)` (default: it met the SLO; the worker asks for headroom too). A repeat that
    does not makes that rate a failed one, and the next met rate below it is the candidate (none
    below: the search goes on downwards), up to `confirmations` candidates; then the setting has
    no answer. outputs.setting_max reads
    the same rule back from the rows."""
    holds = holds or (lambda row: bool(row.get("slo_met")))
    found = {(float(p["batch_timeout_ms"]), rate_key(float(p["offered_qps"])), int(p.get("repeat") or 0)): p
             for p in known}

    def point(timeout_ms: float, rate: float, repeat: int = 0) -> dict:
        key = (timeout_ms, rate_key(rate), repeat)
        if key not in found:
            found[key] = measure(timeout_ms, rate_key(rate), repeat)
        return found[key]

    answers: dict[str, float | None] = {}
    for setting in settings:
        timeout_ms = float(setting["batch_timeout_ms"])
        if setting.get("rates"):
            rates = [rate_key(float(r)) for r in setting["rates"]]
            met = {r: bool(point(timeout_ms, r).get("slo_met")) for r in rates}
            failed = [r for r, ok in met.items() if not ok]
            ok = [r for r, good in met.items() if good and (not failed or r < min(failed))]
            answers[f"{timeout_ms:g}"] = max(ok) if ok else None
            continue
        search = RateSearch(float(setting["start_qps"]), rel_tol=rel_tol, max_points=max_points)

        def met(rate: float, t: float = timeout_ms) -> bool:
            return bool(point(t, rate).get("slo_met"))

        best = search.run(met)
        for candidate in range(1, confirmations + 1):
            if best is None or all(holds(point(timeout_ms, best, k)) for k in range(1, repeats + 1)):
                break
            search.record(best, False)  # it did not hold: a failed rate
            if candidate == confirmations:
                best = None  # no candidate held: the setting has no answer
                break
            # The next candidate is the next rate below that met the SLO, not a bisection: the
            # noise that made this one pass makes rates just below it coin tosses too.
            best = search.max_qps
            if best is None:  # none met below it: the search brackets down again, a few points more
                search.max_points = max(search.max_points, len(search.points) + 3)
                best = search.run(met)
        answers[f"{timeout_ms:g}"] = best
    return answers
