"""Evaluate a loaded outcome model on a test split -> the evaluation.json document.

Layout (docs/contracts.md, "evaluation.json"): ``gate`` holds XGBoost's point estimates of
the primary metric per task (the pipeline condition reads them); ``tasks.<task>.<model>``
holds every metric as ``{"value", "ci_low", "ci_high", "std"}``; ``tasks.<task>.subgroups``
the primary model's primary metric per subgroup with counts; ``tasks.<task>.comparisons``
paired differences (xgboost minus each baseline) on the same resamples.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from clinical_ml.outcomes import metrics as mt
from clinical_ml.outcomes.artifact import OutcomeModel
from clinical_ml.outcomes.bootstrap import DEFAULT_RESAMPLES, batched, bootstrap
from clinical_ml.outcomes.data import check_labels, labels, load_task, present_tasks
from clinical_ml.tasks.io import GROUP_COLUMNS, TIMESERIES, read_timeseries

log = get_logger(__name__)
PRIMARY = {"binary": "auroc", "multilabel": "macro_auroc", "regression": "kappa"}
GATE_KEYS = {"ihm": "ihm_auroc", "decomp": "decomp_auroc", "los": "los_kappa",
             "pheno": "pheno_macro_auroc", "readmit": "readmit_auroc"}
MIN_GROUP = 30


def binary_stats(y: np.ndarray, p: np.ndarray) -> dict:
    """Every statistic takes a weight vector or a (resamples, n) matrix (``batched``)."""
    r = mt.RankedScores(y, p)
    bins = mt.ece_bins(p)
    lp, slope0, intercept0 = mt.calibration_fits(y, p)
    return {"auroc": batched(lambda w: mt.auroc(None, r, w)),
            "auprc": batched(lambda w: mt.auprc(None, r, w)),
            "min_se_ppv": batched(lambda w: mt.min_se_ppv(None, r, w)),
            "brier": batched(lambda w: mt.brier(y, p, w)),
            "calibration_slope": batched(lambda w: mt.calibration_slope(y, p, w, logit_p=lp, start=slope0)),
            "calibration_intercept": batched(lambda w: mt.calibration_intercept(y, p, w, logit_p=lp,
                                                                                start=intercept0)),
            "ece": batched(lambda w: mt.ece(y, p, w, bins))}


def multilabel_stats(Y: np.ndarray, P: np.ndarray) -> dict:
    ranked = [mt.RankedScores(Y[:, j], P[:, j]) for j in range(Y.shape[1])]
    pooled = mt.RankedScores(Y.ravel(), P.ravel())
    return {"macro_auroc": batched(lambda w: mt.macro_auroc(Y, P, w, ranked)),
            "micro_auroc": batched(lambda w: mt.micro_auroc(Y, P, w, pooled))}


def regression_stats(y: np.ndarray, pred: np.ndarray) -> dict:
    buckets = (mt.los_bucket(y), mt.los_bucket(pred))
    return {"kappa": batched(lambda w: mt.kappa(None, None, w, buckets=buckets)),
            "mad": batched(lambda w: mt.mad(y, pred, w))}


STATS = {"binary": binary_stats, "multilabel": multilabel_stats, "regression": regression_stats}


def _finite(v: float) -> bool:
    return v is not None and math.isfinite(v)


def subgroup_table(df: pd.DataFrame, y: np.ndarray, p: np.ndarray, kind: str, resamples: int,
                   seed: int, min_group: int) -> dict:
    """Primary metric per value of each group column; small or one-class groups are skipped
    with the reason and their counts (never a NaN)."""
    metric = PRIMARY[kind]
    out: dict = {}
    for col in GROUP_COLUMNS:
        if col not in df.columns:
            out[col] = {"skipped": f"column {col} not in the test split"}
            continue
        values = df[col].astype(object).where(df[col].notna(), "unknown").astype(str).to_numpy()
        table = {}
        for value in sorted(set(values)):
            m = values == value
            yy, pp = y[m], p[m]
            entry: dict = {"n": int(m.sum())}
            if kind == "binary":
                entry["n_pos"] = int(yy.sum())
            if m.sum() < min_group:
                entry["skipped"] = f"fewer than {min_group} rows"
            elif kind == "binary" and entry["n_pos"] in (0, entry["n"]):
                entry["skipped"] = "one class"
            else:
                res = bootstrap({metric: STATS[kind](yy, pp)[metric]}, len(yy), resamples, seed)[metric]
                if res["value"] is None:
                    entry["skipped"] = res["undefined"]
                else:
                    entry[metric] = res
            table[value] = entry
        out[col] = table
    return out


def evaluate_task(model: OutcomeModel, task: str, test_dir: Path, resamples: int, seed: int,
                  min_group: int, ts_cache: dict) -> tuple[dict, dict]:
    """(evaluation entry of one task, predictions {"y": ..., model: ...} for plots)."""
    kind = model.kind(task)
    df = load_task(test_dir, task)
    y = labels(df, task)
    check_labels(task, y, str(test_dir / task))
    preds: dict = {"y": y, "kind": kind}
    skipped: dict = {}
    for name in model.models(task):
        ts = None
        if name == "gru":
            if not any((test_dir / TIMESERIES).glob("part-*.parquet")):
                log.warning("%s/gru not evaluated: no timeseries in %s", task, test_dir)
                skipped[name] = "no timeseries/ folder in the test split"
                continue
            if test_dir not in ts_cache:
                ts_cache[test_dir] = read_timeseries(test_dir)
            ts = ts_cache[test_dir]
        p = np.asarray(model.predict(task, df, name, timeseries=ts), dtype=float)
        if not np.isfinite(p).all():
            raise DataError(f"{task}/{name}: {int((~np.isfinite(p)).sum())} non-finite predictions")
        preds[name] = p
    stats: dict = {}
    for name in [m for m in preds if m not in ("y", "kind")]:
        for metric, fn in STATS[kind](y, preds[name]).items():
            stats[f"{name}.{metric}"] = fn
    primary = PRIMARY[kind]
    base = "xgboost" if "xgboost" in preds else None
    for other in [m for m in ("lr", "gru") if m in preds and base]:
        a, b = stats[f"{base}.{primary}"], stats[f"{other}.{primary}"]
        stats[f"comparisons.{base}_minus_{other}_{primary}"] = batched(lambda w, a=a, b=b: a(w) - b(w))
    results = bootstrap(stats, len(y), resamples, seed)
    entry: dict = {"type": kind, "n": int(len(y))}
    if kind == "binary":
        entry["prevalence"] = float(y.mean())
    if skipped:
        entry["skipped_models"] = skipped
    if kind == "multilabel":
        entry["label_prevalence"] = {c: float(v) for c, v in zip(model.labels(task), y.mean(0))}
    for key, res in results.items():
        group, metric = key.split(".", 1)
        entry.setdefault(group, {})[metric] = res
    if kind == "multilabel":
        for name in [m for m in preds if m not in ("y", "kind")]:
            per = {}
            for j, col in enumerate(model.labels(task)):
                v = mt.auroc(y[:, j], preds[name][:, j])
                per[col] = {"value": v} if _finite(v) else {"value": None, "undefined": "one class"}
            entry[name]["label_auroc"] = per
    if base:
        entry["subgroups"] = {"model": base, "metric": primary,
                              **subgroup_table(df, y, preds[base], kind, resamples, seed, min_group)}
    return entry, preds


def evaluate(model: OutcomeModel, test_dir: str | Path, resamples: int = DEFAULT_RESAMPLES,
             seed: int = 0, min_group: int = MIN_GROUP, tasks: list[str] | None = None) -> tuple[dict, dict]:
    """(evaluation.json document, predictions per task for the report)."""
    test_dir = Path(test_dir)
    if resamples < 0:
        raise DataError(f"--bootstrap must be >= 0, got {resamples}")
    available = present_tasks(test_dir)
    wanted = tasks or model.tasks
    todo = [t for t in wanted if t in available and t in model.tasks]
    missing = [t for t in wanted if t not in todo]
    if not todo:
        raise DataError(f"{test_dir}: no test data for any trained task ({', '.join(model.tasks)}); "
                        "pass the test split of the same build-tasks output")
    doc: dict = {"gate": {}, "tasks": {}, "bootstrap": {"resamples": resamples, "seed": seed,
                                                        "ci": "percentile 95%", "unit": "row"},
                 "subgroup_min_n": min_group, "primary_model": "xgboost",
                 "model": {k: model.metadata.get(k) for k in ("code_version", "data_manifest_sha256")}}
    if missing:
        doc["missing_tasks"] = missing
    all_preds, ts_cache = {}, {}
    for task in todo:
        log.info("evaluating %s", task)
        entry, preds = evaluate_task(model, task, test_dir, resamples, seed, min_group, ts_cache)
        doc["tasks"][task] = entry
        all_preds[task] = preds
        value = entry.get("xgboost", {}).get(PRIMARY[entry["type"]], {}).get("value")
        if _finite(value):
            doc["gate"][GATE_KEYS[task]] = round(float(value), 6)
    return doc, all_preds
