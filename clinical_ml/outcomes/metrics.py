"""Clinical evaluation metrics with sample weights, so one code path gives point estimates
(all weights 1) and bootstrap replicates (weights = how often each row was drawn).

Why weights rather than re-indexing: a bootstrap resample with replacement is exactly the
original rows weighted by their draw counts, so each replicate costs O(n) on arrays that were
sorted once, instead of an O(n log n) sort per replicate. 1,000 replicates of the
decompensation test set (~10^5 rows) then take seconds, not minutes.

Why weight matrices: every metric also takes ``w`` of shape (resamples, n), one resample per
row, and then returns one value per row. The bootstrap hands over a chunk of resamples per call
(``bootstrap.batched``), so numpy's per-call overhead, which on test sets of 10^2-10^4 rows was
most of the time, is paid per chunk rather than per resample. With draw counts as weights the
curves' counts are sums of integers, exact in any order; the other metrics agree with one
resample at a time to rounding (~1e-13).

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


def _weight_rows(n: int, w: np.ndarray | None) -> tuple[np.ndarray, bool]:
    """``w`` as a (fits, n) matrix, and whether the caller passed a matrix (then every metric
    returns one value per row) rather than None or one weight vector (then a float)."""
    if w is None:
        return np.ones((1, n)), False
    w = np.asarray(w, dtype=float)
    return (w, True) if w.ndim == 2 else (w[None, :], False)


def _out(values: np.ndarray, rows: bool) -> np.ndarray | float:
    return values if rows else float(values[0])


def _weighted_mean(W: np.ndarray, values: np.ndarray) -> np.ndarray:
    total = W.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, (W @ values) / total, np.nan)


def _row_bincount(code: np.ndarray, W: np.ndarray, n_bins: int) -> np.ndarray:
    """(rows, n_bins): per weight row, the sum of its weights in each bin (``code``: the bin of
    each column). Long rows get one bincount each, whose bins stay in cache; short ones share
    one bincount, the row number offsetting the bin, which saves the calls."""
    k = len(W)
    if W.shape[1] >= 4096:
        out = np.empty((k, n_bins))
        for i, w in enumerate(W):
            out[i] = np.bincount(code, weights=w, minlength=n_bins)
        return out
    offset = (np.arange(k)[:, None] * n_bins + code[None, :]).ravel()
    return np.bincount(offset, weights=W.ravel(), minlength=k * n_bins).reshape(k, n_bins)


class Curve:
    """Weighted counts at each distinct score held by a positive row, highest score first, one
    row per weight row: ``tp``/``fp`` positives/negatives scoring at or above it, ``pos``/``tie``
    positives/negatives scoring exactly it; ``P``/``N`` totals. With draw counts as weights every
    count is an integer, so they are exact whatever the summation order."""

    def __init__(self, pos: np.ndarray, tie: np.ndarray, above: np.ndarray, below: np.ndarray):
        self.pos, self.tie = pos, tie
        self.tp = np.cumsum(pos, axis=1)
        self.fp = np.cumsum(above + tie, axis=1)
        self.P = self.tp[:, -1] if pos.shape[1] else np.zeros(len(pos))
        self.N = (self.fp[:, -1] if pos.shape[1] else 0.0) + below


class RankedScores:
    """Scores ranked once, for fast weighted ROC and precision-recall curves.

    Only the distinct scores held by a positive row can move an area or a maximum of the curves
    (between two of them the true positives stand still), so each row is assigned once to a
    bucket of the m such scores, highest first: the positives at score j, the negatives tied with
    them, the negatives above score j (below score j-1), or below every positive. A weight row
    then costs one bincount over the rows, and the curves are built from 3m + 1 bucket sums."""

    def __init__(self, y: np.ndarray, p: np.ndarray):
        y = np.asarray(y, dtype=float)
        p = np.asarray(p, dtype=float)
        order = np.argsort(-p, kind="mergesort")
        ys, ps = y[order], p[order]
        group = np.cumsum(np.r_[True, ps[1:] != ps[:-1]]) - 1 if len(p) else np.zeros(0, int)
        has_pos = np.bincount(group, weights=ys, minlength=group[-1] + 1 if len(p) else 0) > 0
        rank = np.cumsum(has_pos)  # positive-held scores at or above each distinct score
        m = int(rank[-1]) if len(rank) else 0
        j = rank[group]
        bucket = np.where(ys == 1, j - 1, np.where(has_pos[group], m + j - 1, 2 * m + j))
        self.n = len(p)
        self.m = m
        self.bucket = np.empty(len(p), dtype=np.intp)
        self.bucket[order] = bucket
        self._memo: tuple = (None, None)

    def curve(self, w: np.ndarray | None = None) -> Curve:
        """The curve's counts for each weight row. The result for the last weight *matrix* is
        kept: the bootstrap asks for it once per curve metric of a model on the same matrix,
        which it never modifies in place."""
        if w is not None and np.ndim(w) == 2 and self._memo[0] is w:
            return self._memo[1]
        W, _ = _weight_rows(self.n, w)
        s = _row_bincount(self.bucket, W, 3 * self.m + 1)
        m = self.m
        curve = Curve(s[:, :m], s[:, m:2 * m], s[:, 2 * m:3 * m], s[:, 3 * m])
        if np.ndim(w) == 2:
            self._memo = (w, curve)
        return curve


def _ranked(y, p) -> RankedScores:
    return p if isinstance(p, RankedScores) else RankedScores(y, p)


def auroc(y, p, w=None):
    """AUROC; NaN when only one class has weight (callers turn that into a skip)."""
    c = _ranked(y, p).curve(w)
    neg_below = c.N[:, None] - c.fp  # negatives with a strictly lower score
    area = (c.pos * (neg_below + 0.5 * c.tie)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where((c.P > 0) & (c.N > 0), area / (c.P * c.N), np.nan)
    return _out(value, np.ndim(w) == 2)


def _pr_points(y, p, w=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, P) per weight row at the positive-held scores; recall is NaN where a
    row has no positive weight."""
    c = _ranked(y, p).curve(w)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(c.tp + c.fp > 0, c.tp / (c.tp + c.fp), 1.0)
        recall = np.where(c.P[:, None] > 0, c.tp / c.P[:, None], np.nan)
    return precision, recall, c.P


