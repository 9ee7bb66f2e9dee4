"""Percentile bootstrap shared by every metric of one task.

All statistics of a task (every model, every metric, the paired model differences) are
evaluated on the SAME resamples, so a difference's CI accounts for the pairing. A resample is a
vector of draw counts (rows drawn with replacement), see metrics.py for why.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

Stat = Callable[[np.ndarray | None], float]
DEFAULT_RESAMPLES = 1000


def draw_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def summarise(value: float, replicates: np.ndarray, undefined_reason: str = "undefined") -> dict:
    """``{"value", "ci_low", "ci_high", "std"}``; never NaN: undefined values become a reason."""
    if value is None or not math.isfinite(value):
        return {"value": None, "undefined": undefined_reason}
    out: dict = {"value": float(value)}
    finite = replicates[np.isfinite(replicates)] if len(replicates) else replicates
    if len(finite) >= 2:
        lo, hi = np.percentile(finite, [2.5, 97.5])
        out.update(ci_low=float(lo), ci_high=float(hi), std=float(np.std(finite, ddof=1)))
        if len(finite) < len(replicates):
            out["resamples_used"] = int(len(finite))  # the others had one class
    return out


def bootstrap(stats: dict[str, Stat], n: int, resamples: int, seed: int,
              reasons: dict[str, str] | None = None) -> dict[str, dict]:
    """Point estimate (all weights 1) and 95% percentile CI for each named statistic."""
    reasons = reasons or {}
    points = {k: f(None) for k, f in stats.items()}
    reps = {k: np.full(resamples, np.nan) for k in stats}
    live = [k for k, v in points.items() if v is not None and math.isfinite(v)]
    rng = np.random.default_rng(seed)
    for r in range(resamples if live else 0):
        w = draw_weights(n, rng)
        for k in live:
            reps[k][r] = stats[k](w)
    return {k: summarise(points[k], reps[k], reasons.get(k, "undefined on this split"))
            for k in stats}
