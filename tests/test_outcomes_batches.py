"""XGBoost fed from the task Parquet parts in row batches (clinical_ml/outcomes/batches.py):
the rows and order of read_split, the missing-feature DataError, a booster as good as the
in-memory DMatrix one and deterministic, and no full frame for ``--models xgboost``."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xgboost as xgb

from clinical_ml import cli
from clinical_ml.io import DataError
from clinical_ml.outcomes import data as D
from clinical_ml.outcomes import models as M
from clinical_ml.outcomes import train as T
from clinical_ml.outcomes.batches import RowBatches, SplitParts, array_batches
from clinical_ml.outcomes.metrics import auroc
from clinical_ml.outcomes.train import HyperParameters, xgb_params
from clinical_ml.tasks.io import read_split
from outcomes_toy import make_task_tree

N_FEATURES = 8


def _frame(n: int, seed: int) -> pd.DataFrame:
    """Task rows with float32, float64 and nullable int features, NaNs, a learnable label."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES))
    y = (rng.random(n) < 1 / (1 + np.exp(-(X[:, 0] - X[:, 1] + 0.5 * X[:, 2])))).astype("int8")
    df = pd.DataFrame({"subject_id": np.arange(n, dtype="int64"), "y": y})
    for j in range(N_FEATURES):
        x = X[:, j].copy()
        x[rng.random(n) < 0.1] = np.nan
        df[f"f_v{j}"] = x.astype(np.float32) if j % 2 else x  # float32 and float64 columns
    ints = pd.array(np.round(X[:, 3] * 3), dtype="Int64")
    ints[rng.random(n) < 0.1] = pd.NA
    df["f_count"] = ints  # nulls in an integer column
    return df


def _write_parts(df: pd.DataFrame, folder: Path, cuts: list[int], row_group: int) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    bounds = [0, *cuts, len(df)]
    for k, (a, b) in enumerate(zip(bounds, bounds[1:])):
        pq.write_table(pa.Table.from_pandas(df.iloc[a:b], preserve_index=False),
                       folder / f"part-{k:05d}.parquet", row_group_size=row_group, compression="zstd")


@pytest.fixture(scope="module")
def split(tmp_path_factory) -> Path:
    """train/ihm: 3 parts of 13, 40, 30 rows in row groups of 7 (batches of 10 span both)."""
    root = tmp_path_factory.mktemp("split")
    _write_parts(_frame(83, seed=1), root / "train" / "ihm", [13, 53], row_group=7)
    return root / "train"


def test_batches_cover_every_row_once_in_read_split_order(split):
    src = SplitParts.open(split, "ihm")
    feats = src.features()
    frame = read_split(split, "ihm")
    assert feats == D.train_features(frame, "x") and src.rows == len(frame) == 83
    assert [pq.ParquetFile(p).metadata.num_row_groups for p in src.parts] == [2, 6, 5]
    batches = list(src.batches(feats, batch_rows=10)())
    assert [len(b) for b in batches] == [10] * 8 + [3]
    assert all(b.dtype == np.float32 and b.flags.c_contiguous for b in batches)
    np.testing.assert_array_equal(np.concatenate(batches), D.feature_matrix(frame, feats, "x"))
    np.testing.assert_array_equal(src.labels("ihm"), D.labels(frame, "ihm"))
    again = np.concatenate(list(src.batches(feats, batch_rows=10)()))  # a second pass: the same rows
    np.testing.assert_array_equal(again, np.concatenate(batches))
    X = D.feature_matrix(frame, feats, "x")
    assert all(np.array_equal(a, b, equal_nan=True)
               for a, b in zip(array_batches(X, 10)(), batches))


def test_a_part_without_a_column_reads_as_read_split(tmp_path):
    """A column only some parts have is NaN in the others (pd.concat), in first-seen order."""
    df = _frame(30, seed=2)
    folder = tmp_path / "train" / "decomp"
    _write_parts(df.drop(columns=["f_v5"]), folder, [10], row_group=4)  # parts 0, 1
    pq.write_table(pa.Table.from_pandas(df.iloc[:5], preserve_index=False), folder / "part-00002.parquet")
    frame = read_split(tmp_path / "train", "decomp")
    src = SplitParts.open(tmp_path / "train", "decomp")
    assert src.columns == list(frame.columns) and src.features()[-1] == "f_v5"
    got = np.concatenate(list(src.batches(src.features(), batch_rows=8)()))
    np.testing.assert_array_equal(got, D.feature_matrix(frame, src.features(), "x"))


