"""Bad splits fail with a clear DataError (never NaN metrics); scripts run as plain files."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from clinical_ml import cli
from clinical_ml.io import DataError, read_json
from clinical_ml.outcomes import load
from clinical_ml.outcomes.evaluation import evaluate
from clinical_ml.outcomes.train import HyperParameters, train_all
from clinical_ml.tasks.io import read_split, write_part
from outcomes_toy import make_task_tree

REPO = Path(__file__).resolve().parents[1]
HP = HyperParameters(max_rounds=5, early_stopping_rounds=2, nthread=1)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_task_tree(tmp_path_factory.mktemp("tasks"), n_stays=120, seed=2, timeseries=False)


@pytest.fixture(scope="module")
def model_dir(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    train_all(tree / "train", tree / "val", out, ["ihm", "los"], ["xgboost", "lr", "gru"], HP)
    return out


def _rewrite(tree: Path, split: str, task: str, tmp: Path, edit) -> Path:
    """A copy of ``tree`` whose ``split/task`` part is replaced by ``edit(df)``."""
    import shutil

    dst = tmp / "tree"
    shutil.copytree(tree, dst)
    df = edit(read_split(dst / split, task))
    for p in (dst / split / task).glob("part-*.parquet"):
        p.unlink()
    write_part(df, dst / split, task)
    return dst


def test_gru_without_timeseries_is_recorded_not_faked(model_dir):
    meta = read_json(model_dir / "metadata.json")
    assert meta["training"]["ihm"]["gru"] == {"skipped": "no timeseries/ folder in the train or validation split"}
    assert not (model_dir / "ihm" / "gru.pt").exists()


def test_one_class_train_split_is_a_data_error(tree, tmp_path):
    bad = _rewrite(tree, "train", "ihm", tmp_path, lambda df: df.assign(y=0))
    with pytest.raises(DataError, match=r"train/ihm: all \d+ ihm labels are negative \(one class\)"):
        train_all(bad / "train", bad / "val", tmp_path / "m", ["ihm"], ["xgboost"], HP)
    assert not (tmp_path / "m" / "metadata.json").exists()  # nothing half-written


def test_empty_split_is_a_data_error_via_cli(tree, tmp_path, capsys):
    bad = _rewrite(tree, "val", "ihm", tmp_path, lambda df: df.iloc[:0])
    rc = cli.main(["train-outcomes", "--train", str(bad / "train"), "--validation", str(bad / "val"),
                   "--model-dir", str(tmp_path / "m"), "--tasks", "ihm", "--models", "xgboost"])
    assert rc == 2
    assert "val/ihm: task file has no rows" in capsys.readouterr().err


def test_one_class_test_split_fails_evaluation(tree, model_dir, tmp_path):
    bad = _rewrite(tree, "test", "ihm", tmp_path, lambda df: df.assign(y=1))
    with pytest.raises(DataError, match="one class"):
        evaluate(load(model_dir), bad / "test", resamples=10)


def test_constant_los_is_a_data_error(tree, tmp_path):
    bad = _rewrite(tree, "train", "los", tmp_path, lambda df: df.assign(y=48.0))
    with pytest.raises(DataError, match="LOS targets are equal"):
        train_all(bad / "train", bad / "val", tmp_path / "m", ["los"], ["xgboost"], HP)


def test_missing_inputs_name_what_is_wrong(tree, model_dir, tmp_path):
    model = load(model_dir)
    df = read_split(tree / "test", "ihm")
    with pytest.raises(DataError, match=r"feature column\(s\) the model was trained on are missing"):
        model.predict("ihm", df.drop(columns=["f_var00_mean"]))
    with pytest.raises(DataError, match="no 'gru' model for task 'ihm'"):
        model.predict("ihm", df, "gru", timeseries=pd.DataFrame())
    with pytest.raises(DataError, match="no model for task 'pheno'"):
        model.predict("pheno", df)
    with pytest.raises(DataError, match="no test data for any trained task"):
        evaluate(model, tmp_path, resamples=5)
    with pytest.raises(DataError, match=r"unknown task\(s\) pheno2"):
        train_all(tree / "train", tree / "val", tmp_path / "m", ["ihm", "pheno2"], None, HP)
    import shutil

    shutil.copytree(tree / "train", tmp_path / "train")
    shutil.rmtree(tmp_path / "train" / "pheno")
    with pytest.raises(DataError, match=r"no data for requested task\(s\) pheno"):
        train_all(tmp_path / "train", tree / "val", tmp_path / "m", ["ihm", "pheno"], None, HP)


def test_step_scripts_run_as_files(tree, tmp_path):
    """The same scripts run as plain files (how a container or the local runner starts them)."""
    model = tmp_path / "m"
    r = subprocess.run([sys.executable, "training/train_outcomes.py", "--train", str(tree / "train"),
                        "--validation", str(tree / "val"), "--model-dir", str(model), "--tasks", "readmit",
                        "--models", "xgboost", "--max_rounds", "5", "--nthread", "1"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([sys.executable, "processing/evaluate_outcomes.py", "--model", str(model),
                        "--test", str(tree / "test"), "--output", str(tmp_path / "e"), "--bootstrap", "10"],
                       cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert set(read_json(tmp_path / "e" / "evaluation.json")["gate"]) == {"readmit_auroc"}


def test_gru_without_test_timeseries_is_reported_as_skipped(tmp_path):
    tree = make_task_tree(tmp_path / "t", n_stays=80, seed=4)
    train_all(tree / "train", tree / "val", tmp_path / "m", ["ihm"], ["xgboost", "gru"],
              HyperParameters(max_rounds=3, early_stopping_rounds=2, nthread=1, gru_epochs=1))
    import shutil

    shutil.rmtree(tree / "test" / "timeseries")
    doc, _ = evaluate(load(tmp_path / "m"), tree / "test", resamples=5)
    assert doc["tasks"]["ihm"]["skipped_models"] == {"gru": "no timeseries/ folder in the test split"}
    assert "gru" not in doc["tasks"]["ihm"] and "comparisons" not in doc["tasks"]["ihm"]
