"""Model quality once ground truth arrives: AUROC and Brier of the window vs the registered model.

Ground truth uses Model Monitor's ground-truth record (one JSON a line, any ``*.jsonl`` under the
folder)::

    {"groundTruthData": {"data": "1" | "1,0,1", "encoding": "CSV" | "JSON"},
     "eventMetadata": {"eventId": "<the capture record's eventId>"}, "eventVersion": "0"}

``data`` holds one label per instance of the captured request, in order. Rows join the window
by (id, position), the id being the capture record's ``inferenceId`` when the request carried one
(``InferenceId`` of InvokeEndpoint, what Model Monitor's merge uses) else its ``eventId``.

Per window: ``status`` ``ok`` (AUROC, Brier, calibration), ``none`` (no captured row has a
label yet: no quality figures, no quality datapoint, so the alarm never fires on it) or
``insufficient_labels`` (fewer than ``MIN_LABELLED`` labelled rows, or one class only).
Calibration: ``model_ece`` (expected calibration error, 10 equal-width bins of the score,
bin-size weighted |mean label - mean score|), ``calibration_slope`` and
``calibration_intercept`` (logistic recalibration ``logit P(y) = a + b logit(p)``: 1 and 0 when
calibrated; slope < 1 means over-confident scores). Registered metrics come from the registered model's
``evaluation.json`` (``gate.<task>_auroc`` and ``tasks.<task>.xgboost.brier``), its
``model_metrics.json`` (SageMaker ModelQuality: ``binary_classification_metrics.auc``), or a
plain ``{"auroc": .., "brier": ..}``.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from clinical_ml.io import DataError, read_json
from clinical_ml.outcomes.metrics import ece

MIN_LABELLED = 50


def read_ground_truth(folder: str | os.PathLike) -> dict[str, list[float]]:
    """eventId -> labels of that request's instances."""
    root = Path(folder)
    if not root.exists():
        raise DataError(f"{root}: ground-truth folder not found")
    out: dict[str, list[float]] = {}
    for p in sorted(root.rglob("*.jsonl")):
        for line in p.read_bytes().splitlines():
            if not line.strip():
                continue
            try:
                rec = orjson.loads(line)
                gt = rec["groundTruthData"]
                data = gt["data"]
                if str(gt.get("encoding", "CSV")).upper() == "JSON":
                    obj = orjson.loads(data) if isinstance(data, str) else data
                    labels = obj if isinstance(obj, list) else [obj]
                else:
                    labels = [float(x) for x in str(data).replace("\n", ",").split(",") if x.strip()]
                out[str(rec["eventMetadata"]["eventId"])] = [float(x) for x in labels]
            except (KeyError, ValueError, TypeError, orjson.JSONDecodeError):
                raise DataError(f"{p}: a line is not a ground-truth record "
                                "(groundTruthData.data, eventMetadata.eventId)") from None
    return out


def registered_metrics(path: str | os.PathLike, task: str = "ihm") -> dict[str, float]:
    doc = read_json(path)
    out: dict[str, float] = {}
    if "gate" in doc or "tasks" in doc:
        if f"{task}_auroc" in doc.get("gate", {}):
            out["auroc"] = float(doc["gate"][f"{task}_auroc"])
        brier = doc.get("tasks", {}).get(task, {}).get("xgboost", {}).get("brier")
        if brier is not None:
            out["brier"] = float(brier["value"] if isinstance(brier, dict) else brier)
    elif "binary_classification_metrics" in doc:
        m = doc["binary_classification_metrics"]
        if "auc" in m:
            out["auroc"] = float(m["auc"]["value"])
        if "brier_score" in m:
            out["brier"] = float(m["brier_score"]["value"])
    else:
        for k in ("auroc", "brier"):
            if k in doc:
                out[k] = float(doc[k])
    if not out:
        raise DataError(f"{path}: no registered AUROC/Brier found (looked for gate.{task}_auroc, "
                        "binary_classification_metrics.auc, auroc)")
    return out


