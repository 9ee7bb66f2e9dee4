"""XGBoost (primary) and logistic-regression (baseline) fitting on the handcrafted features.

XGBoost: ``hist`` trees, early stopping on the validation split, fixed ``seed`` and ``nthread``
(so the same data and seed give byte-identical boosters). The booster is cut to its best
iteration before saving, so a loaded model predicts exactly what was validated. Training and
validation data are ``QuantileDMatrix``es built from fixed-size row batches (``batches``):
from the task Parquet parts (``fit_xgboost_batches``, the training step) or from in-memory
arrays (``fit_xgboost``), the same booster for the same rows, and never a whole float copy
of the training features beyond the caller's own (docs/outcomes.md, "Training at size").
- binary tasks: ``binary:logistic``;
- pheno: ONE multi-output booster (``binary:logistic`` on the 25-column label matrix). Why not
  25 boosters: one file and one early-stopping decision, histogram building shared across
  labels (about 25x fewer passes over the data), and no per-label booster for a phenotype
  that has a handful of positives to overfit on;
- los: ``reg:absoluteerror`` on remaining hours, i.e. the conditional median. The target is
  heavy-tailed (mean ~2x median); the median minimises MAD and tracks the bucket kappa far
  better than the mean. On the 2,000-patient synthetic tree: kappa 0.277 / MAD 66 h, against
  0.230 / 69 h for squared error on log1p(hours) and 0.087 / 76 h for squared error on hours.
  ``feature_spec.tasks.los.xgboost_target_transform`` records the transform ("none"; older
  models: "log1p", undone with expm1 at prediction).

LR reproduces mimic3-benchmarks' logistic baselines: mean imputation and standardisation
fitted on train, L2 logistic regression with liblinear (scikit-learn's default solver when
they were written), ``random_state=42``, C = 0.001 for ihm (their README), 1.0 for decomp and
pheno (their defaults; pheno one model per label), readmission (not in the benchmark) like
ihm; LOS uses their regression baseline, ordinary least squares on the same features.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import warnings

import numpy as np
import xgboost as xgb
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from clinical_ml.outcomes.batches import Batches, RowBatches, array_batches

LR_C: dict[str, float] = {"ihm": 0.001, "decomp": 1.0, "pheno": 1.0, "readmit": 0.001}

XGB_OBJECTIVE = {"binary": ("binary:logistic", "logloss"), "multilabel": ("binary:logistic", "logloss"),
                 "regression": ("reg:absoluteerror", "mae")}
LOS_TARGET_TRANSFORM = "none"
MAX_BIN = 256  # XGBoost's default; the QuantileDMatrix and the booster must agree


def xgb_params(kind: str, *, seed: int, nthread: int, learning_rate: float, max_depth: int,
               subsample: float, colsample_bytree: float, min_child_weight: float,
               reg_lambda: float = 1.0, reg_alpha: float = 0.0) -> dict:
    objective, metric = XGB_OBJECTIVE[kind]
    return {"objective": objective, "eval_metric": metric, "tree_method": "hist",
            "learning_rate": learning_rate, "max_depth": max_depth, "subsample": subsample,
            "colsample_bytree": colsample_bytree, "min_child_weight": min_child_weight,
            "lambda": reg_lambda, "alpha": reg_alpha, "seed": seed, "nthread": nthread}


def target_for_xgb(kind: str, y: np.ndarray) -> np.ndarray:
    return y


# rows x features from which the training step boosts from disk pages: ~100 k rows of the 205
# task features, where the in-memory quantised matrix passes ~250 MB. Below it the pages cost
# more than they save (the demo's tuning trials, 1-3 k rows a fit: 40% slower with them)
EXTMEM_MIN_VALUES = 20_000_000


def external_memory_for(rows: int, n_features: int, setting: bool | None = None) -> bool:
    """``setting`` when given, else whether the training matrix is large enough for pages."""
    return setting if setting is not None else rows * n_features >= EXTMEM_MIN_VALUES


def quantile_matrices(kind: str, train: Batches, y_tr: np.ndarray, val: Batches, y_va: np.ndarray,
                      params: dict, where: tuple[str, str] = ("train", "val"),
                      cache_dir: str | None = None) -> tuple[xgb.QuantileDMatrix, xgb.QuantileDMatrix]:
    """Training and validation QuantileDMatrix from row batches; validation quantised with the
    training cuts (``ref``), ``max_bin`` as the booster's (XGBoost's default 256).

    ``cache_dir``: external memory instead (``ExtMemQuantileDMatrix``), the quantised pages in
    files there, read back page by page while boosting: the same booster byte for byte, and a
    peak that stays flat in the rows (decompensation, 250 k -> 1 M rows: 1,035 -> 1,221 MiB,
    against 1,431 -> 3,269 in memory; docs/outcomes.md "Training at size")."""
    opts = {"missing": np.nan, "nthread": params["nthread"], "max_bin": int(params.get("max_bin", MAX_BIN))}
    it_tr = RowBatches(train, target_for_xgb(kind, y_tr), where[0],
                       None if cache_dir is None else os.path.join(cache_dir, "train"))
    it_va = RowBatches(val, target_for_xgb(kind, y_va), where[1],
                       None if cache_dir is None else os.path.join(cache_dir, "val"))
    matrix = xgb.QuantileDMatrix if cache_dir is None else xgb.ExtMemQuantileDMatrix
    dtr = matrix(it_tr, **opts)
    return dtr, matrix(it_va, ref=dtr, **opts)


def fit_xgboost_batches(kind: str, train: Batches, y_tr: np.ndarray, val: Batches, y_va: np.ndarray,
                        params: dict, max_rounds: int, early_stopping_rounds: int,
                        where: tuple[str, str] = ("train", "val"),
                        external_memory: bool = False) -> tuple[xgb.Booster, dict]:
    """``fit_xgboost`` on row batches (``batches.SplitParts.batches``): the training features
    are never one float matrix; with ``external_memory`` not even the quantised one (its pages
    in a temporary folder, removed when the fit ends)."""
    with (tempfile.TemporaryDirectory(prefix="xgb-pages-") if external_memory
          else contextlib.nullcontext()) as cache:
        dtr, dva = quantile_matrices(kind, train, y_tr, val, y_va, params, where, cache)
        try:
            return train_xgboost(params, dtr, dva, max_rounds, early_stopping_rounds)
        finally:
            del dtr, dva  # the page files are closed before their folder goes


def fit_xgboost(kind: str, X_tr: np.ndarray, y_tr: np.ndarray, X_va: np.ndarray, y_va: np.ndarray,
                params: dict, max_rounds: int, early_stopping_rounds: int) -> tuple[xgb.Booster, dict]:
    """In-memory arrays through the same row batches as the Parquet path (same booster)."""
    return fit_xgboost_batches(kind, array_batches(np.asarray(X_tr, dtype=np.float32)), y_tr,
                               array_batches(np.asarray(X_va, dtype=np.float32)), y_va, params,
                               max_rounds, early_stopping_rounds)


def train_xgboost(params: dict, dtr: xgb.DMatrix, dva: xgb.DMatrix, max_rounds: int,
                  early_stopping_rounds: int) -> tuple[xgb.Booster, dict]:
    """Boost with early stopping on ``dva``, cut to the best iteration; (booster, info)."""
    history: dict = {}
    booster = xgb.train(params, dtr, num_boost_round=max_rounds, evals=[(dva, "val")],
                        early_stopping_rounds=early_stopping_rounds, evals_result=history,
                        verbose_eval=False)
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    booster = booster[: best + 1]
    curve = history.get("val", {}).get(params["eval_metric"], [])
    # the whole validation curve (every round, also past the best one): experiment tracking
    # plots it per round; a few KB of metadata even at max_rounds
    return booster, {"best_iteration": best, "rounds": best + 1,
                     f"val_{params['eval_metric']}": float(curve[best]) if curve else None,
                     "curve": {"metric": params["eval_metric"], "values": [round(float(v), 6) for v in curve]}}


def predict_xgboost(kind: str, booster: xgb.Booster, X: np.ndarray, nthread: int | None = None,
                    target_transform: str = "none") -> np.ndarray:
    d = xgb.DMatrix(X, missing=np.nan, nthread=nthread or -1)
    if nthread:
        booster.set_param({"nthread": nthread})
    return finish_xgboost(kind, booster.predict(d).astype(float), target_transform)


def predict_xgboost_batches(kind: str, booster: xgb.Booster, batches: Batches, nthread: int | None = None,
                            target_transform: str = "none") -> np.ndarray:
    """``predict_xgboost`` batch by batch (rows are predicted independently: the same values)."""
    out = [predict_xgboost(kind, booster, X, nthread, target_transform) for X in batches()]
    return np.concatenate(out) if out else np.empty(0)


def xgboost_target_transform(task_spec: dict, kind: str | None) -> str:
    """The target transform a task's feature_spec entry records; absent means a model written
    to the first contract, where los was fit on log1p(hours)."""
    return task_spec.get("xgboost_target_transform", "log1p" if kind == "regression" else "none")


def finish_xgboost(kind: str | None, p: np.ndarray, target_transform: str = "none") -> np.ndarray:
    """Raw booster output -> prediction: undo the target transform, no negative hours."""
    if target_transform == "log1p":
        p = np.expm1(p)
    return np.maximum(p, 0.0) if kind == "regression" else p


def _lr_pipeline(C: float) -> Pipeline:
    return make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(),
                         LogisticRegression(C=C, l1_ratio=0.0, solver="liblinear", random_state=42))


class ConstantClassifier:
    """Prevalence predictor for a phenotype that is one-class in training (LR cannot fit it)."""

    def __init__(self, prevalence: float):
        self.prevalence = float(prevalence)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        p = np.full(len(X), self.prevalence)
        return np.c_[1 - p, p]


@contextlib.contextmanager
def _quiet_imputer():
    """Features never observed in training (a channel a site does not chart) are dropped by
    the imputer, as in the reference; expected, so not a warning on every fit and predict."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Skipping features without any observed values")
        yield


