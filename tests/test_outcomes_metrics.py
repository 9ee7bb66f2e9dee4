"""Metrics equal scikit-learn on fixed arrays; weights equal explicit resampling; a weight matrix
equals one call per resample; calibration fits converge on over-confident scores; no NaN out."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (average_precision_score, brier_score_loss, cohen_kappa_score,
                             precision_recall_curve, roc_auc_score)

from clinical_ml.outcomes import metrics as mt
from clinical_ml.outcomes import bootstrap as bootstrap_module
from clinical_ml.outcomes.bootstrap import batched, bootstrap, draw_weight_matrix, draw_weights, summarise

# fixed arrays with ties in the scores (ties are where hand-written AUCs usually go wrong)
Y = np.array([0, 0, 1, 1, 0, 1, 0, 0, 1, 0, 1, 1, 0, 0, 0, 1, 0, 1, 0, 0])
P = np.array([.1, .4, .35, .8, .4, .9, .2, .05, .6, .3, .35, .7, .6, .1, .45, .55, .2, .4, .15, .8])


def test_binary_metrics_match_sklearn():
    assert mt.auroc(Y, P) == pytest.approx(roc_auc_score(Y, P), abs=1e-12)
    assert mt.auprc(Y, P) == pytest.approx(average_precision_score(Y, P), abs=1e-12)
    prec, rec, _ = precision_recall_curve(Y, P)
    assert mt.min_se_ppv(Y, P) == pytest.approx(np.max(np.minimum(prec, rec)), abs=1e-12)
    assert mt.brier(Y, P) == pytest.approx(brier_score_loss(Y, P), abs=1e-12)


def test_calibration_slope_and_intercept_match_unpenalised_logistic_fits():
    logit = np.log(P / (1 - P))
    ref = LogisticRegression(C=np.inf, solver="lbfgs", tol=1e-12, max_iter=10_000).fit(logit[:, None], Y)
    assert mt.calibration_slope(Y, P) == pytest.approx(ref.coef_[0, 0], abs=1e-5)
    # intercept with logit(p) as offset: the a solving sum(y - expit(a + logit)) = 0
    a = mt.calibration_intercept(Y, P)
    assert np.sum(Y - 1 / (1 + np.exp(-(a + logit)))) == pytest.approx(0, abs=1e-8)
    # perfectly calibrated scores of a logistic model -> slope 1, intercept 0 (on its own data)
    p_fit = ref.predict_proba(logit[:, None])[:, 1]
    assert mt.calibration_slope(Y, p_fit) == pytest.approx(1.0, abs=1e-5)
    assert mt.calibration_intercept(Y, p_fit) == pytest.approx(0.0, abs=1e-5)


def test_ece_by_hand():
    y = np.array([0, 1, 1, 0])
    p = np.array([0.05, 0.05, 0.95, 1.0])  # bins 0, 0, 9, 9 (1.0 falls in the last bin)
    # bin 0: |0.05 - 0.5| * 2/4 ; bin 9: |0.975 - 0.5| * 2/4
    assert mt.ece(y, p) == pytest.approx(0.45 * 0.5 + 0.475 * 0.5)


def test_los_buckets_and_kappa_match_sklearn():
    hours = np.array([1, 23.9, 24, 47, 100, 170, 191.9, 192, 335, 336, 1000])
    assert mt.los_bucket(hours).tolist() == [0, 0, 1, 1, 4, 7, 7, 8, 8, 9, 9]
    rng = np.random.default_rng(3)
    y = rng.gamma(2, 60, 200)
    pred = y * rng.lognormal(0, 0.5, 200)
    ref = cohen_kappa_score(mt.los_bucket(y), mt.los_bucket(pred), weights="linear")
    assert mt.kappa(y, pred) == pytest.approx(ref, abs=1e-12)
    assert mt.mad(y, pred) == pytest.approx(np.mean(np.abs(y - pred)))


def test_macro_micro_auroc_match_sklearn():
    rng = np.random.default_rng(1)
    Yl = (rng.random((80, 5)) < 0.3).astype(int)
    Pl = np.clip(Yl * 0.3 + rng.random((80, 5)) * 0.7, 0, 1)
    assert mt.macro_auroc(Yl, Pl) == pytest.approx(roc_auc_score(Yl, Pl, average="macro"), abs=1e-12)
    assert mt.micro_auroc(Yl, Pl) == pytest.approx(roc_auc_score(Yl, Pl, average="micro"), abs=1e-12)
    Yl[:, 2] = 0  # one-class label: left out of the macro mean, not a NaN
    keep = [0, 1, 3, 4]
    assert mt.macro_auroc(Yl, Pl) == pytest.approx(roc_auc_score(Yl[:, keep], Pl[:, keep]), abs=1e-12)


def test_weights_equal_explicit_resampling():
    rng = np.random.default_rng(7)
    idx = rng.integers(0, len(Y), len(Y))
    w = np.bincount(idx, minlength=len(Y)).astype(float)
    y, p = Y[idx], P[idx]
    assert mt.auroc(Y, P, w) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert mt.auprc(Y, P, w) == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert mt.brier(Y, P, w) == pytest.approx(brier_score_loss(y, p), abs=1e-12)
    assert mt.ece(Y, P, w) == pytest.approx(mt.ece(y, p), abs=1e-12)
    assert mt.calibration_slope(Y, P, w) == pytest.approx(mt.calibration_slope(y, p), abs=1e-8)


def test_bootstrap_ci_brackets_point_and_is_reproducible():
    stats = {"auroc": lambda w: mt.auroc(Y, P, w), "brier": lambda w: mt.brier(Y, P, w)}
    a = bootstrap(stats, len(Y), 50, seed=0)
    b = bootstrap(stats, len(Y), 50, seed=0)
    assert a == b
    for res in a.values():
        assert res["ci_low"] <= res["value"] <= res["ci_high"]
        assert all(math.isfinite(v) for v in res.values() if isinstance(v, float))
    assert draw_weights(10, np.random.default_rng(0)).sum() == 10


def test_undefined_metric_is_a_reason_not_nan():
    y = np.zeros(10)
    res = bootstrap({"auroc": lambda w: mt.auroc(y, P[:10], w)}, 10, 20, seed=0)["auroc"]
    assert res == {"value": None, "undefined": "undefined on this split"}
    assert summarise(float("nan"), np.array([]), "one class") == {"value": None, "undefined": "one class"}


def _overconfident(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """Scores 4x too extreme on the logit scale, clipped at 0.001/0.999 (about 30% of them)."""
    rng = np.random.default_rng(seed)
    q = rng.random(n)
    y = (rng.random(n) < q).astype(float)
    return y, np.clip(1 / (1 + np.exp(-4 * np.log(q / (1 - q)))), 0.001, 0.999)


def _saturated(seed: int, n: int = 400) -> tuple[np.ndarray, np.ndarray]:
    """A model answering 0.001 or 0.999 only, wrong one time in ten."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    p = np.where(y == 1, 0.999, 0.001)
    wrong = rng.random(n) < 0.1
    p[wrong] = 1 - p[wrong]
    return y, p


