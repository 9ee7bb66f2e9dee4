"""XGBoost over several training instances with xgboost's collective (rabit).

Why: the task tree of a full cohort need not fit one instance; every host loads only its shard
of the training rows and the hosts build the same trees from all-reduced histograms.

- Hosts come from SageMaker's ``resourceconfig.json`` (``clinical_ml.distributed``); the
  tracker runs on the first sorted host, every worker (the first host's too) joins it at
  ``tracker_uri`` (``host[:port]``; default: the first host, port 9091). Ranks are the host
  indexes (``sortby="task"``), so the first host is rank 0 and writes the model.
- Shards: the part files ``<split>/<task>/part-*.parquet`` round-robin when there are at least
  as many as hosts (each host reads only its files, as S3 ``ShardedByS3Key`` would give it);
  otherwise every host reads each part and keeps the rows of its subjects (a stable hash of
  ``subject_id``: a patient's rows stay on one host). ``input_sharded=True``: the channel was
  already split by SageMaker (``ShardedByS3Key``); each host reads all the parts it was given.
- Validation: every host evaluates the full validation split. The collective sums the metric
  (logloss, mae) over the hosts, so each sees the same value, early-stops at the same round
  and keeps the same booster.
- A data problem on one host (empty shard, missing features) is all-reduced first and raised
  on every host, instead of leaving the others waiting for the tracker's timeout.
"""
from __future__ import annotations

import contextlib
import os
import socket
import time
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from clinical_ml.distributed import host_rank
from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from clinical_ml.outcomes import models as M
from clinical_ml.outcomes.batches import SplitParts, array_batches
from clinical_ml.outcomes.data import TASK_TYPES, feature_matrix, labels, train_features

log = get_logger(__name__)
TRACKER_PORT = 9091
TIMEOUT_S = 1800  # joining the group; data loading of the slowest host counts
# connection attempts to the tracker (xgboost waits longer before each): the other instances'
# containers may start before the first host's tracker listens
RETRIES = 30


def _parts(split_dir: str | os.PathLike, task: str) -> list[Path]:
    parts = sorted((Path(split_dir) / task).glob("part-*.parquet"))
    if not parts:
        raise DataError(f"{Path(split_dir) / task}: no part-*.parquet files")
    return parts


