"""Train every requested (task, model) pair and write one outcome model directory.

The directory is built in a staging folder inside ``model_dir`` and moved into place at the
end, with ``metadata.json`` written last: a directory with metadata.json is complete.
"""
from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from clinical_ml.io import DataError, read_json
from clinical_ml.logs import get_logger
from clinical_ml.outcomes import artifact
from clinical_ml.outcomes import models as M
from clinical_ml.outcomes import note_features as nf
from clinical_ml.outcomes.metrics import auroc
from clinical_ml.outcomes.batches import SplitParts
from clinical_ml.outcomes.data import (TASK_TYPES, check_labels, feature_matrix, load_task,
                                       manifest_digest, present_tasks)
from clinical_ml.outcomes.sequences import series_channels
from clinical_ml.tasks.io import TIMESERIES, label_columns, read_timeseries
from clinical_ml.version import code_version

log = get_logger(__name__)
MODELS = ("xgboost", "lr", "gru")
GRU_TASKS = ("ihm", "decomp")


@dataclass
class HyperParameters:
    seed: int = 0
    nthread: int = 2
    max_rounds: int = 500
    early_stopping_rounds: int = 20
    learning_rate: float = 0.1
    max_depth: int = 4
    subsample: float = 0.8
    colsample_bytree: float = 0.8
    min_child_weight: float = 1.0
    reg_lambda: float = 1.0   # XGBoost ``lambda`` (L2 on leaf weights)
    reg_alpha: float = 0.0    # XGBoost ``alpha`` (L1 on leaf weights)
    lr_c: float | None = None  # None: mimic3-benchmarks' C per task (models.LR_C)
    gru_epochs: int = 3
    gru_hidden: int = 32
    gru_batch_size: int = 64
    gru_lr: float = 1e-3
    gru_device: str | None = None  # None: cuda if available else cpu
    # XGBoost's quantised rows in disk pages (ExtMemQuantileDMatrix): the same booster, a peak
    # RSS flat in the rows; False: in memory; None: by size (models.external_memory_for)
    external_memory: bool | None = None
    extra: dict = field(default_factory=dict)


def resolve_tasks(requested: list[str] | None, train_dir: Path) -> list[str]:
    available = present_tasks(train_dir)
    if not requested:
        if not available:
            raise DataError(f"{train_dir}: no task folders with part-*.parquet files; pass the "
                            "train split of a build-tasks output")
        return available
    unknown = [t for t in requested if t not in TASK_TYPES]
    if unknown:
        raise DataError(f"unknown task(s) {', '.join(unknown)}; expected {', '.join(TASK_TYPES)}")
    missing = [t for t in requested if t not in available]
    if missing:
        raise DataError(f"{train_dir}: no data for requested task(s) {', '.join(missing)}")
    return list(requested)


def xgb_params(kind: str, hp: HyperParameters) -> dict:
    """XGBoost parameters from the hyperparameters (one place, so the with-notes variants
    are fitted exactly like the primary model)."""
    return M.xgb_params(kind, seed=hp.seed, nthread=hp.nthread, learning_rate=hp.learning_rate,
                        max_depth=hp.max_depth, subsample=hp.subsample,
                        colsample_bytree=hp.colsample_bytree, min_child_weight=hp.min_child_weight,
                        reg_lambda=hp.reg_lambda, reg_alpha=hp.reg_alpha)


def _has_timeseries(split: Path) -> bool:
    return any((split / TIMESERIES).glob("part-*.parquet"))


