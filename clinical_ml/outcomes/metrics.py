"""Clinical evaluation metrics with sample weights, so one code path gives point estimates
(all weights 1) and bootstrap replicates (weights = how often each row was drawn).

Why weights rather than re-indexing: a bootstrap resample with replacement is exactly the
original rows weighted by their draw counts, so each replicate costs O(n) on arrays that were
sorted once, instead of an O(n log n) sort per replicate. 1,000 replicates of the
decompensation test set (~10^5 rows) then take seconds, not minutes.

Definitions (each equals scikit-learn's on unweighted input; tests check this):
- ``auroc``: area under the ROC curve, ties counted half (``roc_auc_score``);
- ``auprc``: average precision, sum over thresholds of (R_k - R_{k-1}) * P_k
  (``average_precision_score``);
- ``min_se_ppv``: max over thresholds of min(sensitivity, positive predictive value), the
  mimic3-benchmarks "min(Se, P+)" (from ``precision_recall_curve``);
- ``brier``: mean squared error of the probability (``brier_score_loss``);
- ``calibration_slope`` / ``calibration_intercept``: logistic recalibration. Slope: coefficient
  of logit(p) in an unpenalised logistic fit of y on logit(p). Intercept: calibration-in-the-
  large, the intercept of y ~ offset(logit(p)) (0 and 1 are ideal);
- ``ece``: expected calibration error over ``ECE_BINS`` equal-width bins, the weighted mean of
  |mean(p) - mean(y)| per bin;
- ``kappa``: linear-weighted Cohen's kappa on the 10 mimic3-benchmarks LOS buckets
  (``cohen_kappa_score(weights="linear")``); ``mad``: mean absolute deviation in hours.
"""
from __future__ import annotations

import numpy as np

ECE_BINS = 10
_EPS = 1e-7

# mimic3-benchmarks length-of-stay buckets, in days: (-inf,1), [1,2), ..., [7,8), [8,14), [14,inf)
LOS_BUCKET_EDGES_DAYS: tuple[float, ...] = (1, 2, 3, 4, 5, 6, 7, 8, 14)
N_LOS_BUCKETS = len(LOS_BUCKET_EDGES_DAYS) + 1


def _weights(n: int, w: np.ndarray | None) -> np.ndarray:
    return np.ones(n) if w is None else np.asarray(w, dtype=float)


