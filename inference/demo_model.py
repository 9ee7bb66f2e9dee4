"""A small, real outcome model in the documented layout, for tests and the serving benchmark.

Trained in seconds on random features (so its predictions mean nothing clinically), but it is
written exactly as docs/contracts.md "Outcome model directory" says: ``metadata.json``,
``feature_spec.json`` and one XGBoost booster per task (pheno: one multi-output booster), so
the server, handlers and capture are exercised on the same shapes as the trained model.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import numpy as np

from clinical_ml.io import atomic_path, write_json

# mimic3-benchmarks' handcrafted features: 17 channels x 7 sub-windows x 6 statistics = 714
# (used only when the task builder, clinical_ml.tasks.features, is not importable).
CHANNELS = ("capillary_refill_rate", "diastolic_blood_pressure", "fraction_inspired_oxygen",
            "glascow_coma_scale_eye_opening", "glascow_coma_scale_motor_response",
            "glascow_coma_scale_total", "glascow_coma_scale_verbal_response", "glucose",
            "heart_rate", "height", "mean_blood_pressure", "oxygen_saturation",
            "respiratory_rate", "systolic_blood_pressure", "temperature", "weight", "ph")
WINDOWS = ("all", "first10", "first25", "first50", "last50", "last25", "last10")
STATS = ("min", "max", "mean", "std", "skew", "len")


def feature_names(n: int | None = None) -> list[str]:
    """The task builder's feature names (what a trained model has), else the 714 reference ones."""
    try:
        from clinical_ml.tasks.features import feature_names as builder_names  # noqa: PLC0415
        names = builder_names()
    except ImportError:
        names = [f"f_{c}_{s}_{w}" for c in CHANNELS for w in WINDOWS for s in STATS]
    return names if n is None else names[:n]


def write_demo_outcome_model(out: str | os.PathLike, n_features: int | None = None, n_rows: int = 400,
                             n_trees: int = 20, n_pheno: int = 25, seed: int = 0) -> Path:
    """Train and save a tiny five-task outcome model under ``out``; returns the path."""
    import xgboost as xgb  # noqa: PLC0415

    rng = np.random.default_rng(seed)
    feats = feature_names(n_features)
    x = rng.normal(size=(n_rows, len(feats))).astype(np.float32)
    x[rng.random(x.shape) < 0.1] = np.nan
    signal = np.nan_to_num(x[:, 0]) + 0.5 * np.nan_to_num(x[:, 1 % len(feats)])
    binary = (signal + rng.normal(size=n_rows) > 0).astype(np.float32)
    pheno_labels = [f"y_phenotype_{i}" for i in range(n_pheno)]
    y_pheno = (rng.random((n_rows, n_pheno)) < 0.3).astype(np.float32)
    y_pheno[:, 0] = binary
    common = {"max_depth": 3, "eta": 0.3, "tree_method": "hist", "nthread": 1, "seed": seed}
    tasks = {
        "ihm": ({"objective": "binary:logistic"}, binary, {"type": "binary", "labels": ["y"]}),
        "decomp": ({"objective": "binary:logistic"}, 1 - binary, {"type": "binary", "labels": ["y"]}),
        # los as the outcome trainer fits it: log1p(remaining hours), served with expm1
        "los": ({"objective": "reg:squarederror"}, np.log1p(np.clip(48 + 24 * signal, 1, None)),
                {"type": "regression", "labels": ["y"]}),
        "pheno": ({"objective": "binary:logistic", "multi_strategy": "one_output_per_tree"}, y_pheno,
                  {"type": "multilabel", "labels": pheno_labels}),
        "readmit": ({"objective": "binary:logistic"}, binary, {"type": "binary", "labels": ["y"]}),
    }
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        for task, (params, y, _) in tasks.items():
            booster = xgb.train({**common, **params}, xgb.DMatrix(x, label=y), num_boost_round=n_trees)
            (tmp / task).mkdir()
            booster.save_model(tmp / task / "xgboost.json")
        write_json(tmp / "feature_spec.json", {
            "features": feats, "channels": list(CHANNELS),
            "tasks": {t: spec for t, (_, _, spec) in tasks.items()}})
        write_json(tmp / "metadata.json", {
            "model_type": "outcomes", "tasks": list(tasks), "models": ["xgboost"],
            "data_manifest_sha256": None, "code_version": "demo",
            "hyperparameters": {**common, "num_boost_round": n_trees},
            "created": dt.datetime.now(dt.timezone.utc).isoformat(), "demo": True})
    return Path(out)
