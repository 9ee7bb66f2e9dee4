"""Task frames -> model inputs, with the checks that turn bad splits into clear DataErrors.

A one-class or empty split would otherwise surface later as NaN AUROCs or a booster that
predicts a constant; both look like results. We refuse them here, naming the folder.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pandas as pd

from clinical_ml.io import DataError, sha256_file
from clinical_ml.tasks.io import TASKS, feature_columns, label_columns, read_split

TASK_TYPES: dict[str, str] = {"ihm": "binary", "decomp": "binary", "readmit": "binary",
                              "los": "regression", "pheno": "multilabel"}


def present_tasks(split_dir: str | os.PathLike) -> list[str]:
    """Tasks with at least one part file in a split folder, in canonical order."""
    root = Path(split_dir)
    return [t for t in TASKS if any((root / t).glob("part-*.parquet"))]


def load_task(split_dir: str | os.PathLike, task: str) -> pd.DataFrame:
    """Read one task of one split and check it has rows and its label columns."""
    df = read_split(split_dir, task)
    check_task_table(len(df), df.columns, task, Path(split_dir) / task)
    return df


def check_task_table(rows: int, columns, task: str, where: str | os.PathLike) -> None:
    """The checks of ``load_task`` on a row count and column names (also the streaming path's)."""
    if rows == 0:
        raise DataError(f"{where}: task file has no rows; the split is empty (check the cohort "
                        "filters and split fractions of build-tasks)")
    missing = [c for c in label_columns(task) if c not in columns]
    if missing:
        raise DataError(f"{where}: label column(s) {', '.join(missing)} missing")


def labels(df: pd.DataFrame, task: str) -> np.ndarray:
    """1-D float labels, or an (n, 25) array for pheno."""
    cols = label_columns(task)
    y = df[cols].to_numpy(dtype=float)
    return y if task == "pheno" else y[:, 0]


def check_labels(task: str, y: np.ndarray, where: str) -> None:
    """Refuse labels no metric or model can use: empty, NaN, one class, constant LOS."""
    if len(y) == 0:
        raise DataError(f"{where}: no rows for task {task}")
    if np.isnan(y).any():
        raise DataError(f"{where}: {int(np.isnan(y).sum())} missing label value(s) for {task}")
    kind = TASK_TYPES[task]
    if kind == "binary":
        n_pos = int(y.sum())
        if n_pos == 0 or n_pos == len(y):
            cls = "positive" if n_pos else "negative"
            raise DataError(f"{where}: all {len(y)} {task} labels are {cls} (one class); AUROC "
                            "and training need both classes: use more patients or another split")
    elif kind == "multilabel":
        both = ((y.sum(0) > 0) & (y.sum(0) < len(y))).sum()
        if both == 0:
            raise DataError(f"{where}: every phenotype label is one-class over {len(y)} rows; "
                            "need at least one phenotype with positives and negatives")
    else:
        if np.unique(y).size < 2:
            raise DataError(f"{where}: all {len(y)} LOS targets are equal; nothing to learn or rank")


def feature_matrix(df: pd.DataFrame, features: list[str], where: str) -> np.ndarray:
    """Features in the trained order as float32; missing columns are an error, not zeros."""
    check_features(df.columns, features, where)
    return df[features].to_numpy(dtype=np.float32)


def check_features(columns, features: list[str], where: str) -> None:
    """DataError naming ``where`` when a column of ``features`` is not among ``columns``."""
    present = set(columns)
    missing = [f for f in features if f not in present]
    if missing:
        head = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"{where}: {len(missing)} feature column(s) the model was trained on are "
                        f"missing ({head}); rebuild the tasks with the same feature set")


def train_features(df: pd.DataFrame | list[str], where: str) -> list[str]:
    """The ``f_*`` columns of a frame (or of a list of column names), in order."""
    feats = feature_columns(df)
    if not feats:
        raise DataError(f"{where}: no f_* feature columns")
    return feats


def manifest_digest(split_dirs: list[str | os.PathLike]) -> tuple[str | None, dict[str, str]]:
    """sha256 over the splits' manifest-*.json files (name and content hash, sorted).

    Returns (digest, {"<split>/<file>": sha256}); digest is None when no manifest exists.
    """
    files: dict[str, str] = {}
    for d in split_dirs:
        d = Path(d)
        for m in sorted(d.glob("manifest-*.json")):
            files[f"{d.name}/{m.name}"] = sha256_file(m)
    if not files:
        return None, {}
    h = hashlib.sha256()
    for name in sorted(files):
        h.update(f"{name}\0{files[name]}\n".encode())
    return h.hexdigest(), files