@pytest.mark.parametrize("make", [_overconfident, _saturated])
@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_fits_converge_on_over_confident_scores(make, seed):
    # plain Newton from (0, 1) overshot here and returned NaN; with step halving it converges
    y, p = make(seed)
    logit = mt._logit(p)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10_000).fit(logit[:, None], y)  # = penalty=None
    slope, intercept = mt.calibration_slope(y, p), mt.calibration_intercept(y, p)
    assert math.isfinite(slope) and math.isfinite(intercept)
    assert slope == pytest.approx(ref.coef_[0, 0], abs=1e-4)
    assert np.sum(y - 1 / (1 + np.exp(-(intercept + logit)))) == pytest.approx(0, abs=1e-8)
    a, b = mt._newton_logistic(logit, y, np.ones(len(y)), 0.0)
    assert a == pytest.approx(ref.intercept_[0], abs=1e-4) and b == pytest.approx(ref.coef_[0, 0], abs=1e-4)


def test_newton_logistic_stops_at_the_cap_with_a_finite_estimate():
    y, p = _overconfident(0)
    a, b = mt._newton_logistic(mt._logit(p), y, np.ones(len(y)), 0.0, iters=2)
    assert math.isfinite(a) and math.isfinite(b)


def test_calibration_slope_undefined_when_the_classes_do_not_overlap():
    # every positive scores above every negative (or ties the highest one): no finite maximum
    p = np.array([.1, .2, .3, .4, .6, .7, .8])
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    assert math.isnan(mt.calibration_slope(y, p))
    assert math.isnan(mt.calibration_slope(y, np.array([.1, .2, .3, .6, .6, .7, .8])))
    assert math.isfinite(mt.calibration_intercept(y, p))
    y2 = np.array([0, 0, 1, 0, 1, 0, 1])
    assert math.isfinite(mt.calibration_slope(y2, p))