def train_task(task: str, train_dir: Path, val_dir: Path, stage: Path, models: list[str],
               hp: HyperParameters, ts_cache: dict, features: list[str] | None) -> tuple[list[str], dict, list[str]]:
    """Fit the requested models of one task into ``stage/<task>/``; returns (features, summary, saved).

    XGBoost reads the Parquet parts in row batches (``batches``); the whole frame is read only
    for the models that need it (LR, the GRU), after XGBoost is done.
    """
    kind = TASK_TYPES[task]
    src_tr, src_va = SplitParts.open(train_dir, task), SplitParts.open(val_dir, task)
    feats = features or src_tr.features()
    y_tr, y_va = src_tr.labels(task), src_va.labels(task)
    check_labels(task, y_tr, src_tr.where)
    check_labels(task, y_va, src_va.where)
    src_tr.check_features(feats)
    src_va.check_features(feats)
    summary: dict = {"n_train": src_tr.rows, "n_val": src_va.rows}
    if kind == "binary":
        summary["train_prevalence"] = float(y_tr.mean())
    saved: list[str] = []
    if "xgboost" in models:
        t0 = time.perf_counter()
        booster, info = fit_split_xgboost(kind, src_tr, y_tr, src_va, y_va, feats, xgb_params(kind, hp),
                                          hp.max_rounds, hp.early_stopping_rounds,
                                          M.external_memory_for(src_tr.rows, len(feats), hp.external_memory))
        artifact.save_xgboost(booster, stage, task)
        summary["xgboost"] = {**info, "seconds": round(time.perf_counter() - t0, 3)}
        log.info("%s xgboost: %d rounds in %.1f s", task, info["rounds"], summary["xgboost"]["seconds"])
        saved.append("xgboost")
    gru = "gru" in models and task in GRU_TASKS
    gru_data = gru and _has_timeseries(train_dir) and _has_timeseries(val_dir)
    # the frames only for the models that need them: LR (train), the GRU (train and validation)
    tr = load_task(train_dir, task) if "lr" in models or gru_data else None
    va = load_task(val_dir, task) if gru_data else None
    if "lr" in models:
        t0 = time.perf_counter()
        model = M.fit_lr(task, kind, feature_matrix(tr, feats, str(train_dir / task)), y_tr, hp.lr_c)
        artifact.save_lr(model, stage, task)
        summary["lr"] = {"C": None if kind == "regression" else (hp.lr_c or M.LR_C.get(task, 1.0)),
                         "seconds": round(time.perf_counter() - t0, 3)}
        saved.append("lr")
    if gru:
        if not gru_data:
            summary["gru"] = {"skipped": "no timeseries/ folder in the train or validation split"}
            log.warning("gru for %s skipped: no timeseries in the splits", task)
        else:
            for split in (train_dir, val_dir):
                if split not in ts_cache:
                    ts_cache[split] = read_timeseries(split)
            from clinical_ml.outcomes import gru as gru_mod  # torch only when a GRU is trained

            t0 = time.perf_counter()
            bundle, info = gru_mod.fit(tr, ts_cache[train_dir], va, ts_cache[val_dir], task,
                                       seed=hp.seed, epochs=hp.gru_epochs, hidden=hp.gru_hidden,
                                       batch_size=hp.gru_batch_size, lr=hp.gru_lr,
                                       threads=hp.nthread, device=hp.gru_device)
            artifact.save_gru(bundle, stage, task)
            summary["gru"] = {**info, "seconds": round(time.perf_counter() - t0, 3)}
            log.info("%s gru: best epoch %d in %.1f s on %s", task, info["best_epoch"],
                     summary["gru"]["seconds"], info["device"])
            saved.append("gru")
    return feats, summary, saved


def fit_split_xgboost(kind: str, src_tr: SplitParts, y_tr, src_va: SplitParts, y_va, features: list[str],
                      params: dict, max_rounds: int, early_stopping_rounds: int,
                      external_memory: bool = False) -> tuple:
    """XGBoost fed from the splits' Parquet parts in row batches, and (binary tasks) its
    validation AUROC from batched predictions: (booster, info)."""
    booster, info = M.fit_xgboost_batches(kind, src_tr.batches(features), y_tr, src_va.batches(features),
                                          y_va, params, max_rounds, early_stopping_rounds,
                                          where=(src_tr.where, src_va.where), external_memory=external_memory)
    if kind == "binary":  # the tuning objective (validation:ihm_auroc) and its siblings
        info["val_auroc"] = auroc(y_va, M.predict_xgboost_batches(kind, booster, src_va.batches(features),
                                                                  nthread=params["nthread"]))
    return booster, info


