"""Per-admission note features (extract-notes output) as an optional extra input of the outcome
models: join, the with-notes XGBoost variants, and their paired comparison with the table model.

Why variants rather than new primary models: the endpoint receives table features only; a
note-aware model would need ExtractNotes at request time. So the served/registered models stay
table-only and, when note features are given, TuneOutcomes also fits ``with_notes/<task>/
xgboost.json`` (ihm, readmit) on ``f_*`` + ``note_*`` with the same hyperparameters, seed and
early stopping, and EvaluateOutcomes reports what the notes change (``evaluation.json``
``note_features``, never the gate).

Input (docs/contracts.md): ``DIR/<task>/note_features.parquet`` (+ ``vocabulary.json``,
``manifest.json``) for task in ``NOTE_TASKS``; either may be missing. The ihm set must come
from notes charted before the 48 h prediction time (extract-notes ``--cut-hours 48``), the
readmit set may use every note incl. the discharge summary (predicted at discharge).

Join: left join of the task rows on ``hadm_id``; an admission without a row in the file (no
note at all) gets 0 in every note column, so ``note_n == 0`` says "no notes". Zeros, not NaN:
the producer already writes zeros for an admission whose notes were all cut, so NaN would not
mean "no notes" consistently, and zeros keep a linear model usable without imputation.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xgboost as xgb

from clinical_ml.io import DataError, read_json, sha256_file, write_json
from clinical_ml.logs import get_logger
from clinical_ml.outcomes import metrics as mt
from clinical_ml.outcomes import models as M
from clinical_ml.outcomes.bootstrap import batched, bootstrap
from clinical_ml.outcomes.data import check_labels, feature_matrix, labels, load_task

log = get_logger(__name__)
NOTE_TASKS = ("ihm", "readmit")
FEATURES_FILE = "note_features.parquet"
VOCABULARY_FILE = "vocabulary.json"
MANIFEST_FILE = "manifest.json"
VARIANT_DIR = "with_notes"
SPEC_FILE = "spec.json"
PREFIX = "note_"
IHM_CUT_HOURS = 48.0
METRICS = ("auroc", "auprc")
FILL = "left join on hadm_id; an admission without a row (no notes) gets 0 in every note column (note_n = 0)"


def locate(root: str | os.PathLike | None) -> dict[str, Path]:
    """``{task: DIR/<task>}`` for the tasks whose note_features.parquet exists; ``{}`` when the
    folder is absent or holds none (then every step behaves as without note features)."""
    if not root or not Path(root).is_dir():
        return {}
    root = Path(root)
    found = {t: root / t for t in NOTE_TASKS if (root / t / FEATURES_FILE).is_file()}
    if not found and (root / FEATURES_FILE).is_file():
        raise DataError(f"{root / FEATURES_FILE}: note features must be per task, "
                        f"{root}/<task>/{FEATURES_FILE} for task in {', '.join(NOTE_TASKS)}; move "
                        "the extract-notes features/ output under ihm/ (built with --cut-hours 48) "
                        "or readmit/ (every note)")
    return found


def note_columns(df: pd.DataFrame) -> list[str]:
    """The ``note_*`` feature columns, in the file's order."""
    return [c for c in df.columns if str(c).startswith(PREFIX)]