def test_weight_matrix_gives_each_rows_value():
    """One call with a (resamples, n) matrix equals one call per resample, metric by metric."""
    rng = np.random.default_rng(11)
    n = 60
    y = (rng.random(n) < 0.3).astype(float)
    p = np.round(np.clip(y * 0.3 + rng.random(n) * 0.7, 0, 1), 2)  # ties
    W = draw_weight_matrix(n, 25, np.random.default_rng(0))
    W[3] = 0.0  # no weight at all
    W[4] = np.where(y == 1, W[4], 0.0)  # one class only
    lp, s0, i0 = mt.calibration_fits(y, p)
    r = mt.RankedScores(y, p)
    hours = rng.gamma(2, 60, n)
    pred = hours * rng.lognormal(0, 0.5, n)
    Yl = (rng.random((n, 4)) < 0.3).astype(float)
    Pl = rng.random((n, 4))
    metrics = {"auroc": lambda w: mt.auroc(None, r, w), "auprc": lambda w: mt.auprc(y, p, w),
               "min_se_ppv": lambda w: mt.min_se_ppv(y, p, w), "brier": lambda w: mt.brier(y, p, w),
               "slope": lambda w: mt.calibration_slope(y, p, w, logit_p=lp, start=s0),
               "intercept": lambda w: mt.calibration_intercept(y, p, w, logit_p=lp, start=i0),
               "ece": lambda w: mt.ece(y, p, w), "kappa": lambda w: mt.kappa(hours, pred, w),
               "mad": lambda w: mt.mad(hours, pred, w), "macro": lambda w: mt.macro_auroc(Yl, Pl, w),
               "micro": lambda w: mt.micro_auroc(Yl, Pl, w)}
    for name, f in metrics.items():
        together = f(W)
        assert together.shape == (len(W),), name
        alone = np.array([f(w) for w in W])
        np.testing.assert_allclose(together, alone, rtol=0, atol=1e-12, equal_nan=True, err_msg=name)
        assert f(None) == pytest.approx(f(np.ones(n)), abs=1e-12), name
    assert math.isnan(mt.auroc(None, r, W[4])) and math.isnan(mt.brier(y, p, W[3]))


@pytest.mark.parametrize("n", [37, 5000])
def test_weight_matrix_draws_equal_successive_draw_weights(n):
    a = draw_weight_matrix(n, 6, np.random.default_rng(4))
    rng = np.random.default_rng(4)
    b = np.stack([draw_weights(n, rng) for _ in range(6)])
    assert np.array_equal(a, b) and a.dtype == float


def test_batched_stats_give_the_same_bootstrap_as_one_resample_at_a_time(monkeypatch):
    lp, s0, i0 = mt.calibration_fits(Y, P)
    stats = {"auroc": lambda w: mt.auroc(Y, P, w), "ece": lambda w: mt.ece(Y, P, w),
             "slope": lambda w: mt.calibration_slope(Y, P, w, logit_p=lp, start=s0)}
    plain = bootstrap(stats, len(Y), 300, seed=3)
    monkeypatch.setattr(bootstrap_module, "CHUNK_ELEMENTS", 7 * len(Y))  # several chunks, one short
    fast = bootstrap({k: batched(f) for k, f in stats.items()}, len(Y), 300, seed=3)
    assert fast.keys() == plain.keys()
    for k in plain:
        assert fast[k].keys() == plain[k].keys()
        for field, v in plain[k].items():
            assert fast[k][field] == pytest.approx(v, abs=1e-12), (k, field)
