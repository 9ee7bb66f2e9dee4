"""Percentile bootstrap shared by every metric of one task.

All statistics of a task (every model, every metric, the paired model differences) are
evaluated on the SAME resamples, so a difference's CI accounts for the pairing. A resample is a
vector of draw counts (rows drawn with replacement), see metrics.py for why.

Resamples are drawn a chunk at a time as a (resamples, n) matrix of counts, the same numbers as
one ``draw_weights`` call per resample. A statistic marked ``batched`` gets the whole chunk and
returns one value per row: on test sets of 10^2-10^4 rows the per-call cost of numpy, not the
arithmetic, dominated the per-resample loop. Unmarked statistics get one row at a time.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

Stat = Callable[[np.ndarray | None], float]
DEFAULT_RESAMPLES = 1000
CHUNK_ELEMENTS = 1 << 20  # resamples x rows per chunk: bounds the memory of a batched statistic


def batched(stat: Callable) -> Callable:
    """Mark ``stat`` as accepting a (resamples, n) weight matrix, returning one value per row
    (and a float for None, the point estimate)."""
    stat.batched = True
    return stat


def is_batched(stat: Callable) -> bool:
    return getattr(stat, "batched", False)


def draw_weights(n: int, rng: np.random.Generator) -> np.ndarray:
    return np.bincount(rng.integers(0, n, n), minlength=n).astype(float)


def draw_weight_matrix(n: int, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(resamples, n) draw counts; row r equals the r-th of ``resamples`` draw_weights calls
    (the generator's stream does not depend on how the draws are split into calls, nor, below
    2^32, on the integer type, and 32-bit integers are quicker to draw and count)."""
    idx = rng.integers(0, n, (resamples, n), dtype=np.uint32 if n < 2**32 else np.int64)
    if n >= 4096:  # one bincount per row: its n counters stay in cache
        W = np.empty((resamples, n))
        for r, drawn in enumerate(idx):
            W[r] = np.bincount(drawn, minlength=n)
        return W
    code = (idx + n * np.arange(resamples)[:, None]).ravel()
    return np.bincount(code, minlength=resamples * n).reshape(resamples, n).astype(float)


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
    chunk = max(1, CHUNK_ELEMENTS // max(n, 1))
    for lo in range(0, resamples if live else 0, chunk):
        W = draw_weight_matrix(n, min(chunk, resamples - lo), rng)
        for k in live:
            f = stats[k]
            reps[k][lo:lo + len(W)] = f(W) if is_batched(f) else [f(w) for w in W]
    return {k: summarise(points[k], reps[k], reasons.get(k, "undefined on this split"))
            for k in stats}
