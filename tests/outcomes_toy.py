"""A tiny task tree in the documented layout (docs/contracts.md, "Task tree") with a learnable
signal, for the outcome-model tests. Every label depends on a latent per-stay risk that also
drives the features and the hourly series, so a working model must beat chance.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from clinical_ml.tasks.io import PHENOTYPE_COLUMNS, write_part

EYE = ["1 No Response", "2 To pain", "To Speech", "Spontaneously"]
N_FEATURES = 12


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _stays(n: int, rng: np.random.Generator, start: int) -> pd.DataFrame:
    ids = np.arange(start, start + n)
    age = rng.integers(18, 90, n)
    return pd.DataFrame({
        "subject_id": ids.astype("int64"), "hadm_id": (ids + 100000).astype("int64"),
        "icustay_id": (ids + 200000).astype("int64"),
        "sex": rng.choice(["F", "M"], n), "age": age.astype(float),
        "age_band": pd.cut(age, [17, 40, 65, 120], labels=["18-39", "40-64", "65+"]).astype(str),
        "ethnicity": rng.choice(["WHITE", "BLACK", "HISPANIC", "ASIAN"], n, p=[.6, .2, .15, .05]),
        "insurance": rng.choice(["Medicare", "Private", "Medicaid"], n),
        "risk": rng.normal(size=n), "los_h": np.exp(rng.normal(4.0, 0.4, n)) + 50,
    })


def _features(risk: np.ndarray, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(risk)
    cols = {}
    for j in range(N_FEATURES):
        signal = (1.0 if j < 4 else 0.0) * risk * (1 if j % 2 else -1)
        x = (signal + rng.normal(0, 1.0, n)).astype(np.float32)
        x[rng.random(n) < 0.05] = np.nan
        cols[f"f_var{j:02d}_mean"] = x
    return cols


def _rows(stays: pd.DataFrame, hours: np.ndarray, idx: np.ndarray, rng) -> pd.DataFrame:
    base = stays.iloc[idx].reset_index(drop=True)
    df = base[["subject_id", "hadm_id", "icustay_id"]].copy()
    df["prediction_hour"] = hours.astype(float)
    for c in ("sex", "age", "age_band", "ethnicity", "insurance"):
        df[c] = base[c].to_numpy()
    for k, v in _features(base["risk"].to_numpy(), rng).items():
        df[k] = v
    return df, base


def _timeseries(stays: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    frames = []
    for r in stays.itertuples():
        T = int(min(r.los_h, 120))
        h = np.sort(rng.uniform(0, T, max(4, T // 3)))
        hr = 85 + 12 * r.risk + rng.normal(0, 5, len(h))
        hr[rng.random(len(h)) < 0.3] = np.nan
        eye = np.clip(np.round(3 - r.risk + rng.normal(0, 0.5, len(h))), 0, 3).astype(int)
        frames.append(pd.DataFrame({
            "icustay_id": r.icustay_id, "hour": h, "heart_rate": hr,
            "systolic_blood_pressure": 115 - 10 * r.risk + rng.normal(0, 8, len(h)),
            "glascow_coma_scale_eye_opening": np.array(EYE, dtype=object)[eye],
            "capillary_refill_rate": np.where(rng.random(len(h)) < 0.1, "1.0", None),
        }))
    return pd.concat(frames, ignore_index=True)


def write_split(split_dir: Path, stays: pd.DataFrame, rng: np.random.Generator,
                timeseries: bool = True) -> None:
    n = len(stays)
    risk = stays["risk"].to_numpy()
    # ihm: one row per stay at hour 48
    df, _ = _rows(stays, np.full(n, 48.0), np.arange(n), rng)
    df["y"] = (rng.random(n) < _sigmoid(-1.0 + 1.8 * risk)).astype("int8")
    write_part(df, split_dir, "ihm")
    # decomp: a few sample hours per stay
    idx = np.repeat(np.arange(n), 3)
    hours = np.tile([6.0, 20.0, 47.5], n)
    df, base = _rows(stays, hours, idx, rng)
    df["y"] = (rng.random(len(df)) < _sigmoid(-1.5 + 1.8 * base["risk"].to_numpy())).astype("int8")
    write_part(df, split_dir, "decomp")
    # los: remaining hours at a few sample hours
    idx = np.repeat(np.arange(n), 2)
    hours = np.tile([5.0, 24.0], n)
    df, base = _rows(stays, hours, idx, rng)
    df["y"] = np.maximum(base["los_h"].to_numpy() * np.exp(0.5 * base["risk"].to_numpy()) - hours, 1.0)
    write_part(df, split_dir, "los")
    # pheno: one row per stay, 25 labels
    df, _ = _rows(stays, stays["los_h"].to_numpy(), np.arange(n), rng)
    for j, col in enumerate(PHENOTYPE_COLUMNS):
        df[col] = (rng.random(n) < _sigmoid(-1.5 + (1.5 if j % 3 == 0 else 0.2) * risk)).astype("int8")
    write_part(df, split_dir, "pheno")
    # readmit: one row per stay at discharge
    df, _ = _rows(stays, stays["los_h"].to_numpy(), np.arange(n), rng)
    df["y"] = (rng.random(n) < _sigmoid(-1.2 + 1.2 * risk)).astype("int8")
    write_part(df, split_dir, "readmit")
    if timeseries:
        write_part(_timeseries(stays, rng), split_dir, "timeseries")
    (split_dir / "manifest-00000.json").write_text(json.dumps({"stays": n, "split": split_dir.name}))


def make_task_tree(root: Path, n_stays: int = 300, seed: int = 0, timeseries: bool = True) -> Path:
    """``root/{train,val,test}/...``; 60/20/20 split of ``n_stays`` stays."""
    rng = np.random.default_rng(seed)
    sizes = {"train": int(n_stays * 0.6), "val": int(n_stays * 0.2)}
    sizes["test"] = n_stays - sizes["train"] - sizes["val"]
    start = 1
    for split, n in sizes.items():
        write_split(Path(root) / split, _stays(n, rng, start), rng, timeseries)
        start += n
    return Path(root)


def train_toy_models(tree: Path, out: Path, tasks=("ihm",), hp=None, shuffle: bool = False) -> Path:
    """XGBoost outcome models on ``tree`` into ``out``. ``shuffle``: the deliberately weakened
    challenger of the promotion tests, its ihm labels shuffled in train and val so nothing is
    left to learn."""
    import shutil

    from clinical_ml.outcomes.train import HyperParameters, train_all
    from clinical_ml.tasks.io import read_split, write_part

    hp = hp or HyperParameters(max_rounds=40, early_stopping_rounds=5, nthread=1)
    src = tree
    if shuffle:
        src = out.parent / f"{out.name}-tree"
        shutil.copytree(tree, src)
        rng = np.random.default_rng(0)
        for split in ("train", "val"):
            df = read_split(src / split, "ihm")
            df["y"] = rng.permutation(df["y"].to_numpy())
            for p in (src / split / "ihm").glob("part-*.parquet"):
                p.unlink()
            write_part(df, src / split, "ihm")
    train_all(src / "train", src / "val", out, list(tasks), ["xgboost"], hp)
    return out
