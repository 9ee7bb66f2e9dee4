"""Training and evaluation step scripts end to end on a tiny task tree."""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from clinical_ml import cli
from clinical_ml.io import make_model_tarball, read_json
from clinical_ml.outcomes import load
from clinical_ml.outcomes.evaluation import GATE_KEYS
from clinical_ml.tasks.io import PHENOTYPE_COLUMNS, read_split, read_timeseries
from outcomes_toy import make_task_tree

FAST = ["--max-rounds", "30", "--early-stopping-rounds", "5", "--gru-epochs", "1", "--seed", "3",
        "--nthread", "1"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_task_tree(tmp_path_factory.mktemp("tasks"), n_stays=250, seed=1)


@pytest.fixture(scope="module")
def trained(tree, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model")
    assert cli.main(["train-outcomes", "--train", str(tree / "train"), "--validation",
                     str(tree / "val"), "--model-dir", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="module")
def evaluated(trained, tree, tmp_path_factory) -> Path:
    packed = tmp_path_factory.mktemp("packed")
    make_model_tarball(trained, packed / "model.tar.gz")
    out = tmp_path_factory.mktemp("evaluation")
    assert cli.main(["evaluate", "--model", str(packed / "model.tar.gz"), "--test", str(tree / "test"),
                     "--output", str(out), "--bootstrap", "50", "--min-group", "20"]) == 0
    return out


def test_model_directory_contract(trained, tree):
    meta = read_json(trained / "metadata.json")
    spec = read_json(trained / "feature_spec.json")
    assert meta["model_type"] == "outcomes"
    assert meta["tasks"] == ["ihm", "decomp", "los", "pheno", "readmit"]
    assert len(meta["data_manifest_sha256"]) == 64 and set(meta["data_manifests"]) == {
        "train/manifest-00000.json", "val/manifest-00000.json"}
    assert meta["code_version"] and meta["hyperparameters"]["seed"] == 3
    assert meta["hyperparameters"]["max_rounds"] == 30
    assert spec["features"] == [c for c in read_split(tree / "train", "ihm").columns if c.startswith("f_")]
    assert spec["tasks"]["pheno"] == {"type": "multilabel", "labels": list(PHENOTYPE_COLUMNS)}
    assert "heart_rate" in spec["channels"]
    for task in meta["tasks"]:
        assert (trained / task / "xgboost.json").is_file() and (trained / task / "lr.joblib").is_file()
        assert (trained / task / "gru.pt").is_file() == (task in ("ihm", "decomp"))
    assert not list(trained.glob(".staging-*"))


def test_predict_shapes_and_ranges(trained, tree):
    model = load(trained)
    test = tree / "test"
    ihm = read_split(test, "ihm")
    for name in ("xgboost", "lr"):
        p = model.predict("ihm", ihm, name)
        assert p.shape == (len(ihm),) and ((p >= 0) & (p <= 1)).all()
    p = model.predict("ihm", ihm, "gru", timeseries=read_timeseries(test))
    assert p.shape == (len(ihm),) and np.isfinite(p).all()
    pheno = read_split(test, "pheno")
    assert model.predict("pheno", pheno).shape == (len(pheno), 25)
    los = read_split(test, "los")
    assert (model.predict("los", los) > 0).all()  # hours


def test_same_seed_gives_identical_predictions(trained, tree, tmp_path):
    again = tmp_path / "again"
    assert cli.main(["train-outcomes", "--train", str(tree / "train"), "--validation",
                     str(tree / "val"), "--model-dir", str(again), "--tasks", "ihm,pheno", *FAST]) == 0
    a, b = load(trained), load(again)
    test = tree / "test"
    ts = read_timeseries(test)
    for task, models in (("ihm", ("xgboost", "lr", "gru")), ("pheno", ("xgboost", "lr"))):
        df = read_split(test, task)
        for name in models:
            np.testing.assert_array_equal(a.predict(task, df, name, timeseries=ts),
                                          b.predict(task, df, name, timeseries=ts))
    assert (trained / "ihm" / "xgboost.json").read_bytes() == (again / "ihm" / "xgboost.json").read_bytes()


def _no_nan(obj) -> None:
    if isinstance(obj, float):
        assert math.isfinite(obj)
    elif isinstance(obj, dict):
        for v in obj.values():
            _no_nan(v)
    elif isinstance(obj, list):
        for v in obj:
            _no_nan(v)


def test_evaluation_json_gate_and_layout(evaluated):
    text = (evaluated / "evaluation.json").read_text()
    doc = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in evaluation.json"))
    _no_nan(doc)
    # the keys the pipeline condition reads (JsonGet on gate.<key>)
    assert set(doc["gate"]) == set(GATE_KEYS.values())
    assert doc["bootstrap"]["resamples"] == 50
    ihm = doc["tasks"]["ihm"]
    for name in ("xgboost", "lr", "gru"):
        for metric in ("auroc", "auprc", "min_se_ppv", "brier", "calibration_slope",
                       "calibration_intercept", "ece"):
            res = ihm[name][metric]
            assert res["ci_low"] <= res["value"] <= res["ci_high"], (name, metric)
    assert doc["gate"]["ihm_auroc"] == pytest.approx(ihm["xgboost"]["auroc"]["value"], abs=1e-6)
    assert ihm["xgboost"]["auroc"]["value"] > 0.6  # the toy signal is learnable
    assert set(doc["tasks"]["los"]["xgboost"]) == {"kappa", "mad"}
    assert {"macro_auroc", "micro_auroc", "label_auroc"} <= set(doc["tasks"]["pheno"]["xgboost"])
    assert "xgboost_minus_lr_auroc" in ihm["comparisons"]
    sub = ihm["subgroups"]
    assert sub["model"] == "xgboost" and {"sex", "age_band", "ethnicity", "insurance"} <= set(sub)
    for col in ("sex", "age_band", "ethnicity", "insurance"):
        for entry in sub[col].values():
            assert entry["n"] > 0 and ("auroc" in entry) != ("skipped" in entry)
    assert any("skipped" in e for e in sub["ethnicity"].values())  # ASIAN: a handful of rows


def test_model_metrics_and_report(evaluated):
    mm = read_json(evaluated / "model_metrics.json")
    bcm = mm["binary_classification_metrics"]
    assert mm["dataset"]["task"] == "ihm"
    assert {"confusion_matrix", "auc", "precision", "recall", "f1",
            "receiver_operating_characteristic_curve"} <= set(bcm)
    assert set(bcm["auc"]) == {"value", "standard_deviation"}
    assert {"mae", "mse", "rmse", "r2"} == set(mm["regression_metrics"])
    assert set(mm["clinical_ml"]["tasks"]) == {"ihm", "decomp", "los", "pheno", "readmit"}
    html = (evaluated / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 9  # ROC, PR, calibration x 3 binary tasks
    assert "Subgroups" in html and "xgboost_minus_lr_auroc" in html


def test_trained_model_is_served_through_the_fast_path(trained, tree):
    """The endpoint's single-row fast path reproduces the trainer's own predictions, los too."""
    from inference import handlers

    served = handlers.model_fn(trained)
    assert served.fast, "booster fast path disagreed with clinical_ml.outcomes.load().predict"
    df = read_split(tree / "test", "los")[served.features].head(5)
    ref = load(trained).predict("los", df, model="xgboost")
    got = served._fast_predict("los", df.to_numpy(np.float32))
    assert np.allclose(got, ref, rtol=1e-5)


def test_baselines_from_their_own_step_score_as_if_trained_together(trained, tree, evaluated, tmp_path):
    """TrainBaselines (lr,gru) + TuneOutcomes (xgboost) evaluate exactly like one model with all."""
    xgb_dir, base_dir = tmp_path / "xgb", tmp_path / "baselines"
    for out, models in ((xgb_dir, "xgboost"), (base_dir, "lr,gru")):
        assert cli.main(["train-outcomes", "--train", str(tree / "train"), "--validation", str(tree / "val"),
                         "--model-dir", str(out), "--models", models, *FAST]) == 0
    assert not (xgb_dir / "ihm" / "lr.joblib").exists() and not (base_dir / "ihm" / "xgboost.json").exists()
    packed = tmp_path / "packed"
    make_model_tarball(base_dir, packed / "model.tar.gz")
    out = tmp_path / "evaluation"
    assert cli.main(["evaluate", "--model", str(xgb_dir), "--baselines", str(packed), "--test", str(tree / "test"),
                     "--output", str(out), "--bootstrap", "50", "--min-group", "20"]) == 0
    split, together = read_json(out / "evaluation.json"), read_json(evaluated / "evaluation.json")
    assert split["tasks"] == together["tasks"]
    assert {"xgboost", "lr", "gru"} <= set(json.dumps(split["tasks"]["ihm"]).replace('"', " ").split())
    assert load(xgb_dir, base_dir).models("ihm") == ["xgboost", "lr", "gru"]


def test_baselines_trained_on_other_data_are_refused(trained, tmp_path):
    from clinical_ml.io import DataError

    other = make_task_tree(tmp_path / "other", n_stays=120, seed=9)
    base_dir = tmp_path / "baselines"
    assert cli.main(["train-outcomes", "--train", str(other / "train"), "--validation", str(other / "val"),
                     "--model-dir", str(base_dir), "--models", "lr", "--tasks", "ihm", *FAST]) == 0
    with pytest.raises(DataError, match="baselines were trained on other data"):
        load(trained, base_dir)
