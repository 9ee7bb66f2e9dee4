"""Outcome models: XGBoost (primary), logistic-regression and GRU baselines, and their evaluation.

Modules: ``data`` (task frames -> arrays, split checks), ``models`` (XGBoost/LR), ``sequences``
and ``gru`` (hourly series model), ``train`` (the training step's work), ``artifact`` (model
directory save/``load``), ``metrics``/``bootstrap``/``evaluation`` (evaluation.json),
``model_metrics`` (Model Registry statistics), ``report`` (report.html), ``note_features``
(extract-notes features joined on hadm_id; the with-notes variants and their comparison).
"""
from __future__ import annotations


def load(model_dir, baselines=None):
    """``clinical_ml.outcomes.artifact.load``; imported lazily so metrics stay import-light."""
    from clinical_ml.outcomes.artifact import load as _load

    return _load(model_dir, baselines)