def auprc(y, p, w=None):
    """Recall moves only at positive-held scores, so the sum runs over those alone."""
    precision, recall, P = _pr_points(y, p, w)
    value = (np.diff(recall, axis=1, prepend=0.0) * precision).sum(1)
    return _out(np.where(P > 0, value, np.nan), np.ndim(w) == 2)


def min_se_ppv(y, p, w=None):
    """Below a positive-held score, until the next one, recall stays and precision falls: the
    maximum is at one of those scores."""
    precision, recall, P = _pr_points(y, p, w)
    value = np.minimum(precision, recall).max(1, initial=-np.inf)
    return _out(np.where(P > 0, value, np.nan), np.ndim(w) == 2)


def brier(y, p, w=None):
    y, p = np.asarray(y, float), np.asarray(p, float)
    W, rows = _weight_rows(len(y), w)
    return _out(_weighted_mean(W, (p - y) ** 2), rows)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, float), _EPS, 1 - _EPS)
    return np.log(p / (1 - p))


NEWTON_MAX_STEPS = 50     # Newton steps per fit; the bootstrap's warm starts need about 4
NEWTON_MAX_HALVINGS = 30  # halvings of one step before the fit stops where it is
NEWTON_TOL = 1e-10        # a step moving both parameters by less is the last one