def fit_lr(task: str, kind: str, X: np.ndarray, y: np.ndarray, C: float | None = None):
    """The fitted baseline: a Pipeline, or for pheno a list of per-label models."""
    with _quiet_imputer():
        return _fit_lr(task, kind, X, y, C)


def _fit_lr(task: str, kind: str, X: np.ndarray, y: np.ndarray, C: float | None):
    C = LR_C.get(task, 1.0) if C is None else C
    if kind == "regression":
        return make_pipeline(SimpleImputer(strategy="mean"), StandardScaler(), LinearRegression()).fit(X, y)
    if kind == "multilabel":
        models = []
        for j in range(y.shape[1]):
            col = y[:, j]
            if 0 < col.sum() < len(col):
                models.append(_lr_pipeline(C).fit(X, col))
            else:
                models.append(ConstantClassifier(col.mean()))
        return models
    return _lr_pipeline(C).fit(X, y)


def predict_lr(kind: str, model, X: np.ndarray) -> np.ndarray:
    with _quiet_imputer():
        return _predict_lr(kind, model, X)


def _predict_lr(kind: str, model, X: np.ndarray) -> np.ndarray:
    if kind == "regression":
        return np.maximum(model.predict(X).astype(float), 0.0)
    if kind == "multilabel":
        return np.column_stack([m.predict_proba(X)[:, 1] for m in model]).astype(float)
    return model.predict_proba(X)[:, 1].astype(float)