def train_all(train_dir: str | os.PathLike, val_dir: str | os.PathLike, model_dir: str | os.PathLike,
              tasks: list[str] | None = None, models: list[str] | None = None,
              hp: HyperParameters | None = None,
              note_features: dict[str, Path] | None = None) -> dict:
    """Train and write the model directory; returns the metadata written.

    ``note_features`` (``note_features.locate(DIR)``, ``{task: folder}``): also fit the
    with-notes XGBoost variants of ihm/readmit into ``with_notes/`` (not served); empty or
    None: the model directory is exactly what it is without note features.
    """
    train_dir, val_dir, model_dir = Path(train_dir), Path(val_dir), Path(model_dir)
    hp = hp or HyperParameters()
    models = list(models or MODELS)
    bad = [m for m in models if m not in MODELS]
    if bad:
        raise DataError(f"unknown model(s) {', '.join(bad)}; expected {', '.join(MODELS)}")
    tasks = resolve_tasks(tasks, train_dir)
    model_dir.mkdir(parents=True, exist_ok=True)
    stage = model_dir / f".staging-{os.getpid()}"
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir()
    try:
        features: list[str] | None = None
        spec_tasks, summaries, task_models = {}, {}, {}
        ts_cache: dict = {}
        for task in tasks:
            log.info("training %s: models %s", task, ",".join(models))
            features, summaries[task], task_models[task] = train_task(
                task, train_dir, val_dir, stage, models, hp, ts_cache, features)
            spec_tasks[task] = {"type": TASK_TYPES[task], "labels": label_columns(task),
                                **({"target": "hours", "xgboost_target_transform": M.LOS_TARGET_TRANSFORM}
                                   if task == "los" else {})}
        notes_block = None
        if note_features:
            notes_block = _note_variants(note_features, tasks, models, train_dir, val_dir, stage,
                                         features or [], hp)
        channels = series_channels(ts_cache[train_dir]) if train_dir in ts_cache else []
        artifact.write_spec(stage, features or [], channels, spec_tasks)
        digest, manifests = manifest_digest([train_dir, val_dir])
        if digest is None:
            log.warning("no manifest-*.json in the splits: data_manifest_sha256 is null")
        meta = {"tasks": tasks, "models": models, "task_models": task_models,
                "data_manifest_sha256": digest, "data_manifests": manifests,
                "code_version": code_version(),
                "hyperparameters": {k: v for k, v in asdict(hp).items() if k != "extra"} | hp.extra,
                "training": summaries, **({"note_features": notes_block} if notes_block else {})}
        for child in sorted(stage.iterdir()):
            dest = model_dir / child.name
            if dest.is_dir():
                shutil.rmtree(dest)
            os.replace(child, dest)
        if not (notes_block and notes_block["tasks"]):
            shutil.rmtree(model_dir / nf.VARIANT_DIR, ignore_errors=True)  # a previous run's
        (model_dir / "metadata.json").unlink(missing_ok=True)
        artifact.write_metadata(model_dir, **meta)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return read_json(model_dir / "metadata.json")


def _note_variants(sources: dict[str, Path], tasks: list[str], models: list[str], train_dir: Path,
                   val_dir: Path, stage: Path, features: list[str], hp: HyperParameters) -> dict:
    """The with-notes variants (metadata ``note_features``); they need the XGBoost model."""
    if "xgboost" not in models:
        log.warning("note features given but xgboost not in --models: no with-notes variants")
        return {"fill": nf.FILL, "tasks": {}, "skipped": {t: "xgboost not trained" for t in nf.NOTE_TASKS
                                                          if t in tasks}}
    return nf.train_variants(sources, tasks, train_dir, val_dir, stage, features,
                             xgb_params("binary", hp), hp.max_rounds, hp.early_stopping_rounds)