class _LogisticFits:
    """Weighted log-likelihood of y ~ Bernoulli(expit(offset + a + b*x)), one fit per weight row.

    Probabilities come from exp(-eta), the odds of y = 0: 1/(1 + odds) cannot overflow, and
    without a slope exp(-eta) = exp(-offset) * exp(-a), so the intercept fit needs one
    exponential per observation in all, not one per observation, fit and step. The sums of
    w*y*(1, x), which do not depend on (a, b), are taken once."""

    def __init__(self, x: np.ndarray | None, y: np.ndarray, W: np.ndarray, offset: np.ndarray | float):
        self.x, self.y, self.W, self.offset = x, y, W, offset
        ones = np.ones(len(y))
        self.xx = x * x if x is not None else None
        self.wy_sums = (W * y) @ (ones[:, None] if x is None else np.column_stack([ones, x]))
        self.odds_offset = np.exp(-np.asarray(offset, float)) * ones if x is None else None
        self.x_max = float(np.abs(x).max(initial=0.0)) if x is not None else 0.0

    def _rows(self, fits: np.ndarray):
        return slice(None) if len(fits) == len(self.W) else fits  # all fits: no copy of W

    def _odds0(self, a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        out = np.empty((len(a), len(self.y))) if out is None else out
        with np.errstate(over="ignore"):
            if self.x is None:
                return np.multiply(self.odds_offset[None, :], np.exp(-a)[:, None], out=out)
            np.multiply.outer(-b, self.x, out=out)
            out -= a[:, None]
            if np.any(self.offset):
                out -= self.offset
            return np.exp(out, out=out)

    def derivatives(self, fits: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, ...]:
        """(g_a, g_b, h_aa, h_ab, h_bb): the log-likelihood's gradient and information matrix of
        ``fits`` at (a, b); the slope terms are 0 for an intercept-only fit."""
        rows, k = self._rows(fits), len(fits)
        W = self.W[rows]
        buf = np.empty((2, k, len(self.y)))
        mu = self._odds0(a, b, out=buf[1])
        mu += 1.0
        np.divide(1.0, mu, out=mu)
        wmu = np.multiply(W, mu, out=buf[0])
        mu *= wmu
        np.subtract(wmu, mu, out=mu)  # w * mu * (1 - mu)
        wmu, v = buf
        wy = self.wy_sums[rows]
        g0, h00 = wy[:, 0] - wmu.sum(1), v.sum(1)
        if self.x is None:
            zero = np.zeros(k)
            return g0, zero, h00, zero, zero
        return g0, wy[:, 1] - wmu @ self.x, h00, v @ self.x, v @ self.xx

    def derivatives_at(self, a: float, b: float) -> tuple[np.ndarray, ...]:
        """``derivatives`` of every fit at one shared point (the warm start): its per-observation
        terms are computed once and summed per fit by one matrix product."""
        mu = 1.0 / (1.0 + self._odds0(np.array([a]), np.array([b]))[0])
        v = mu * (1.0 - mu)
        if self.x is None:
            g0, h00 = (self.W @ np.column_stack([self.y - mu, v])).T
            zero = np.zeros(len(g0))
            return g0, zero, h00, zero, zero
        r, x = self.y - mu, self.x
        g0, g1, h00, h01, h11 = (self.W @ np.column_stack([r, r * x, v, v * x, v * x * x])).T
        return g0, g1, h00, h01, h11

    def loglik(self, fits: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Log-likelihood of ``fits`` at (a, b); -log of the observed class's probability is
        log1p of its odds against, which stays accurate where a probability is near 0 or 1."""
        odds0 = np.clip(self._odds0(a, b), 1e-300, 1e300)
        loss = np.log1p(np.where(self.y == 1, odds0, 1.0 / odds0))
        return -(self.W[self._rows(fits)] * loss).sum(1)

    def curvature_bound(self, da: np.ndarray, db: np.ndarray, c0: np.ndarray, c1: np.ndarray) -> np.ndarray:
        """M >= -phi''(t) on [0, 1] for phi(t) = ll(theta + t*(da, db)), from the curvatures at both
        ends, c0 = -phi''(0) and c1 = -phi''(1): d/d(eta) log(mu(1 - mu)) = 1 - 2*mu lies in
        [-1, 1], so where no eta moves by more than D along the step, no weight mu(1 - mu)
        exceeds its value at either end times exp(D)."""
        with np.errstate(over="ignore", invalid="ignore"):
            return np.exp(np.abs(da) + np.abs(db) * self.x_max) * np.minimum(c0, c1)


def _newton_step(d: tuple[np.ndarray, ...], slope: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(da, db, ok): the Newton step, and where the information matrix is positive definite."""
    g0, g1, h00, h01, h11 = d
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        if not slope:
            da, db = g0 / h00, np.zeros(len(g0))
            ok = h00 > 0
        else:
            det = h00 * h11 - h01 * h01
            da, db = (h11 * g0 - h01 * g1) / det, (h00 * g1 - h01 * g0) / det
            ok = det > 0
    return da, db, ok & np.isfinite(da) & np.isfinite(db)


def _cannot_have_fallen(d0: np.ndarray, d1: np.ndarray, curvature: np.ndarray) -> np.ndarray:
    """Whether phi(1) >= phi(0) is certain for phi(t) = ll(theta + t*step), from phi'(0) = d0,
    phi'(1) = d1 and phi'' >= -curvature: phi is concave, so phi'(t) >= max(d1, d0 - curvature*t),
    and the integral of that bound over [0, 1] is then >= 0."""
    with np.errstate(invalid="ignore", divide="ignore"):
        t = np.where(curvature > 0, np.clip((d0 - d1) / curvature, 0.0, 1.0), 1.0)  # where they cross
    return d0 * t - 0.5 * curvature * t * t + d1 * (1.0 - t) >= 0


def _halving_steps(fits: _LogisticFits, todo: np.ndarray, theta: list[np.ndarray], slope: bool) -> np.ndarray:
    """Move each fit in ``todo`` by its Newton step, halved until the log-likelihood does not
    fall, and store its gradient and next step there (``theta`` = [a, b, g_a, g_b, step_a,
    step_b], updated in place). Returns the fits that moved; the others found no better point.

    The likelihood costs a log per observation and fit, so it is computed only where the
    gradients before and after the step cannot vouch for it (``_cannot_have_fallen``); in the
    bootstrap's warm-started fits that is rare."""
    a, b, ga, gb, step_a, step_b = theta
    t = np.ones(len(todo))
    pending = np.arange(len(todo))
    moved = np.zeros(len(todo), bool)
    for _ in range(NEWTON_MAX_HALVINGS + 1):
        idx = todo[pending]
        da, db = t[pending] * step_a[idx], t[pending] * step_b[idx]
        na, nb = a[idx] + da, b[idx] + db
        d = fits.derivatives(idx, na, nb)
        sa, sb, ok = _newton_step(d, slope)
        d0 = ga[idx] * da + gb[idx] * db  # phi'(0) = t * g.H^-1.g, so -phi''(0) = t * d0
        c1 = d[2] * da * da + 2 * d[3] * da * db + d[4] * db * db  # -phi''(1)
        curvature = fits.curvature_bound(da, db, t[pending] * d0, c1)
        accept = ok & _cannot_have_fallen(d0, d[0] * da + d[1] * db, curvature)
        check = ok & ~accept
        if check.any():
            c = idx[check]
            before = fits.loglik(c, a[c], b[c])
            accept[check] = fits.loglik(c, na[check], nb[check]) >= before - 1e-12 * np.abs(before)  # rounding
        took = idx[accept]
        a[took], b[took], ga[took], gb[took] = na[accept], nb[accept], d[0][accept], d[1][accept]
        step_a[took], step_b[took] = sa[accept], sb[accept]
        moved[pending[accept]] = True
        pending = pending[~accept]
        if not len(pending):
            break
        t[pending] /= 2
    return todo[moved]


def _newton_logistic(x: np.ndarray | None, y: np.ndarray, w: np.ndarray, offset: np.ndarray | float,
                     iters: int = NEWTON_MAX_STEPS, start: tuple[float, float] | None = None):
    """Unpenalised weighted logistic fit of y on (1, x) with an offset, by Newton-Raphson with
    step halving: (a, b) as floats for one weight vector, as arrays (one fit per row) for a
    (fits, n) weight matrix.

    ``x=None`` fits the intercept only (slope fixed at 0). ``start``: a bootstrap replicate
    starts from the full-sample fit, which it is close to (about half the steps); default
    "calibrated", (0, 1).

    Why step halving: on over-confident scores (many p at 0.001/0.999, some of them wrong) the
    plain Newton step from (0, 1) overshoots to where nearly every probability is saturated,
    and the next steps diverge to NaN. A step is halved until the log-likelihood does not fall
    (``_halving_steps``). A fit stops when a step moves both parameters by less than
    NEWTON_TOL (that step is applied), when no halving improves it, or after ``iters`` steps,
    with its last, best, estimate; it is NaN where the information matrix is singular at the
    start (e.g. every score equal: no slope to fit).

    Every fit of a matrix advances together, so numpy's per-call cost is paid once per step
    for all bootstrap resamples, not once per resample; a weight of 0 removes an observation.
    """
    rows = np.ndim(w) == 2
    W = np.atleast_2d(np.asarray(w, dtype=float))
    y = np.asarray(y, dtype=float)
    slope = x is not None
    a0, b0 = start if start is not None else (0.0, 1.0)  # else "calibrated"
    a0, b0 = float(a0), (float(b0) if slope else 0.0)
    fits = _LogisticFits(x, y, W, offset)
    d = fits.derivatives_at(a0, b0)
    step_a, step_b, ok = _newton_step(d, slope)
    theta = [np.full(len(W), a0), np.full(len(W), b0), d[0], d[1], step_a, step_b]
    a, b = theta[0], theta[1]
    a[~ok] = b[~ok] = np.nan
    todo = np.flatnonzero(ok)
    for _ in range(iters):
        last = np.maximum(np.abs(step_a[todo]), np.abs(step_b[todo])) < NEWTON_TOL
        a[todo[last]] += step_a[todo[last]]
        b[todo[last]] += step_b[todo[last]]
        todo = todo[~last]
        if not len(todo):
            break
        todo = _halving_steps(fits, todo, theta, slope)
    return (a, b) if rows else (float(a[0]), float(b[0]))


def _both_classes(W: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (W @ (y == 1) > 0) & (W @ (y == 0) > 0)


def _overlap(W: np.ndarray, y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Whether the classes overlap in x, per weight row: some negative scores strictly above a
    positive and some positive strictly above a negative. Where they do not, the likelihood
    keeps rising as the slope grows, so the fit has no finite maximum (Albert and Anderson
    1984; e.g. a bootstrap resample of a small test set with 3 positives)."""
    c = RankedScores(y, x).curve(W)
    neg_above = ((c.fp - c.tie) * c.pos).sum(1)  # (negative, positive) pairs, negative higher
    pos_above = ((c.N[:, None] - c.fp) * c.pos).sum(1)
    return (neg_above > 0) & (pos_above > 0)


def _calibration_fit(y, p, w, logit_p, start, slope: bool):
    """The slope is undefined (NaN) where the classes do not overlap in logit(p); the intercept
    (with logit(p) as offset) has a finite maximum whenever both classes have weight."""
    y = np.asarray(y, float)
    W, rows = _weight_rows(len(y), w)
    lp = _logit(p) if logit_p is None else logit_p
    ok = _both_classes(W, y)
    if slope:
        ok &= _overlap(W, y, lp)
    value = np.full(len(W), np.nan)
    if ok.any():
        Wok = W if ok.all() else W[ok]
        a, b = (_newton_logistic(lp, y, Wok, 0.0, start=start) if slope
                else _newton_logistic(None, y, Wok, lp, start=start))
        value[ok] = b if slope else a
    return _out(value, rows)


def calibration_slope(y, p, w=None, *, logit_p: np.ndarray | None = None,
                      start: tuple[float, float] | None = None):
    """``logit_p``/``start``: the logits and full-sample fit, computed once per bootstrap."""
    return _calibration_fit(y, p, w, logit_p, start, slope=True)


def calibration_intercept(y, p, w=None, *, logit_p: np.ndarray | None = None,
                          start: tuple[float, float] | None = None):
    return _calibration_fit(y, p, w, logit_p, start, slope=False)


def calibration_fits(y, p) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """(logit(p), slope fit, intercept fit) on the full sample: the bootstrap's warm starts."""
    y, lp = np.asarray(y, float), _logit(p)
    ones = np.ones(len(y))
    return lp, _newton_logistic(lp, y, ones, 0.0), _newton_logistic(None, y, ones, lp)


def ece_bins(p) -> np.ndarray:
    """Equal-width bin index of each probability (the last bin includes 1.0)."""
    return np.clip((np.asarray(p, float) * ECE_BINS).astype(int), 0, ECE_BINS - 1)


def ece(y, p, w=None, bins: np.ndarray | None = None):
    y, p = np.asarray(y, float), np.asarray(p, float)
    W, rows = _weight_rows(len(y), w)
    b = ece_bins(p) if bins is None else bins
    gap = _row_bincount(b, W * (p - y), ECE_BINS)  # per bin, sum of w*p minus sum of w*y
    total = W.sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(total > 0, np.abs(gap).sum(1) / total, np.nan)
    return _out(value, rows)


def los_bucket(hours) -> np.ndarray:
    """mimic3-benchmarks' 10 LOS buckets (0..9) of a remaining length of stay in hours."""
    days = np.asarray(hours, float) / 24.0
    return np.searchsorted(np.asarray(LOS_BUCKET_EDGES_DAYS, float), days, side="right")


def kappa(y_hours, pred_hours, w=None, *, buckets: tuple[np.ndarray, np.ndarray] | None = None):
    """Linear-weighted Cohen's kappa between true and predicted LOS buckets."""
    a, b = buckets if buckets is not None else (los_bucket(y_hours), los_bucket(pred_hours))
    k = N_LOS_BUCKETS
    W, rows = _weight_rows(len(a), w)
    conf = _row_bincount(a * k + b, W, k * k).reshape(len(W), k, k)
    total = conf.sum((1, 2))
    idx = np.arange(k)
    dist = np.abs(idx[:, None] - idx[None, :]).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = conf.sum(2)[:, :, None] * conf.sum(1)[:, None, :] / total[:, None, None]
        denom = (dist * expected).sum((1, 2))
        value = 1 - (dist * conf).sum((1, 2)) / denom
    # no weight, or all mass in one bucket on both sides: kappa undefined
    return _out(np.where((total > 0) & (denom > 0), value, np.nan), rows)


def mad(y, pred, w=None):
    y, pred = np.asarray(y, float), np.asarray(pred, float)
    W, rows = _weight_rows(len(y), w)
    return _out(_weighted_mean(W, np.abs(y - pred)), rows)


def macro_auroc(Y: np.ndarray, P: np.ndarray, w=None, ranked: list[RankedScores] | None = None):
    """Mean AUROC over label columns that have both classes (others are left out)."""
    ranked = ranked or [RankedScores(Y[:, j], P[:, j]) for j in range(Y.shape[1])]
    vals = np.array([np.atleast_1d(auroc(None, r, w)) for r in ranked])  # (labels, weight rows)
    finite = np.isfinite(vals)
    with np.errstate(invalid="ignore", divide="ignore"):
        value = np.where(finite, vals, 0.0).sum(0) / finite.sum(0)
    return _out(np.where(finite.any(0), value, np.nan), np.ndim(w) == 2)


def micro_auroc(Y: np.ndarray, P: np.ndarray, w=None, ranked: RankedScores | None = None):
    """AUROC of all (row, label) pairs pooled; ``w`` is per row."""
    ranked = ranked or RankedScores(np.asarray(Y).ravel(), np.asarray(P).ravel())
    ww = None if w is None else np.repeat(np.asarray(w, float), Y.shape[1], axis=-1)
    return auroc(None, ranked, ww)