def read_features(path: str | os.PathLike) -> pd.DataFrame:
    """One validated note feature file: unique non-null int64 ``hadm_id`` and numeric note_*."""
    path = Path(path)
    df = pd.read_parquet(path)
    fix = "rebuild it with `clinical-ml extract-notes --stage features` over every shard's part"
    if "hadm_id" not in df.columns:
        raise DataError(f"{path}: no hadm_id column; the outcome models join note features on "
                        f"hadm_id: {fix}")
    if df["hadm_id"].isna().any():
        raise DataError(f"{path}: {int(df['hadm_id'].isna().sum())} row(s) without hadm_id; {fix}")
    dup = int(df["hadm_id"].duplicated().sum())
    if dup:
        raise DataError(f"{path}: {dup} duplicate hadm_id row(s); one row per admission is expected "
                        f"(concatenated shard outputs?): {fix}")
    cols = note_columns(df)
    if not cols:
        raise DataError(f"{path}: no note_* feature columns; {fix}")
    bad = [c for c in cols if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise DataError(f"{path}: non-numeric note column(s) {', '.join(bad[:5])}; {fix}")
    out = df[["hadm_id", *cols]].copy()
    out["hadm_id"] = out["hadm_id"].astype("int64")
    return out


def source_info(task: str, task_dir: Path) -> dict:
    """Hashes and cut of one task's note features; refuses an ihm set built from notes after 48 h
    (the manifest says so), since those would leak the outcome into the comparison."""
    manifest_path = task_dir / MANIFEST_FILE
    manifest = read_json(manifest_path) if manifest_path.is_file() else {}
    vocab = task_dir / VOCABULARY_FILE
    cut = manifest.get("cut_hours")
    if task == "ihm" and manifest:
        late = cut is None or float(cut) > IHM_CUT_HOURS or manifest.get("allow_discharge_summary")
        if late:
            raise DataError(f"{manifest_path}: ihm note features must use only notes charted before "
                            f"the 48 h prediction time (cut_hours {cut}, allow_discharge_summary "
                            f"{manifest.get('allow_discharge_summary')}); rebuild with "
                            "`clinical-ml extract-notes ... --cut-hours 48`")
    return {"features_sha256": sha256_file(task_dir / FEATURES_FILE),
            "vocabulary_sha256": sha256_file(vocab) if vocab.is_file() else None,
            "cut_hours": cut}


def join(frame: pd.DataFrame, notes: pd.DataFrame, columns: list[str], where: str) -> pd.DataFrame:
    """``frame`` (same rows, same order) plus ``columns`` from ``notes`` by hadm_id, 0-filled."""
    if "hadm_id" not in frame.columns:
        raise DataError(f"{where}: no hadm_id column to join note features on")
    missing = [c for c in columns if c not in notes.columns]
    if missing:
        raise DataError(f"{where}: {len(missing)} note column(s) the model was trained on are missing "
                        f"({', '.join(missing[:5])}); build the note features with the training "
                        "vocabulary (extract-notes --vocabulary)")
    pos = pd.Index(notes["hadm_id"].to_numpy()).get_indexer(frame["hadm_id"].to_numpy(dtype="int64"))
    values = np.zeros((len(frame), len(columns)), dtype=np.float32)
    hit = pos >= 0
    values[hit] = notes[columns].to_numpy(dtype=np.float32)[pos[hit]]
    added = pd.DataFrame(values, columns=columns, index=frame.index)
    return pd.concat([frame.drop(columns=[c for c in columns if c in frame.columns]), added], axis=1)


def matched_rows(frame: pd.DataFrame, notes: pd.DataFrame) -> int:
    """Task rows whose admission has a row in the note file (the rest were zero-filled)."""
    return int(frame["hadm_id"].isin(notes["hadm_id"]).sum())


def _variant_matrix(df: pd.DataFrame, notes: pd.DataFrame, features: list[str], cols: list[str],
                    where: str) -> np.ndarray:
    return feature_matrix(join(df, notes, cols, where), features + cols, where)


def train_variants(sources: dict[str, Path], tasks: list[str], train_dir: Path, val_dir: Path,
                   stage: Path, features: list[str], params: dict, max_rounds: int,
                   early_stopping_rounds: int) -> dict:
    """Fit the with-notes XGBoost of each task in ``tasks`` that has note features; writes
    ``stage/with_notes/`` and returns the metadata block (``tasks``, ``skipped``)."""
    block: dict = {"fill": FILL, "tasks": {}, "skipped": {}}
    spec: dict = {"version": 1, "fill": FILL, "input": "feature_spec.features + note_columns", "tasks": {}}
    for task in NOTE_TASKS:
        if task not in tasks:
            continue
        if task not in sources:
            block["skipped"][task] = "no note features for this task"
            continue
        t0 = time.perf_counter()
        info = source_info(task, sources[task])
        notes = read_features(sources[task] / FEATURES_FILE)
        cols = note_columns(notes)
        tr, va = load_task(train_dir, task), load_task(val_dir, task)
        y_tr, y_va = labels(tr, task), labels(va, task)
        check_labels(task, y_tr, str(train_dir / task))
        check_labels(task, y_va, str(val_dir / task))
        X_tr = _variant_matrix(tr, notes, features, cols, str(train_dir / task))
        X_va = _variant_matrix(va, notes, features, cols, str(val_dir / task))
        booster, fit = M.fit_xgboost("binary", X_tr, y_tr, X_va, y_va, params, max_rounds,
                                     early_stopping_rounds)
        path = stage / VARIANT_DIR / task / "xgboost.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        booster.save_model(str(path))
        spec["tasks"][task] = {"note_columns": cols, **info}
        summary = {"n_train": len(tr), "n_val": len(va), "train_rows_with_notes": matched_rows(tr, notes),
                   "val_rows_with_notes": matched_rows(va, notes), "note_columns": len(cols),
                   "xgboost": {**fit, "seconds": round(time.perf_counter() - t0, 3)}, **info}
        block["tasks"][task] = summary
        log.info("%s with notes: %d note columns, %d/%d train rows with notes, xgboost %d rounds",
                 task, len(cols), summary["train_rows_with_notes"], len(tr), fit["rounds"])
    if spec["tasks"]:
        write_json(stage / VARIANT_DIR / SPEC_FILE, spec)
    return block


def variant_spec(model_dir: Path) -> dict:
    """``with_notes/spec.json`` of a model, ``{"tasks": {}}`` when it was trained without notes."""
    meta = read_json(model_dir / "metadata.json")
    path = model_dir / VARIANT_DIR / SPEC_FILE
    if not meta.get("note_features") or not path.is_file():
        return {"tasks": {}}
    return read_json(path)


def predict_variant(model, task: str, df: pd.DataFrame, notes: pd.DataFrame, where: str) -> np.ndarray:
    """Probabilities of a model's with-notes variant for ``task`` on task rows ``df``."""
    spec = variant_spec(model.dir)["tasks"][task]
    booster = xgb.Booster()
    booster.load_model(str(model.dir / VARIANT_DIR / task / "xgboost.json"))
    X = _variant_matrix(df, notes, list(model.features), list(spec["note_columns"]), where)
    return M.predict_xgboost("binary", booster, X, model.nthread)


def paired_stats(y: np.ndarray, without: np.ndarray, with_notes: np.ndarray) -> dict:
    """Bootstrap statistics of both models and their difference, to run on the same resamples
    (``batched``: each takes a whole chunk of resamples)."""
    r0, r1 = mt.RankedScores(y, without), mt.RankedScores(y, with_notes)
    fns = {"auroc": mt.auroc, "auprc": mt.auprc}
    stats: dict = {}
    for m in METRICS:
        f = fns[m]
        stats[f"{m}.without"] = batched(lambda w, f=f: f(None, r0, w))
        stats[f"{m}.with"] = batched(lambda w, f=f: f(None, r1, w))
        stats[f"{m}.difference"] = batched(lambda w, f=f: f(None, r1, w) - f(None, r0, w))
    return stats


def compare_task(model, task: str, test_dir: Path, task_dir: Path, resamples: int,
                 seed: int) -> tuple[dict, dict]:
    """(``note_features.tasks.<task>`` entry, {"y", "without", "with"}) on the same test rows."""
    where = str(test_dir / task)
    info = source_info(task, task_dir)
    trained = variant_spec(model.dir)["tasks"][task]
    notes = read_features(task_dir / FEATURES_FILE)
    df = load_task(test_dir, task)
    y = labels(df, task)
    check_labels(task, y, where)
    p0 = np.asarray(model.predict(task, df, "xgboost"), dtype=float)
    p1 = predict_variant(model, task, df, notes, where)
    if not np.isfinite(p1).all():
        raise DataError(f"{task}/with_notes: {int((~np.isfinite(p1)).sum())} non-finite predictions")
    res = bootstrap(paired_stats(y, p0, p1), len(y), resamples, seed)
    entry: dict = {"n": int(len(y)), "prevalence": float(y.mean()), "rows_with_notes": matched_rows(df, notes),
                   "note_columns": len(trained["note_columns"]), **info,
                   "trained_vocabulary_sha256": trained.get("vocabulary_sha256")}
    if info["vocabulary_sha256"] != trained.get("vocabulary_sha256"):
        log.warning("%s: note vocabulary differs from the one the variant was trained with", task)
    for key, value in res.items():
        metric, which = key.split(".")
        entry.setdefault(metric, {})[which] = value
    d = entry["auroc"]["difference"]
    entry["ci_contains_zero"] = (d.get("ci_low", math.nan) <= 0 <= d.get("ci_high", math.nan)
                                 if d.get("value") is not None else None)
    return entry, {"y": y, "without": p0, "with": p1}


def evaluate_variants(model, test_dir: str | os.PathLike, sources: dict[str, Path], tasks: list[str],
                      resamples: int, seed: int) -> tuple[dict, dict]:
    """The ``note_features`` block of evaluation.json for the evaluated ``tasks``, and the
    predictions for the report. A task without a variant or without note features is skipped
    with the reason."""
    test_dir = Path(test_dir)
    trained = variant_spec(model.dir)["tasks"]
    block: dict = {"model": "xgboost", "fill": FILL, "metrics": list(METRICS),
                   "difference": "with minus without, paired on the same bootstrap resamples",
                   "tasks": {}, "skipped": {}}
    preds: dict = {}
    for task in [t for t in NOTE_TASKS if t in tasks]:
        if task not in trained:
            block["skipped"][task] = "the model has no with_notes variant (trained without note features)"
        elif task not in sources:
            block["skipped"][task] = "no note features for this task in --note-features"
        else:
            block["tasks"][task], preds[task] = compare_task(model, task, test_dir, sources[task],
                                                             resamples, seed)
            a = block["tasks"][task]["auroc"]
            log.info("%s AUROC without notes %.4f, with %.4f, difference %s", task,
                     a["without"].get("value") or math.nan, a["with"].get("value") or math.nan,
                     _fmt_ci(a["difference"]))
    for task, why in block["skipped"].items():
        log.info("%s: note features not compared: %s", task, why)
    return block, preds


def _fmt_ci(res: dict) -> str:
    if res.get("value") is None:
        return "undefined"
    ci = f" (95% CI {res['ci_low']:+.4f} to {res['ci_high']:+.4f})" if "ci_low" in res else ""
    return f"{res['value']:+.4f}{ci}"