class RankedScores:
    """Scores sorted once (descending) and grouped into distinct values, for fast weighted curves."""

    def __init__(self, y: np.ndarray, p: np.ndarray):
        y = np.asarray(y, dtype=float)
        p = np.asarray(p, dtype=float)
        order = np.argsort(-p, kind="mergesort")
        self.y = y[order]
        self.p = p[order]
        self.order = order
        # group id of each (sorted) row: rows with equal score share a threshold
        new = np.r_[True, self.p[1:] != self.p[:-1]]
        self.group = np.cumsum(new) - 1
        self.n_groups = int(self.group[-1]) + 1 if len(p) else 0

    def counts(self, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Weighted positives and negatives per distinct score, highest score first."""
        ws = np.ones(len(self.y)) if w is None else np.asarray(w, dtype=float)[self.order]
        pos = np.bincount(self.group, weights=ws * self.y, minlength=self.n_groups)
        neg = np.bincount(self.group, weights=ws * (1 - self.y), minlength=self.n_groups)
        return pos, neg


def _ranked(y, p) -> RankedScores:
    return p if isinstance(p, RankedScores) else RankedScores(y, p)


def auroc(y, p, w=None) -> float:
    """AUROC; NaN when only one class has weight (callers turn that into a skip)."""
    pos, neg = _ranked(y, p).counts(w)
    P, N = pos.sum(), neg.sum()
    if P <= 0 or N <= 0:
        return float("nan")
    neg_below = N - np.cumsum(neg)  # negatives with a strictly lower score
    return float((pos * (neg_below + 0.5 * neg)).sum() / (P * N))


def _pr_points(y, p, w=None) -> tuple[np.ndarray, np.ndarray, float]:
    pos, neg = _ranked(y, p).counts(w)
    tp, fp = np.cumsum(pos), np.cumsum(neg)
    P = tp[-1] if len(tp) else 0.0
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(tp + fp > 0, tp / (tp + fp), 1.0)
        recall = tp / P if P > 0 else np.full_like(tp, np.nan)
    return precision, recall, P


def auprc(y, p, w=None) -> float:
    precision, recall, P = _pr_points(y, p, w)
    if P <= 0:
        return float("nan")
    return float((np.diff(np.r_[0.0, recall]) * precision).sum())


def min_se_ppv(y, p, w=None) -> float:
    precision, recall, P = _pr_points(y, p, w)
    if P <= 0:
        return float("nan")
    return float(np.max(np.minimum(precision, recall)))


def brier(y, p, w=None) -> float:
    y, p = np.asarray(y, float), np.asarray(p, float)
    return float(np.average((p - y) ** 2, weights=_weights(len(y), w)))


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


def _newton_logistic(x: np.ndarray | None, y: np.ndarray, w: np.ndarray, offset: np.ndarray | float,
                     iters: int = 50, start: tuple[float, float] | None = None) -> tuple[float, float]:
    """Unpenalised weighted logistic fit of y on (1, x) with an offset, by Newton-Raphson.

    ``x=None`` fits the intercept only (slope fixed at 0). Written with explicit sums rather
    than matrix products: for one or two parameters that is several times faster and avoids
    BLAS threads, which matters inside a 1,000-resample bootstrap. ``start``: a bootstrap
    replicate starts from the full-sample fit, which it is close to (about half the steps).
    """
    a, b = start if start is not None else (0.0, (1.0 if x is not None else 0.0))  # else "calibrated"
    if x is None:
        b = 0.0
    keep = w > 0  # a bootstrap replicate leaves about a third of the rows out: skip them
    if not keep.all():
        y, w = y[keep], w[keep]
        x = x[keep] if x is not None else None
        offset = offset[keep] if isinstance(offset, np.ndarray) else offset
    for _ in range(iters):
        eta = offset + a + (b * x if x is not None else 0.0)
        mu = 0.5 * (1.0 + np.tanh(0.5 * eta))  # the logistic function, without exp overflow
        r = w * (y - mu)
        v = w * mu * (1.0 - mu)
        g0, h00 = r.sum(), v.sum()
        if x is None:
            if h00 <= 0:
                return float("nan"), float("nan")
            da, db = g0 / h00, 0.0
        else:
            g1, h01, h11 = (r * x).sum(), (v * x).sum(), (v * x * x).sum()
            det = h00 * h11 - h01 * h01
            if det <= 0:
                return float("nan"), float("nan")
            da, db = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
        a, b = a + da, b + db
        if max(abs(da), abs(db)) < 1e-10:
            break
    return a, b


def calibration_slope(y, p, w=None, *, logit_p: np.ndarray | None = None,
                      start: tuple[float, float] | None = None) -> float:
    """``logit_p``/``start``: the logits and full-sample fit, computed once per bootstrap."""
    y = np.asarray(y, float)
    ww = _weights(len(y), w)
    if ww[y == 1].sum() <= 0 or ww[y == 0].sum() <= 0:
        return float("nan")
    return float(_newton_logistic(_logit(p) if logit_p is None else logit_p, y, ww, 0.0, start=start)[1])


def calibration_intercept(y, p, w=None, *, logit_p: np.ndarray | None = None,
                          start: tuple[float, float] | None = None) -> float:
    y = np.asarray(y, float)
    ww = _weights(len(y), w)
    if ww[y == 1].sum() <= 0 or ww[y == 0].sum() <= 0:
        return float("nan")
    return float(_newton_logistic(None, y, ww, _logit(p) if logit_p is None else logit_p, start=start)[0])


def calibration_fits(y, p) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """(logit(p), slope fit, intercept fit) on the full sample: the bootstrap's warm starts."""
    y, lp = np.asarray(y, float), _logit(p)
    ones = np.ones(len(y))
    return lp, _newton_logistic(lp, y, ones, 0.0), _newton_logistic(None, y, ones, lp)


def ece_bins(p) -> np.ndarray:
    """Equal-width bin index of each probability (the last bin includes 1.0)."""
    return np.clip((np.asarray(p, float) * ECE_BINS).astype(int), 0, ECE_BINS - 1)


def ece(y, p, w=None, bins: np.ndarray | None = None) -> float:
    y, p = np.asarray(y, float), np.asarray(p, float)
    ww = _weights(len(y), w)
    b = ece_bins(p) if bins is None else bins
    wsum = np.bincount(b, weights=ww, minlength=ECE_BINS)
    ysum = np.bincount(b, weights=ww * y, minlength=ECE_BINS)
    psum = np.bincount(b, weights=ww * p, minlength=ECE_BINS)
    total = wsum.sum()
    if total <= 0:
        return float("nan")
    return float(np.abs(psum - ysum).sum() / total)


def los_bucket(hours) -> np.ndarray:
    """mimic3-benchmarks' 10 LOS buckets (0..9) of a remaining length of stay in hours."""
    days = np.asarray(hours, float) / 24.0
    return np.searchsorted(np.asarray(LOS_BUCKET_EDGES_DAYS, float), days, side="right")


def kappa(y_hours, pred_hours, w=None, *, buckets: tuple[np.ndarray, np.ndarray] | None = None) -> float:
    """Linear-weighted Cohen's kappa between true and predicted LOS buckets."""
    a, b = buckets if buckets is not None else (los_bucket(y_hours), los_bucket(pred_hours))
    k = N_LOS_BUCKETS
    ww = _weights(len(a), w)
    conf = np.bincount(a * k + b, weights=ww, minlength=k * k).reshape(k, k)
    total = conf.sum()
    if total <= 0:
        return float("nan")
    expected = np.outer(conf.sum(1), conf.sum(0)) / total
    idx = np.arange(k)
    dist = np.abs(idx[:, None] - idx[None, :]).astype(float)
    denom = (dist * expected).sum()
    if denom <= 0:  # all mass in one bucket on both sides: kappa undefined
        return float("nan")
    return float(1 - (dist * conf).sum() / denom)


def mad(y, pred, w=None) -> float:
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    return float(np.average(np.abs(y - pred), weights=_weights(len(y), w)))


def macro_auroc(Y: np.ndarray, P: np.ndarray, w=None, ranked: list[RankedScores] | None = None) -> float:
    """Mean AUROC over label columns that have both classes (others are left out)."""
    ranked = ranked or [RankedScores(Y[:, j], P[:, j]) for j in range(Y.shape[1])]
    vals = [auroc(None, r, w) for r in ranked]
    vals = [v for v in vals if np.isfinite(v)]
    return float(np.mean(vals)) if vals else float("nan")


def micro_auroc(Y: np.ndarray, P: np.ndarray, w=None, ranked: RankedScores | None = None) -> float:
    """AUROC of all (row, label) pairs pooled; ``w`` is per row."""
    ranked = ranked or RankedScores(np.asarray(Y).ravel(), np.asarray(P).ravel())
    ww = None if w is None else np.repeat(np.asarray(w, float), Y.shape[1])
    return auroc(None, ranked, ww)
