"""Metrics equal scikit-learn on fixed arrays; weights equal explicit resampling; no NaN out."""
from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (average_precision_score, brier_score_loss, cohen_kappa_score,
                             precision_recall_curve, roc_auc_score)

from clinical_ml.outcomes import metrics as mt
from clinical_ml.outcomes.bootstrap import bootstrap, draw_weights, summarise

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
