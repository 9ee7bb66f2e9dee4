"""The outcome model directory (docs/contracts.md, "Outcome model directory") and its loader.

``load(model_dir).predict(task, features_df, model="xgboost")`` is the one prediction path used
by evaluation and by the endpoint, so what is evaluated is what is served.
``load(model_dir, baselines=dir)`` also reads the LR/GRU baselines from a second model directory
(the pipeline's TrainBaselines step): they do not depend on the tuned XGBoost hyperparameters,
so they are trained once instead of in every tuning trial.
"""
from __future__ import annotations

import datetime as _dt
import os
from functools import cached_property
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import xgboost as xgb

from clinical_ml.io import DataError, read_json, write_json
from clinical_ml.outcomes import models as M
from clinical_ml.outcomes.data import feature_matrix

MODEL_FILES = {"xgboost": "xgboost.json", "lr": "lr.joblib", "gru": "gru.pt"}


def save_xgboost(booster: xgb.Booster, model_dir: Path, task: str) -> Path:
    path = model_dir / task / MODEL_FILES["xgboost"]
    path.parent.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path))
    return path


def save_lr(model, model_dir: Path, task: str) -> Path:
    path = model_dir / task / MODEL_FILES["lr"]
    path.parent.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, path)
    return path


def save_gru(bundle: dict, model_dir: Path, task: str) -> Path:
    from clinical_ml.outcomes import gru as gru_mod  # torch only when a GRU is involved

    path = model_dir / task / MODEL_FILES["gru"]
    path.parent.mkdir(parents=True, exist_ok=True)
    gru_mod.save(bundle, path)
    return path


def write_spec(model_dir: Path, features: list[str], channels: list[str], tasks: dict) -> None:
    write_json(model_dir / "feature_spec.json", {"features": features, "channels": channels, "tasks": tasks})


def write_metadata(model_dir: Path, **fields) -> None:
    meta = {"model_type": "outcomes", **fields,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(model_dir / "metadata.json", meta)


class OutcomeModel:
    """A loaded outcome model directory; models are read lazily, once."""

    def __init__(self, model_dir: str | os.PathLike, baselines: str | os.PathLike | None = None):
        self.dir = Path(model_dir)
        self.metadata, self.spec = _read_model_dir(self.dir)
        self.features: list[str] = list(self.spec["features"])
        self.baselines = Path(baselines) if baselines is not None else None
        if self.baselines is not None:
            _check_baselines(self.dir, self.metadata, self.spec, self.baselines)
        self._cache: dict[tuple[str, str], object] = {}
        # the thread count training used; more threads than cores stall OpenMP on busy hosts
        self.nthread = int(self.metadata.get("hyperparameters", {}).get("nthread") or 0) or None

    @cached_property
    def tasks(self) -> list[str]:
        return list(self.spec["tasks"])

    def _path(self, task: str, model: str) -> Path | None:
        """The file of one model: this directory's, else the baselines' (never their xgboost)."""
        roots = [self.dir] + ([self.baselines] if self.baselines is not None and model != "xgboost" else [])
        for root in roots:
            path = root / task / MODEL_FILES[model]
            if path.is_file():
                return path
        return None

    def models(self, task: str) -> list[str]:
        """Models saved for a task, primary (xgboost) first."""
        return [m for m in MODEL_FILES if self._path(task, m) is not None]

    def kind(self, task: str) -> str:
        if task not in self.spec["tasks"]:
            raise DataError(f"{self.dir}: no model for task {task!r}; trained tasks: "
                            f"{', '.join(self.tasks) or 'none'}")
        return self.spec["tasks"][task]["type"]

    def labels(self, task: str) -> list[str]:
        return list(self.spec["tasks"][task]["labels"])

    def _get(self, task: str, model: str):
        key = (task, model)
        if key not in self._cache:
            path = self._path(task, model) if model in MODEL_FILES else None
            if path is None:
                raise DataError(f"{self.dir}: no {model!r} model for task {task!r}; available: "
                                f"{', '.join(self.models(task)) or 'none'}")
            if model == "xgboost":
                booster = xgb.Booster()
                booster.load_model(str(path))
                self._cache[key] = booster
            elif model == "lr":
                self._cache[key] = joblib.load(path)
            else:
                from clinical_ml.outcomes import gru as gru_mod

                self._cache[key] = gru_mod.load(path)
        return self._cache[key]

    def predict(self, task: str, features_df: pd.DataFrame, model: str = "xgboost",
                timeseries: pd.DataFrame | None = None) -> np.ndarray:
        """Probabilities (binary: (n,), pheno: (n, 25)) or LOS in hours (n,).

        ``gru`` reads the hourly series instead of features: pass ``timeseries`` (the split's
        timeseries frame) and rows with ``icustay_id`` and ``prediction_hour``.
        """
        kind = self.kind(task)
        where = f"{task} input"
        if model == "gru":
            if timeseries is None:
                raise DataError(f"{where}: the gru model needs the hourly timeseries frame "
                                "(pass timeseries=read_timeseries(split_dir))")
            from clinical_ml.outcomes import gru as gru_mod

            net, cfg = self._get(task, model)
            return gru_mod.predict(net, cfg, features_df, timeseries)
        X = feature_matrix(features_df, self.features, where)
        if model == "xgboost":
            transform = M.xgboost_target_transform(self.spec["tasks"][task], kind)
            return M.predict_xgboost(kind, self._get(task, model), X, self.nthread, transform)
        if model == "lr":
            return M.predict_lr(kind, self._get(task, model), X)
        raise DataError(f"unknown model {model!r}; expected one of {', '.join(MODEL_FILES)}")


def _read_model_dir(model_dir: Path) -> tuple[dict, dict]:
    metadata = read_json(model_dir / "metadata.json")
    if metadata.get("model_type") != "outcomes":
        raise DataError(f"{model_dir}/metadata.json: model_type is "
                        f"{metadata.get('model_type')!r}, expected 'outcomes'")
    return metadata, read_json(model_dir / "feature_spec.json")


def _check_baselines(model_dir: Path, metadata: dict, spec: dict, baselines: Path) -> None:
    """Baselines are only comparable when trained on the same rows with the same features."""
    other_meta, other_spec = _read_model_dir(baselines)
    ours, theirs = metadata.get("data_manifest_sha256"), other_meta.get("data_manifest_sha256")
    if ours and theirs and ours != theirs:
        raise DataError(f"{baselines}: the baselines were trained on other data (manifest "
                        f"{theirs[:12]}) than {model_dir} ({ours[:12]}); train both on the same splits")
    if other_spec.get("features") != spec.get("features"):
        raise DataError(f"{baselines}/feature_spec.json: features differ from {model_dir}'s; "
                        "train the baselines and the model on the same task tree")


def load(model_dir: str | os.PathLike, baselines: str | os.PathLike | None = None) -> OutcomeModel:
    return OutcomeModel(model_dir, baselines)
