"""XGBoost over 2 worker processes (issue #17, distributed training): a rabit tracker on
127.0.0.1, each worker reading only its part files, against one worker on all rows."""
from __future__ import annotations

import multiprocessing as mp
import socket
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from clinical_ml.io import DataError
from clinical_ml.outcomes import load
from clinical_ml.outcomes.data import feature_matrix, labels
from clinical_ml.outcomes.distributed import (load_shard, subject_shard, train_all_distributed,
                                              train_xgboost_distributed)
from clinical_ml.outcomes.metrics import auroc
from clinical_ml.outcomes.train import HyperParameters, xgb_params
from clinical_ml.tasks.io import read_split, write_part
from outcomes_toy import make_task_tree

ONE = {"current_host": "algo-1", "hosts": ["algo-1"]}
PARTS = 4
# No row/column subsampling: with it each worker draws its own rows, so the two runs are two
# random models (measured up to 0.013 AUROC apart on 2,000 stays) and the gap would measure
# the RNG, not the distribution. Without it the trees match (measured gap 0.0000).
HP = HyperParameters(seed=0, nthread=1, max_rounds=300, early_stopping_rounds=20, subsample=1.0,
                     colsample_bytree=1.0)


def _two_hosts(i: int) -> dict:
    return {"current_host": f"algo-{i + 1}", "hosts": ["algo-2", "algo-1"]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_workers(fn, *args, tmp: Path, **kw) -> list:
    """``fn(*args, model_dir=, resource_config=, tracker_uri=)`` of host i in 2 spawned
    processes (host 2 first: it waits for the tracker that host 1 starts); results by host."""
    uri = f"127.0.0.1:{_free_port()}"
    with pytest.MonkeyPatch.context() as env:
        env.setenv("OMP_NUM_THREADS", "1")  # before the workers start: they inherit it
        with ProcessPoolExecutor(2, mp_context=mp.get_context("spawn")) as pool:
            futures = [pool.submit(fn, *args, **kw, model_dir=tmp / f"model-{i}", resource_config=_two_hosts(i),
                                   tracker_uri=uri) for i in (1, 0)]
            return [f.result(timeout=180) for f in futures][::-1]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """3,000 synthetic stays; train/ihm rewritten as 4 part files (each worker reads 2)."""
    root = make_task_tree(tmp_path_factory.mktemp("tasks"), n_stays=3000, seed=1, timeseries=False)
    df = read_split(root / "train", "ihm")
    for p in (root / "train" / "ihm").glob("part-*.parquet"):
        p.unlink()
    for k in range(PARTS):
        write_part(df.iloc[k::PARTS], root / "train", "ihm", k, PARTS)
    return root


@pytest.fixture(scope="module")
def runs(tree, tmp_path_factory):
    one = train_xgboost_distributed("ihm", tree / "train", tree / "val", xgb_params("binary", HP),
                                    HP.max_rounds, HP.early_stopping_rounds, ONE)
    tmp = tmp_path_factory.mktemp("dist")
    two = _run_workers(train_all_distributed, tree / "train", tree / "val", tasks=["ihm"], hp=HP, tmp=tmp)
    return one, two, tmp


def test_each_worker_reads_only_its_shard(runs, tree):
    (_, one), two, _ = runs
    shards = [s["ihm"]["xgboost"]["shard"] for s in two]
    assert [s["mode"] for s in shards] == ["parts", "parts"]
    assert sorted(shards[0]["parts"] + shards[1]["parts"]) == [f"part-{k:05d}.parquet" for k in range(PARTS)]
    assert not set(shards[0]["parts"]) & set(shards[1]["parts"])
    n = [s["ihm"]["xgboost"]["n_train_shard"] for s in two]
    assert all(k > 0 for k in n) and sum(n) == one["n_train"] == len(read_split(tree / "train", "ihm"))
    assert two[0]["ihm"]["n_train"] == two[1]["ihm"]["n_train"] == one["n_train"]


def test_same_rounds_and_auroc_as_one_worker(runs, tree):
    (booster, one), two, tmp = runs
    rounds = [s["ihm"]["xgboost"]["rounds"] for s in two]
    assert rounds[0] == rounds[1]  # one early-stopping decision for all workers
    assert (tmp / "model-0" / "metadata.json").is_file() and not (tmp / "model-1").exists()
    model = load(tmp / "model-0")  # the first host's model directory, as served
    assert model.metadata["training"]["ihm"]["xgboost"]["rounds"] == rounds[0]
    for split in ("val", "test"):
        df = read_split(tree / split, "ihm")
        y = labels(df, "ihm")
        a_one = auroc(y, booster.predict(xgb.DMatrix(feature_matrix(df, one["features"], split))))
        a_two = auroc(y, model.predict("ihm", df))
        print(f"{split}: AUROC one worker {a_one:.4f}, two workers {a_two:.4f}, {rounds[0]} vs {one['rounds']} rounds")
        assert abs(a_one - a_two) < 0.01
    assert abs(two[0]["ihm"]["xgboost"]["val_auroc"] - two[1]["ihm"]["xgboost"]["val_auroc"]) < 1e-12


def test_subject_hash_shards_when_fewer_parts_than_hosts(tree):
    """val/ihm has one part: each host keeps the rows of its subjects; disjoint, complete."""
    full = read_split(tree / "val", "ihm")
    shards = [load_shard(tree / "val", "ihm", 2, i) for i in range(2)]
    assert [info["mode"] for _, info in shards] == ["subject_hash", "subject_hash"]
    ids = [set(df["subject_id"]) for df, _ in shards]
    assert not ids[0] & ids[1] and ids[0] | ids[1] == set(full["subject_id"])
    assert sum(len(df) for df, _ in shards) == len(full)
    assert 0.4 < len(shards[0][0]) / len(full) < 0.6
    df, info = load_shard(tree / "val", "ihm", 2, 1, input_sharded=True)  # SageMaker split the channel
    assert info["mode"] == "channel" and len(df) == len(full)
    ids = np.arange(1, 11)
    assert subject_shard(ids, 3).tolist() == subject_shard(ids, 3).tolist()  # pure function of the id


def _raise_on_bad_shard(train: Path, val: Path, model_dir: Path, resource_config: dict, tracker_uri: str) -> str:
    try:
        train_xgboost_distributed("ihm", train, val, xgb_params("binary", replace(HP, max_rounds=5)),
                                  5, 2, resource_config, tracker_uri)
    except DataError as e:
        return str(e)
    return "no error"


def test_a_bad_shard_fails_every_worker(tree, tmp_path):
    """Host 2's only part file lacks the feature columns: both workers raise, none hangs."""
    train = tmp_path / "train"
    df = read_split(tree / "train", "ihm")
    write_part(df.iloc[:500], train, "ihm", 0, 2)
    write_part(pd.DataFrame({"subject_id": df["subject_id"][500:], "y": df["y"][500:]}), train, "ihm", 1, 2)
    errors = _run_workers(_raise_on_bad_shard, train, tree / "val", tmp=tmp_path)
    assert "feature column" in errors[1] and "another host" in errors[0]
