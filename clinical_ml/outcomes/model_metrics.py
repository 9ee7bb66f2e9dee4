"""model_metrics.json: the ``ModelQuality.Statistics`` document of the registered model package.

SageMaker's Model Registry shows this file (``ModelMetrics(model_statistics=MetricsSource(
content_type="application/json", s3_uri=...))``). Its layout follows Model Monitor's model
quality statistics so the console renders it:

- ``binary_classification_metrics``: the primary binary task (ihm if present) of the primary
  model (XGBoost), at ``threshold``: ``confusion_matrix``, ``accuracy``, ``precision``, ``recall``,
  ``true/false_positive/negative_rate``, ``f0_5``/``f1``/``f2``, ``auc`` and
  ``receiver_operating_characteristic_curve`` / ``precision_recall_curve`` (<= 101 points);
- ``regression_metrics`` (LOS, hours): ``mae``, ``mse``, ``rmse``, ``r2``;
- ``clinical_ml``: our extension, per task: the same block as above for every binary task,
  ``macro_auroc``/``micro_auroc`` for pheno, ``kappa``/``mad`` for LOS.

Every metric is ``{"value", "standard_deviation"}``: for AUROC/kappa/MAD the bootstrap standard
deviation from evaluation.json; for threshold metrics the binomial standard error
sqrt(v(1-v)/m) over their denominator m; for mse/rmse/r2 a bootstrap is not run ("NaN" as a
string is what Model Monitor writes for "not computed", but we write null instead).
"""
from __future__ import annotations

import datetime as _dt
import math

import numpy as np

CURVE_POINTS = 101


def _mv(value: float | None, std: float | None = None) -> dict:
    ok = value is not None and math.isfinite(value)
    return {"value": float(value) if ok else None,
            "standard_deviation": float(std) if std is not None and math.isfinite(std) else None}


def _prop(num: float, den: float) -> dict:
    if den <= 0:
        return _mv(None)
    v = num / den
    return _mv(v, math.sqrt(v * (1 - v) / den))


def _fbeta(prec: float, rec: float, beta: float) -> float | None:
    if prec + rec == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * prec * rec / (b2 * prec + rec)


def _curve(xs: np.ndarray, ys: np.ndarray) -> tuple[list[float], list[float]]:
    if len(xs) > CURVE_POINTS:
        idx = np.unique(np.linspace(0, len(xs) - 1, CURVE_POINTS).round().astype(int))
        xs, ys = xs[idx], ys[idx]
    return [round(float(v), 6) for v in xs], [round(float(v), 6) for v in ys]


def binary_block(y: np.ndarray, p: np.ndarray, auc: dict, threshold: float) -> dict:
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = y.astype(int)
    pred = (p >= threshold).astype(int)
    tp = int(((pred == 1) & (y == 1)).sum())
    fp = int(((pred == 1) & (y == 0)).sum())
    tn = int(((pred == 0) & (y == 0)).sum())
    fn = int(((pred == 0) & (y == 1)).sum())
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    fpr, tpr, _ = roc_curve(y, p)
    precisions, recalls, _ = precision_recall_curve(y, p)
    fx, ty = _curve(fpr, tpr)
    rx, py = _curve(recalls[::-1], precisions[::-1])
    return {
        "threshold": threshold,
        "confusion_matrix": {"0": {"0": tn, "1": fp}, "1": {"0": fn, "1": tp}},
        "accuracy": _prop(tp + tn, len(y)),
        "precision": _prop(tp, tp + fp),
        "recall": _prop(tp, tp + fn),
        "true_positive_rate": _prop(tp, tp + fn),
        "true_negative_rate": _prop(tn, tn + fp),
        "false_positive_rate": _prop(fp, tn + fp),
        "false_negative_rate": _prop(fn, tp + fn),
        "f0_5": _mv(_fbeta(prec, rec, 0.5)),
        "f1": _mv(_fbeta(prec, rec, 1.0)),
        "f2": _mv(_fbeta(prec, rec, 2.0)),
        "auc": _mv(auc.get("value"), auc.get("std")),
        "receiver_operating_characteristic_curve": {"false_positive_rates": fx, "true_positive_rates": ty},
        "precision_recall_curve": {"recalls": rx, "precisions": py},
    }


def regression_block(y: np.ndarray, pred: np.ndarray, mad: dict) -> dict:
    err = pred - y
    mse = float(np.mean(err ** 2))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    return {"mae": _mv(mad.get("value"), mad.get("std")), "mse": _mv(mse),
            "rmse": _mv(math.sqrt(mse)), "r2": _mv(1 - float(np.sum(err ** 2)) / ss_tot if ss_tot > 0 else None)}


def build(evaluation: dict, preds: dict, threshold: float = 0.5, model: str = "xgboost") -> dict:
    doc: dict = {"version": 0.0, "dataset": {"evaluation_time": _dt.datetime.now(_dt.timezone.utc)
                                              .isoformat(timespec="seconds")}}
    ext: dict = {}
    for task, entry in evaluation["tasks"].items():
        res = entry.get(model)
        if res is None or model not in preds[task]:
            continue
        y, p = preds[task]["y"], preds[task][model]
        if entry["type"] == "binary":
            block = binary_block(y, p, res.get("auroc", {}), threshold)
            ext[task] = {"item_count": int(len(y)), "binary_classification_metrics": block}
            if "binary_classification_metrics" not in doc or task == "ihm":
                doc["binary_classification_metrics"] = block
                doc["dataset"]["item_count"] = int(len(y))
                doc["dataset"]["task"] = task
        elif entry["type"] == "regression":
            block = regression_block(y, p, res.get("mad", {}))
            block["kappa"] = _mv(res["kappa"].get("value"), res["kappa"].get("std"))
            doc["regression_metrics"] = {k: v for k, v in block.items() if k != "kappa"}
            ext[task] = {"item_count": int(len(y)), "regression_metrics": block}
        else:
            ext[task] = {"item_count": int(len(y)), "multilabel_classification_metrics": {
                k: _mv(res[k].get("value"), res[k].get("std")) for k in ("macro_auroc", "micro_auroc")}}
    doc["clinical_ml"] = {"model": model, "tasks": ext}
    return doc