def test_missing_feature_is_the_data_error_naming_the_folder(split, tmp_path):
    src = SplitParts.open(split, "ihm")
    with pytest.raises(DataError, match=r"train/ihm: 1 feature column\(s\) the model was trained on "
                                        r"are missing \(f_absent\)"):
        src.check_features([*src.features(), "f_absent"])
    # through training: the validation split lacks a column the training split has
    df = _frame(60, seed=3)
    _write_parts(df, tmp_path / "train" / "ihm", [], row_group=100)
    _write_parts(df.drop(columns=["f_v2"]), tmp_path / "val" / "ihm", [], row_group=100)
    with pytest.raises(DataError, match=r"val/ihm: 1 feature column\(s\) .* missing \(f_v2\)"):
        T.train_all(tmp_path / "train", tmp_path / "val", tmp_path / "m", ["ihm"], ["xgboost"],
                    HyperParameters(max_rounds=3, nthread=1))
    assert not (tmp_path / "m" / "metadata.json").exists()


def test_empty_or_unlabelled_split_fails_as_load_task(tmp_path):
    df = _frame(20, seed=4)
    _write_parts(df.iloc[:0], tmp_path / "a" / "ihm", [], row_group=10)
    with pytest.raises(DataError, match="a/ihm: task file has no rows"):
        SplitParts.open(tmp_path / "a", "ihm")
    _write_parts(df.drop(columns=["y"]), tmp_path / "b" / "ihm", [], row_group=10)
    with pytest.raises(DataError, match=r"b/ihm: label column\(s\) y missing"):
        SplitParts.open(tmp_path / "b", "ihm")
    with pytest.raises(DataError, match="c/ihm: no part-\\*.parquet files"):
        SplitParts.open(tmp_path / "c", "ihm")


@pytest.fixture(scope="module")
def larger(tmp_path_factory) -> Path:
    """20,000 train rows (4 parts) and 5,000 validation rows: more distinct values per feature
    than the quantile sketch keeps, so the streamed sketch is an approximation."""
    root = tmp_path_factory.mktemp("larger")
    _write_parts(_frame(20_000, seed=5), root / "train" / "decomp", [4_000, 9_000, 15_000], row_group=3_000)
    _write_parts(_frame(5_000, seed=6), root / "val" / "decomp", [], row_group=3_000)
    return root


def _streamed(root: Path, params: dict, batch_rows: int = 4_096):
    tr, va = SplitParts.open(root / "train", "decomp"), SplitParts.open(root / "val", "decomp")
    feats = tr.features()
    return M.fit_xgboost_batches("binary", tr.batches(feats, batch_rows), tr.labels("decomp"),
                                 va.batches(feats, batch_rows), va.labels("decomp"), params, 40, 40)


def test_streamed_booster_matches_dmatrix_and_is_deterministic(larger):
    params = xgb_params("binary", HyperParameters(seed=0, nthread=1))
    tr, va = read_split(larger / "train", "decomp"), read_split(larger / "val", "decomp")
    feats = D.train_features(tr, "train")
    X_tr, X_va = D.feature_matrix(tr, feats, "train"), D.feature_matrix(va, feats, "val")
    y_tr, y_va = D.labels(tr, "decomp"), D.labels(va, "decomp")
    ref, _ = M.train_xgboost(params, xgb.DMatrix(X_tr, label=y_tr, missing=np.nan),
                             xgb.DMatrix(X_va, label=y_va, missing=np.nan), 40, 40)
    booster, info = _streamed(larger, params)
    p_ref = M.predict_xgboost("binary", ref, X_va, 1)
    p = M.predict_xgboost("binary", booster, X_va, 1)
    gap = abs(auroc(y_va, p) - auroc(y_va, p_ref))
    print(f"AUROC DMatrix {auroc(y_va, p_ref):.5f}, streamed QuantileDMatrix {auroc(y_va, p):.5f}, "
          f"max |p difference| {np.abs(p - p_ref).max():.4f}")
    assert gap < 0.01 and np.abs(p - p_ref).max() < 0.05 and info["rounds"] > 10
    # batched predictions are the whole-matrix ones
    src_va = SplitParts.open(larger / "val", "decomp")
    np.testing.assert_array_equal(M.predict_xgboost_batches("binary", booster, src_va.batches(feats, 777), 1), p)
    again, _ = _streamed(larger, params)
    assert again.save_raw("json") == booster.save_raw("json")  # byte-identical
    # in-memory arrays through the same batches: the same booster
    same, _ = M.fit_xgboost_batches("binary", array_batches(X_tr, 4_096), y_tr, array_batches(X_va, 4_096),
                                    y_va, params, 40, 40)
    assert same.save_raw("json") == booster.save_raw("json")



