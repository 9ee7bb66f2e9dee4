"""The metrics a training job prints for hyperparameter tuning, and the regex that reads them.

SageMaker reads a tuning trial's objective from its log with ``MetricDefinitions`` regexes; the
local runner uses the same regexes. One line per metric, ``validation:ihm_auroc=0.812300``: the
script prints them (training/train_outcomes.py) and the definition builds its MetricDefinitions
from ``METRIC_REGEX`` (pipelines/definition.py), so the two cannot drift apart.
"""
from __future__ import annotations

import math

OBJECTIVE = "validation:ihm_auroc"
METRIC_LINE = "{name}={value:.6f}"
METRIC_REGEX = r"{name}=([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)"
# the metrics a trial reports (validation:<task>_<metric> of the XGBoost models)
REPORTED = ("ihm_auroc", "ihm_logloss", "decomp_auroc", "readmit_auroc", "los_mae", "pheno_logloss")


def metric_definitions() -> list[dict[str, str]]:
    """``[{"Name": "validation:ihm_auroc", "Regex": ...}, ...]`` for the tuning request."""
    return [{"Name": f"validation:{m}", "Regex": METRIC_REGEX.format(name=f"validation:{m}")} for m in REPORTED]


def metric_lines(training: dict) -> list[str]:
    """Validation metrics of the XGBoost models (metadata ``training``), finite values only."""
    out = []
    for task, summary in training.items():
        xgb = summary.get("xgboost") or {}
        for key in sorted(k for k in xgb if k.startswith("val_")):
            value = xgb[key]
            if isinstance(value, (int, float)) and math.isfinite(value):
                out.append(METRIC_LINE.format(name=f"validation:{task}_{key[4:]}", value=value))
    return out