def subject_shard(subject_ids: np.ndarray, n: int) -> np.ndarray:
    """Shard index of each subject: a fixed 64-bit multiplicative hash (the same on every host
    and Python process, unlike ``hash``), so consecutive ids spread evenly."""
    h = (np.asarray(subject_ids).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(33)
    return (h % np.uint64(n)).astype(np.int64)


def load_shard(split_dir: str | os.PathLike, task: str, n: int, index: int,
               input_sharded: bool = False) -> tuple[pd.DataFrame, dict]:
    """This host's training rows of ``task`` and how they were chosen (``mode``, files read)."""
    parts = _parts(split_dir, task)
    if input_sharded:
        mine, mode = parts, "channel"
        frames = [pd.read_parquet(p) for p in mine]
    elif len(parts) >= n:
        mine, mode = parts[index::n], "parts"
        frames = [pd.read_parquet(p) for p in mine]
    else:
        mine, mode, frames = parts, "subject_hash", []
        for p in parts:
            df = pd.read_parquet(p)
            if "subject_id" not in df.columns:
                raise DataError(f"{p}: no subject_id column to shard {task} rows by")
            frames.append(df[subject_shard(df["subject_id"].to_numpy(), n) == index])
    df = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    return df, {"mode": mode, "index": index, "count": n, "parts": [p.name for p in mine], "rows": len(df)}


def tracker_address(resource_config: dict, tracker_uri: str | None = None) -> tuple[str, int]:
    """(host, port) of the tracker: ``tracker_uri`` or the first sorted host on TRACKER_PORT."""
    uri = tracker_uri or sorted(resource_config["hosts"])[0]
    host, _, port = uri.rpartition(":") if ":" in uri else (uri, "", "")
    return socket.gethostbyname(host), int(port or TRACKER_PORT)


@contextlib.contextmanager
def collective_group(resource_config: dict, tracker_uri: str | None = None,
                     timeout_s: int = TIMEOUT_S) -> Iterator[int]:
    """Join (or, on the first host, start and join) the hosts' communicator; yields the rank.
    Inside an open group it just yields the rank, so several trainings share one group."""
    from xgboost import collective
    from xgboost.tracker import RabitTracker

    if collective.is_distributed():
        yield collective.get_rank()
        return
    n, index = host_rank(resource_config)
    host, port = tracker_address(resource_config, tracker_uri)
    tracker = None
    if index == 0:
        tracker = RabitTracker(n_workers=n, host_ip=host, port=port, sortby="task", timeout=timeout_s)
        tracker.start()
    args = {"dmlc_communicator": "rabit", "dmlc_tracker_uri": host, "dmlc_tracker_port": port,
            "dmlc_task_id": f"{index:05d}", "dmlc_retry": RETRIES, "dmlc_timeout": timeout_s}
    try:
        with collective.CommunicatorContext(**args):
            yield collective.get_rank()
    finally:
        if tracker is not None:
            tracker.wait_for(timeout_s)
            tracker.free()


def _all_ok(problem: str | None, where: str) -> None:
    """Raise on every host when any host found a problem (a max all-reduce of a flag)."""
    from xgboost import collective

    flag = collective.allreduce(np.array([1 if problem else 0], dtype=np.int32), collective.Op.MAX)
    if problem:
        raise DataError(problem)
    if int(flag[0]):
        raise DataError(f"{where}: another host's data failed its checks (see that host's log)")


def _fit(task: str, train_dir: Path, val_dir: Path, params: dict, max_rounds: int,
         early_stopping_rounds: int, n: int, index: int, features: list[str] | None,
         input_sharded: bool) -> tuple[Any, dict]:
    import xgboost as xgb
    from xgboost import collective

    kind, where = TASK_TYPES[task], str(train_dir / task)
    problem, X_tr = None, None
    try:
        shard, info = load_shard(train_dir, task, n, index, input_sharded)
        if not len(shard):
            raise DataError(f"{where}: host {index} of {n} got no training rows; use fewer "
                            "hosts or more part files")
        feats = features or train_features(shard, where)
    except DataError as e:
        problem, feats, info = str(e), [], {}
    feats = collective.broadcast(feats, 0) if features is None else feats  # rank 0's order
    try:
        if problem is None:
            X_tr, y_tr = feature_matrix(shard, feats, where), labels(shard, task)
            if np.isnan(y_tr).any():
                raise DataError(f"{where}: missing {task} label values on host {index}")
    except DataError as e:
        problem = str(e)
    _all_ok(problem, where)
    va = SplitParts.open(val_dir, task)
    va.check_features(feats)
    total = int(collective.allreduce(np.array([len(X_tr)], dtype=np.int64), collective.Op.SUM)[0])
    # the quantile sketch is all-reduced over the hosts while the training matrix is built
    dtr, dva = M.quantile_matrices(kind, array_batches(X_tr), y_tr, va.batches(feats), va.labels(task),
                                   params, where=(where, va.where))
    del X_tr, shard
    history: dict = {}
    booster = xgb.train(params, dtr, num_boost_round=max_rounds, evals=[(dva, "val")],
                        early_stopping_rounds=early_stopping_rounds, evals_result=history,
                        verbose_eval=False)
    best = int(getattr(booster, "best_iteration", booster.num_boosted_rounds() - 1))
    curve = history.get("val", {}).get(params["eval_metric"], [])
    return booster[: best + 1], {
        "best_iteration": best, "rounds": best + 1,
        f"val_{params['eval_metric']}": float(curve[best]) if curve else None,
        "hosts": n, "rank": collective.get_rank(), "n_train": total, "n_train_shard": len(y_tr),
        "n_val": va.rows, "shard": info, "features": feats}


def train_xgboost_distributed(task: str, train_dir: str | os.PathLike, val_dir: str | os.PathLike,
                              params: dict, max_rounds: int, early_stopping_rounds: int,
                              resource_config: dict, tracker_uri: str | None = None,
                              features: list[str] | None = None, input_sharded: bool = False) -> tuple[Any, dict]:
    """(booster, info) of ``task`` trained over the hosts of ``resource_config``; every host
    returns the same booster. One host: the training step's fit (``fit_xgboost_batches`` on the
    Parquet parts) on all rows."""
    train_dir, val_dir = Path(train_dir), Path(val_dir)
    n, index = host_rank(resource_config)
    if n == 1:  # the training step's path: the Parquet parts in row batches
        tr, va = SplitParts.open(train_dir, task), SplitParts.open(val_dir, task)
        feats = features or tr.features()
        tr.check_features(feats)
        va.check_features(feats)
        booster, info = M.fit_xgboost_batches(TASK_TYPES[task], tr.batches(feats), tr.labels(task),
                                              va.batches(feats), va.labels(task), params, max_rounds,
                                              early_stopping_rounds, where=(tr.where, va.where))
        return booster, {**info, "hosts": 1, "rank": 0, "n_train": tr.rows, "n_train_shard": tr.rows,
                         "n_val": va.rows, "shard": {"mode": "all", "index": 0, "count": 1}, "features": feats}
    with collective_group(resource_config, tracker_uri):
        return _fit(task, train_dir, val_dir, params, max_rounds, early_stopping_rounds, n, index, features,
                    input_sharded)


def train_all_distributed(train_dir: str | os.PathLike, val_dir: str | os.PathLike,
                          model_dir: str | os.PathLike, tasks: list[str] | None, hp: Any,
                          resource_config: dict, tracker_uri: str | None = None,
                          input_sharded: bool = False) -> dict:
    """The XGBoost models of every task over the hosts, in one communicator group; the first
    host writes the outcome model directory (xgboost only: LR and GRU need all rows in one
    place). Returns ``{task: summary}`` on every host (``metadata.json["training"]`` on the
    first)."""
    from clinical_ml.outcomes import artifact
    from clinical_ml.outcomes.data import manifest_digest
    from clinical_ml.outcomes.metrics import auroc
    from clinical_ml.outcomes.train import resolve_tasks, xgb_params
    from clinical_ml.tasks.io import label_columns
    from clinical_ml.version import code_version

    train_dir, val_dir, model_dir = Path(train_dir), Path(val_dir), Path(model_dir)
    tasks = resolve_tasks(tasks, train_dir)
    _, index = host_rank(resource_config)
    summaries: dict[str, dict] = {}
    boosters: dict[str, Any] = {}
    features: list[str] | None = None
    with collective_group(resource_config, tracker_uri):
        for task in tasks:
            t0, kind = time.perf_counter(), TASK_TYPES[task]
            boosters[task], info = train_xgboost_distributed(
                task, train_dir, val_dir, xgb_params(kind, hp), hp.max_rounds, hp.early_stopping_rounds,
                resource_config, tracker_uri, features, input_sharded)
            features = info.pop("features")
            xgb_info = {k: info[k] for k in ("best_iteration", "rounds", "hosts", "shard", "n_train_shard")}
            xgb_info.update({k: v for k, v in info.items() if k.startswith("val_")})
            if kind == "binary":  # as train_task: the tuning objective reads val_auroc
                va = SplitParts.open(val_dir, task)
                va.check_features(features)
                p = M.predict_xgboost_batches(kind, boosters[task], va.batches(features), hp.nthread)
                xgb_info["val_auroc"] = auroc(va.labels(task), p)
            xgb_info["seconds"] = round(time.perf_counter() - t0, 3)
            summaries[task] = {"n_train": info["n_train"], "n_val": info["n_val"], "xgboost": xgb_info}
            log.info("%s xgboost over %d hosts: %d rounds, %d of %d rows here", task, info["hosts"],
                     info["rounds"], info["n_train_shard"], info["n_train"])
    if index != 0:
        return summaries
    model_dir.mkdir(parents=True, exist_ok=True)
    spec = {}
    for task, booster in boosters.items():
        artifact.save_xgboost(booster, model_dir, task)
        spec[task] = {"type": TASK_TYPES[task], "labels": label_columns(task),
                      **({"target": "hours", "xgboost_target_transform": M.LOS_TARGET_TRANSFORM}
                         if task == "los" else {})}
    artifact.write_spec(model_dir, features or [], [], spec)
    digest, manifests = manifest_digest([train_dir, val_dir])
    hyper = {k: v for k, v in vars(hp).items() if k != "extra"} | dict(getattr(hp, "extra", {}) or {})
    (model_dir / "metadata.json").unlink(missing_ok=True)  # written last: the directory is complete
    artifact.write_metadata(model_dir, tasks=tasks, models=["xgboost"], task_models={t: ["xgboost"] for t in tasks},
                            data_manifest_sha256=digest, data_manifests=manifests, code_version=code_version(),
                            hyperparameters=hyper, training=summaries,
                            distributed={"hosts": sorted(resource_config["hosts"])})
    return summaries