def calibration_line(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) of the logistic recalibration ``logit P(y) = a + b logit(p)``, fitted
    jointly (EvaluateOutcomes' ``calibration_intercept`` is calibration-in-the-large instead),
    with scikit-learn's fit, whose figures the published monitor metrics have always used."""
    from sklearn.linear_model import LogisticRegression  # noqa: PLC0415

    eps = 1e-6
    z = np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1 - eps)).reshape(-1, 1)
    lr = LogisticRegression(C=np.inf, solver="lbfgs", max_iter=200).fit(z, y)  # unpenalised
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def join(keys: list[str], row_in_event: np.ndarray, predictions: np.ndarray,
         labels: dict[str, list[float]], fallback_keys: list[str] | None = None
         ) -> tuple[np.ndarray, np.ndarray]:
    """(labels, scores) of the window's rows that have a ground-truth label and a score."""
    y, p = [], []
    alt = fallback_keys if fallback_keys is not None else [None] * len(keys)
    for key, other, pos, pred in zip(keys, alt, row_in_event, predictions):
        lab = labels.get(key) if key else None
        if lab is None and other:
            lab = labels.get(other)
        if lab is not None and pos < len(lab) and np.isfinite(pred):
            y.append(lab[pos])
            p.append(pred)
    return np.asarray(y, dtype=float), np.asarray(p, dtype=float)


def auroc_ci(y: np.ndarray, p: np.ndarray, resamples: int = 500, seed: int = 0) -> list[float] | None:
    """95% percentile bootstrap CI of the window's AUROC (EvaluateOutcomes' resampling), so a
    timeline of a few hundred labelled rows shows how much a point moves by chance."""
    from clinical_ml.outcomes.bootstrap import batched, bootstrap
    from clinical_ml.outcomes.metrics import RankedScores, auroc

    ranked = RankedScores(y, p)  # sorted once, then every resample of a chunk in one call
    ci = bootstrap({"auroc": batched(lambda w: auroc(None, ranked, w))}, len(y), resamples, seed)["auroc"]
    return [ci["ci_low"], ci["ci_high"]] if "ci_low" in ci else None


def evaluate(event_ids: list[str], row_in_event: np.ndarray, predictions: np.ndarray,
             labels: dict[str, list[float]], registered: dict[str, float],
             max_auroc_drop: float = 0.05, max_brier_increase: float = 0.02,
             inference_ids: list[str] | None = None) -> dict[str, Any]:
    """Join predictions with labels (by inferenceId where the record has one, else eventId);
    AUROC/Brier/calibration and their change vs ``registered``."""
    from sklearn.metrics import brier_score_loss, roc_auc_score

    keys = [i or e for i, e in zip(inference_ids, event_ids)] if inference_ids else list(event_ids)
    y_arr, p_arr = join(keys, row_in_event, predictions, labels,
                        list(event_ids) if inference_ids else None)
    n = len(y_arr)
    if n == 0:
        return {"status": "none", "labelled_rows": 0, "model_auroc": None, "model_brier": None,
                "message": "no ground truth for this window's inferences yet", "violations": []}
    if n < MIN_LABELLED or len(set(y_arr.tolist())) < 2:
        return {"status": "insufficient_labels", "labelled_rows": n, "model_auroc": None,
                "model_brier": None, "violations": []}
    p_arr = np.clip(p_arr, 0.0, 1.0)
    slope, intercept = calibration_line(y_arr, p_arr)
    res: dict[str, Any] = {"status": "ok", "labelled_rows": n,
                           "positive_rate": float(y_arr.mean()),
                           "model_auroc": float(roc_auc_score(y_arr, p_arr)),
                           "model_auroc_ci": auroc_ci(y_arr, p_arr),
                           "model_brier": float(brier_score_loss(y_arr, p_arr)),
                           "model_ece": ece(y_arr, p_arr),
                           "calibration_slope": slope, "calibration_intercept": intercept,
                           "auroc_drop": None, "brier_increase": None, "violations": []}
    if "auroc" in registered:
        res["auroc_drop"] = registered["auroc"] - res["model_auroc"]
        if res["auroc_drop"] > max_auroc_drop:
            res["violations"].append(f"AUROC {res['model_auroc']:.3f} is {res['auroc_drop']:.3f} below "
                                     f"the registered {registered['auroc']:.3f} (limit {max_auroc_drop})")
    if "brier" in registered:
        res["brier_increase"] = res["model_brier"] - registered["brier"]
        if res["brier_increase"] > max_brier_increase:
            res["violations"].append(f"Brier {res['model_brier']:.3f} is {res['brier_increase']:.3f} above "
                                     f"the registered {registered['brier']:.3f} (limit {max_brier_increase})")
    return res
