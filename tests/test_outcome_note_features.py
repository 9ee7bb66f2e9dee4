"""Note features as an extra input of TuneOutcomes / EvaluateOutcomes (issue 15, item 3).

A tiny task tree (outcomes_toy) plus tiny note feature files written here: readmit gets a note
indicator that restates the label (so a with-notes model must gain AUROC), ihm pure noise.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinical_ml import cli
from clinical_ml.io import DataError, read_json
from clinical_ml.outcomes import note_features as nf
from clinical_ml.tasks.io import read_split
from outcomes_toy import make_task_tree

FAST = ["--max-rounds", "30", "--early-stopping-rounds", "5", "--seed", "3", "--nthread", "1",
        "--tasks", "ihm,readmit", "--models", "xgboost,lr"]
NO_NOTES = "/nonexistent/note_features"


def write_note_features(root: Path, tree: Path, task: str, signal: bool, seed: int = 0,
                        coverage: float = 0.8) -> Path:
    """``root/<task>/note_features.parquet`` (+ vocabulary, manifest) over every split's
    admissions, ``coverage`` of them with a row. ``signal``: ``note_problem_sepsis`` is the
    label with 10% flipped; otherwise every column is noise."""
    rng = np.random.default_rng(seed)
    rows = pd.concat([read_split(tree / s, task)[["hadm_id", "subject_id", "y"]] for s in ("train", "val", "test")])
    rows = rows.drop_duplicates("hadm_id").reset_index(drop=True)
    rows = rows[rng.random(len(rows)) < coverage].reset_index(drop=True)
    n = len(rows)
    flip = rng.random(n) < 0.1
    sepsis = np.where(flip, 1 - rows["y"], rows["y"]) if signal else rng.integers(0, 2, n)
    df = pd.DataFrame({"hadm_id": rows["hadm_id"].astype("int64"),
                       "subject_id": pd.array(rows["subject_id"], dtype="Int64")})
    for c in ("note_n", "note_medications", "note_problems", "note_problems_negated", "note_tests",
              "note_procedures"):
        df[c] = rng.integers(1 if c == "note_n" else 0, 5, n).astype("int32")
    df["note_med_aspirin"] = rng.integers(0, 2, n).astype("int8")
    df["note_problem_sepsis"] = np.asarray(sepsis).astype("int8")
    out = root / task
    out.mkdir(parents=True, exist_ok=True)
    df.to_parquet(out / nf.FEATURES_FILE, index=False)
    (out / nf.VOCABULARY_FILE).write_text(json.dumps({"version": 1, "task": task}))
    (out / nf.MANIFEST_FILE).write_text(json.dumps(
        {"admissions": n, "cut_hours": 48.0 if task == "ihm" else None, "allow_discharge_summary": False}))
    return out


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_task_tree(tmp_path_factory.mktemp("tasks"), n_stays=300, seed=5, timeseries=False)


@pytest.fixture(scope="module")
def notes(tree, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("note_features")
    write_note_features(root, tree, "readmit", signal=True)
    write_note_features(root, tree, "ihm", signal=False, seed=1)
    return root


def _train(tree: Path, out: Path, *extra: str) -> Path:
    assert cli.main(["train-outcomes", "--train", str(tree / "train"), "--validation", str(tree / "val"),
                     "--model-dir", str(out), *FAST, *extra]) == 0
    return out


def _evaluate(model: Path, tree: Path, out: Path, note_dir: str | Path) -> dict:
    assert cli.main(["evaluate", "--model", str(model), "--test", str(tree / "test"), "--output", str(out),
                     "--bootstrap", "60", "--min-group", "20", "--note-features", str(note_dir)]) == 0
    return read_json(out / "evaluation.json")


@pytest.fixture(scope="module")
def plain(tree, tmp_path_factory) -> Path:
    return _train(tree, tmp_path_factory.mktemp("plain"), "--note-features", NO_NOTES)


@pytest.fixture(scope="module")
def with_notes(tree, notes, tmp_path_factory) -> Path:
    return _train(tree, tmp_path_factory.mktemp("with_notes"), "--note-features", str(notes))


@pytest.fixture(scope="module")
def evaluated(with_notes, tree, notes, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("eval_notes")
    _evaluate(with_notes, tree, out, notes)
    return out


def test_join_left_join_zero_fill_keeps_rows_and_order():
    frame = pd.DataFrame({"hadm_id": np.array([3, 1, 2, 3], dtype="int64"), "f_x": [0.1, 0.2, 0.3, 0.4]},
                         index=[10, 11, 12, 13])
    notes = pd.DataFrame({"hadm_id": np.array([1, 3, 9], dtype="int64"), "note_n": [2, 5, 1],
                          "note_med_a": np.array([1, 0, 1], dtype="int8")})
    out = nf.join(frame, notes, ["note_n", "note_med_a"], "test")
    assert list(out.index) == [10, 11, 12, 13] and list(out["f_x"]) == [0.1, 0.2, 0.3, 0.4]
    assert list(out["note_n"]) == [5, 2, 0, 5]  # hadm 2 has no notes: zeros
    assert list(out["note_med_a"]) == [0, 1, 0, 0]
    assert nf.matched_rows(frame, notes) == 3
    with pytest.raises(DataError, match="note_problem_b"):
        nf.join(frame, notes, ["note_n", "note_problem_b"], "test")


def test_locate_absent_empty_partial_and_flat_layout(tmp_path, tree):
    assert nf.locate(None) == {} and nf.locate(tmp_path / "absent") == {} and nf.locate(tmp_path) == {}
    write_note_features(tmp_path / "nf", tree, "readmit", signal=False)
    assert nf.locate(tmp_path / "nf") == {"readmit": tmp_path / "nf" / "readmit"}
    flat = tmp_path / "flat"
    flat.mkdir()
    (tmp_path / "nf" / "readmit" / nf.FEATURES_FILE).rename(flat / nf.FEATURES_FILE)
    with pytest.raises(DataError, match="per task"):
        nf.locate(flat)


def _bad_file(tmp_path: Path, tree: Path, edit) -> Path:
    root = tmp_path / "bad"
    path = write_note_features(root, tree, "readmit", signal=False) / nf.FEATURES_FILE
    edit(pd.read_parquet(path)).to_parquet(path, index=False)
    return root


@pytest.mark.parametrize("edit, message", [
    (lambda df: df.drop(columns=["hadm_id"]), "no hadm_id column"),
    (lambda df: pd.concat([df, df.head(3)]), "3 duplicate hadm_id"),
])
def test_bad_note_feature_file_is_a_data_error_naming_it(tmp_path, tree, capsys, edit, message):
    root = _bad_file(tmp_path, tree, edit)
    with pytest.raises(DataError, match=message):
        nf.read_features(root / "readmit" / nf.FEATURES_FILE)
    rc = cli.main(["train-outcomes", "--train", str(tree / "train"), "--validation", str(tree / "val"),
                   "--model-dir", str(tmp_path / "m"), *FAST, "--note-features", str(root)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and str(root / "readmit" / nf.FEATURES_FILE) in err
    assert "extract-notes" in err  # says what to do


def test_ihm_features_from_after_the_prediction_time_are_refused(tmp_path, tree):
    out = write_note_features(tmp_path, tree, "ihm", signal=False)
    (out / nf.MANIFEST_FILE).write_text(json.dumps({"cut_hours": None}))
    with pytest.raises(DataError, match="--cut-hours 48"):
        nf.source_info("ihm", out)


def test_without_note_features_the_model_is_as_before(plain):
    meta = read_json(plain / "metadata.json")
    assert "note_features" not in meta and not (plain / nf.VARIANT_DIR).exists()


def test_variants_trained_only_with_features_and_served_model_unchanged(plain, with_notes, tree):
    meta = read_json(with_notes / "metadata.json")
    block = meta["note_features"]
    assert set(block["tasks"]) == {"ihm", "readmit"} and block["skipped"] == {}
    spec = read_json(with_notes / nf.VARIANT_DIR / nf.SPEC_FILE)
    assert spec["tasks"]["readmit"]["note_columns"] == [
        "note_n", "note_medications", "note_problems", "note_problems_negated", "note_tests",
        "note_procedures", "note_med_aspirin", "note_problem_sepsis"]
    assert len(spec["tasks"]["ihm"]["vocabulary_sha256"]) == 64 and spec["tasks"]["ihm"]["cut_hours"] == 48.0
    readmit = block["tasks"]["readmit"]
    assert readmit["n_train"] == meta["training"]["readmit"]["n_train"]
    assert 0 < readmit["train_rows_with_notes"] < readmit["n_train"]
    for task in ("ihm", "readmit"):
        assert (with_notes / nf.VARIANT_DIR / task / "xgboost.json").is_file()
        # the served (table-only) models are byte for byte what training without notes gives
        for f in ("xgboost.json", "lr.joblib"):
            assert (with_notes / task / f).read_bytes() == (plain / task / f).read_bytes()
    assert read_json(with_notes / "feature_spec.json") == read_json(plain / "feature_spec.json")
    assert meta["hyperparameters"] == read_json(plain / "metadata.json")["hyperparameters"]


def test_retraining_without_notes_removes_old_variants(tree, notes, tmp_path, caplog):
    out = _train(tree, tmp_path / "m", "--note-features", str(notes), "--tasks", "readmit")
    assert (out / nf.VARIANT_DIR / "readmit").is_dir()
    caplog.clear()
    _train(tree, out, "--note-features", NO_NOTES, "--tasks", "readmit")
    assert f"no note features in {NO_NOTES}: table features only" in caplog.text
    assert not (out / nf.VARIANT_DIR).exists() and "note_features" not in read_json(out / "metadata.json")


def test_evaluation_note_block_paired_ci_and_gain(evaluated):
    doc = read_json(evaluated / "evaluation.json")
    block = doc["note_features"]
    assert set(doc["gate"]) == {"ihm_auroc", "readmit_auroc"}  # nothing of the notes in the gate
    for task in ("ihm", "readmit"):
        e = block["tasks"][task]
        assert e["n"] == doc["tasks"][task]["n"] and e["note_columns"] == 8
        assert e["auroc"]["without"]["value"] == pytest.approx(doc["tasks"][task]["xgboost"]["auroc"]["value"])
        assert e["auroc"]["without"]["ci_low"] == pytest.approx(doc["tasks"][task]["xgboost"]["auroc"]["ci_low"])
        for metric in ("auroc", "auprc"):
            d = e[metric]["difference"]
            assert d["ci_low"] <= d["value"] <= d["ci_high"]
            assert d["value"] == pytest.approx(e[metric]["with"]["value"] - e[metric]["without"]["value"])
        assert e["vocabulary_sha256"] == e["trained_vocabulary_sha256"]
    gain = block["tasks"]["readmit"]["auroc"]
    assert gain["difference"]["value"] > 0.05 and gain["difference"]["ci_low"] > 0  # the label restated
    assert block["tasks"]["readmit"]["ci_contains_zero"] is False
    html = (evaluated / "report.html").read_text()
    assert "Note features" in html and "table + note features" not in html.split("Note features")[0]
    assert html.count("data:image/png;base64,") == 6 + 2  # 3 plots x 2 tasks + one ROC per note task


def test_model_metrics_untouched_and_no_features_path_unchanged(plain, with_notes, evaluated, tree, notes,
                                                               tmp_path):
    a = _evaluate(plain, tree, tmp_path / "a", NO_NOTES)
    b = _evaluate(with_notes, tree, tmp_path / "b", NO_NOTES)  # variants exist, no features given
    assert "note_features" not in a and a == b
    mm = [read_json(p / "model_metrics.json") for p in (tmp_path / "a", evaluated)]
    for m in mm:
        m["dataset"].pop("evaluation_time")
    assert mm[0] == mm[1]
    # features given but the model has no variants: said so, per task
    c = _evaluate(plain, tree, tmp_path / "c", notes)
    assert c["note_features"]["tasks"] == {} and set(c["note_features"]["skipped"]) == {"ihm", "readmit"}
    assert {k: v for k, v in c.items() if k != "note_features"} == a


def test_task_without_note_features_is_skipped(with_notes, tree, notes, tmp_path):
    only = tmp_path / "only_readmit"
    (only / "readmit").mkdir(parents=True)
    for f in (notes / "readmit").iterdir():
        (only / "readmit" / f.name).write_bytes(f.read_bytes())
    doc = _evaluate(with_notes, tree, tmp_path / "e", only)
    assert set(doc["note_features"]["tasks"]) == {"readmit"}
    assert "no note features" in doc["note_features"]["skipped"]["ihm"]
