"""Distribution distances for ``baseline_drift_check`` and their thresholds.

- Numeric features: the L-infinity distance between the baseline CDF (from the KLL sketch)
  and the window's empirical CDF, i.e. the two-sample Kolmogorov-Smirnov statistic. This is
  the distance Model Monitor documents for numerical drift.
- Categorical features: ``LInfinity`` (default): the largest absolute difference between the
  baseline and window category frequencies (union of categories); ``ChiSquared``: the same
  distance is reported, and a violation additionally needs the two-sample chi-square test's
  p-value below the per-check alpha.

Thresholds. ``Simple`` compares the distance with ``comparison_threshold`` (default 0.1).
``Robust`` (our default) flags drift only when the distance is both practically large (above
``comparison_threshold``) and statistically significant: above the KS critical value
``c(a) * sqrt((n + m) / (n * m))`` with ``c(a) = sqrt(-ln(a / 2) / 2)``, where ``a`` is the
window's false-alarm budget ``family_alpha`` split (Bonferroni) over the features' checks, plus
the sketch's own resolution ``1 / len(sketch)``. Small windows therefore need larger shifts;
large windows are held to the practical threshold.
"""
from __future__ import annotations

import functools
import math
from statistics import NormalDist

import numpy as np
from scipy import stats as _st


SKETCH_REL_TOL = 1e-6  # sketch items are stored with 7 significant digits (clinical_ml.monitor.stats)


@functools.lru_cache(maxsize=64)
def _z(alpha: float) -> float:
    return NormalDist().inv_cdf(1.0 - alpha)


def ks_constant(alpha: float) -> float:
    """``c(alpha)`` of the two-sample KS test's asymptotic critical value."""
    return math.sqrt(-math.log(alpha / 2.0) / 2.0)


def ks_critical(n: float, m: float, alpha: float) -> float:
    if n <= 0 or m <= 0:
        return math.inf
    return ks_constant(alpha) * math.sqrt((n + m) / (n * m))


def cdf_linf(base_x: np.ndarray, base_w: np.ndarray, current: np.ndarray) -> float:
    """L-infinity distance between the weighted baseline CDF and the empirical CDF of ``current``.

    Both are right-continuous step functions, so the supremum is reached at a jump of either:
    evaluating both CDFs at every jump point is exact.
    """
    cur = np.sort(current[np.isfinite(current)])
    if cur.size == 0 or base_x.size == 0:
        return 0.0
    cur = snap_to(base_x, cur)
    cw = np.concatenate([[0.0], np.cumsum(base_w)])
    total = cw[-1]
    pts = np.concatenate([base_x, cur])
    fb = cw[np.searchsorted(base_x, pts, side="right")] / total
    fc = np.searchsorted(cur, pts, side="right") / cur.size
    return float(np.max(np.abs(fb - fc)))


def snap_to(base_x: np.ndarray, values: np.ndarray, rel: float = SKETCH_REL_TOL) -> np.ndarray:
    """Values equal to a sketch item up to the sketch's precision become that item.

    The sketch keeps 7 significant digits while traffic carries full float32/float64 values;
    for a discrete-valued feature (a std of GCS scores: 0, 0.5, 0.5774, ...) a step of the CDF
    shifted by 1e-7 would otherwise read as a distance equal to that value's whole mass.
    """
    j = np.clip(np.searchsorted(base_x, values), 1, base_x.size - 1) if base_x.size > 1 else \
        np.zeros(values.size, dtype=np.int64)
    out = values.copy()
    for cand in (j - 1, j) if base_x.size > 1 else (j,):
        b = base_x[cand]
        close = np.abs(out - b) <= rel * np.maximum(np.abs(b), 1e-12)
        out[close] = b[close]
    return out


def numeric_threshold(method: str, comparison_threshold: float, n_base: float, m: float,
                      alpha: float, sketch_items: int) -> float:
    if method == "Simple":
        return comparison_threshold
    resolution = 1.0 / sketch_items if sketch_items else 0.0
    return max(comparison_threshold, ks_critical(n_base, m, alpha) + resolution)


def categorical_linf(base_counts: dict[str, int], cur_counts: dict[str, int]) -> float:
    nb, nc = sum(base_counts.values()), sum(cur_counts.values())
    if nb == 0 or nc == 0:
        return 0.0
    keys = set(base_counts) | set(cur_counts)
    return float(max(abs(base_counts.get(k, 0) / nb - cur_counts.get(k, 0) / nc) for k in keys))


def categorical_threshold(method: str, comparison_threshold: float, n_base: float, m: float,
                          alpha: float, n_categories: int) -> float:
    """Per-category frequencies differ by more than this only with probability ``alpha``
    (Hoeffding per category, Bonferroni over categories) unless the distribution moved."""
    if method == "Simple":
        return comparison_threshold
    return max(comparison_threshold, ks_critical(n_base, m, alpha / max(n_categories, 1)))


def chi_square_pvalue(base_counts: dict[str, int], cur_counts: dict[str, int],
                      min_expected: float = 5.0) -> float:
    """Two-sample chi-square homogeneity test; sparse categories pooled into one cell."""
    keys = sorted(set(base_counts) | set(cur_counts))
    b = np.array([base_counts.get(k, 0) for k in keys], dtype="float64")
    c = np.array([cur_counts.get(k, 0) for k in keys], dtype="float64")
    if b.sum() == 0 or c.sum() == 0:
        return 1.0
    expected_c = (b + c) * c.sum() / (b.sum() + c.sum())
    sparse = expected_c < min_expected
    if sparse.any():
        b = np.append(b[~sparse], b[sparse].sum())
        c = np.append(c[~sparse], c[sparse].sum())
        keep = (b + c) > 0
        b, c = b[keep], c[keep]
    if b.size < 2:
        return 1.0
    table = np.vstack([b, c])
    exp = table.sum(1, keepdims=True) * table.sum(0, keepdims=True) / table.sum()
    stat = float(((table - exp) ** 2 / exp).sum())
    return float(_st.chi2.sf(stat, df=b.size - 1))


def completeness_bound(c0: float, n: float, m: float, alpha: float, tolerance: float) -> float:
    """Completeness may fall this far below the baseline's before it is a violation: a one-sided
    two-sample z-test of proportions at level ``alpha`` (the baseline's ``n`` rows are a sample
    too), never below ``tolerance``."""
    if m <= 0:
        return math.inf
    inv_n = 1.0 / n if n > 0 else 0.0
    return max(tolerance, _z(alpha) * math.sqrt(max(c0 * (1.0 - c0), 1e-12) * (inv_n + 1.0 / m)))