def test_external_memory_is_the_same_booster_and_leaves_no_pages(larger, tmp_path, monkeypatch):
    """The training step's pages for large splits (HyperParameters.external_memory): same bytes."""
    import tempfile

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # where the page folder goes
    params = xgb_params("binary", HyperParameters(seed=0, nthread=1))
    tr, va = SplitParts.open(larger / "train", "decomp"), SplitParts.open(larger / "val", "decomp")
    feats = tr.features()
    args = (tr.batches(feats, 4_096), tr.labels("decomp"), va.batches(feats, 4_096), va.labels("decomp"), params, 40, 5)
    pages = []
    real = M.quantile_matrices
    monkeypatch.setattr(M, "quantile_matrices", lambda *a: pages.append(a[-1]) or real(*a))
    in_memory, info = M.fit_xgboost_batches("binary", *args)
    on_disk, info_disk = M.fit_xgboost_batches("binary", *args, external_memory=True)
    assert pages[0] is None and pages[1] is not None and pages[1].startswith(str(tmp_path))
    assert isinstance(info["rounds"], int) and info_disk["rounds"] == info["rounds"]
    assert on_disk.save_raw("json") == in_memory.save_raw("json")
    assert list(tmp_path.iterdir()) == []  # the page files went with the fit
    # the training step decides by size unless told
    assert HyperParameters().external_memory is None
    assert not M.external_memory_for(20_000, 205) and M.external_memory_for(100_000, 205)
    assert M.external_memory_for(20_000, 205, True) and not M.external_memory_for(10**7, 205, False)


def test_label_count_mismatch_is_an_error(larger):
    src = SplitParts.open(larger / "val", "decomp")
    X, y = src.batches(src.features()), src.labels("decomp")
    with pytest.raises(DataError, match=r"val: 5000\+ feature rows for 4999 labels"):
        xgb.QuantileDMatrix(RowBatches(X, y[:-1], "val"))
    with pytest.raises(DataError, match="val: 5000 feature rows for 5001 labels"):
        xgb.QuantileDMatrix(RowBatches(X, np.r_[y, 0.0], "val"))


def test_models_xgboost_never_reads_a_full_frame(tmp_path, monkeypatch):
    tree = make_task_tree(tmp_path / "t", n_stays=120, seed=3, timeseries=False)
    calls: list[str] = []

    def full_frame(split_dir, task):
        calls.append(task)
        raise AssertionError(f"full frame read for {task}")

    monkeypatch.setattr(T, "load_task", full_frame)
    monkeypatch.setattr(D, "read_split", full_frame)
    args = ["train-outcomes", "--train", str(tree / "train"), "--validation", str(tree / "val"),
            "--tasks", "ihm,decomp,pheno", "--max-rounds", "5", "--nthread", "1"]
    assert cli.main([*args, "--model-dir", str(tmp_path / "m"), "--models", "xgboost"]) == 0
    assert calls == []
    assert (tmp_path / "m" / "decomp" / "xgboost.json").is_file()
    # pages on disk asked for by the SageMaker-style hyperparameter: the same boosters
    assert cli.main([*args, "--model-dir", str(tmp_path / "m-ext"), "--models", "xgboost",
                     "--external_memory", "true"]) == 0
    for task in ("ihm", "decomp", "pheno"):
        assert (tmp_path / "m-ext" / task / "xgboost.json").read_bytes() == (tmp_path / "m" / task / "xgboost.json").read_bytes()
    monkeypatch.undo()  # the patched name is where the frames come from: LR asks for them
    seen: list[str] = []
    real = D.load_task
    monkeypatch.setattr(T, "load_task", lambda split_dir, task: seen.append(task) or real(split_dir, task))
    assert cli.main([*args, "--model-dir", str(tmp_path / "m2"), "--models", "xgboost,lr"]) == 0
    assert seen == ["ihm", "decomp", "pheno"]
