"""Champion vs challenger: paired seeded bootstrap, the promotion rule, clear errors on bad input."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from clinical_ml import cli
from clinical_ml.io import DataError, make_model_tarball, read_json
from clinical_ml.outcomes import load
from clinical_ml.outcomes.champion import Rule, compare, compare_predictions
from clinical_ml.outcomes.train import HyperParameters
from outcomes_toy import make_task_tree, train_toy_models
from processing import compare_models

HP = HyperParameters(max_rounds=40, early_stopping_rounds=5, nthread=1)
B = 200  # resamples: enough for a CI, quick


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_task_tree(tmp_path_factory.mktemp("tasks"), n_stays=1000, seed=5, timeseries=False)


def _train(tree: Path, out: Path, tasks=("ihm",), hp=HP, shuffle: bool = False) -> Path:
    return train_toy_models(tree, out, tasks, hp, shuffle)


@pytest.fixture(scope="module")
def models(tree, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    return {"good": _train(tree, root / "good"), "shuffled": _train(tree, root / "shuffled", shuffle=True),
            "readmit_only": _train(tree, root / "readmit", tasks=("readmit",))}


def _cmp(models, champion, challenger, tree, **kw):
    return compare(load(models[champion]), load(models[challenger]), tree / "test", resamples=B, **kw)


def test_weakened_challenger_is_not_promoted_and_the_reason_says_why(models, tree):
    doc = _cmp(models, "good", "shuffled", tree)
    ihm = doc["tasks"]["ihm"]
    assert ihm["champion"]["auroc"]["value"] > 0.75 and ihm["challenger"]["auroc"]["value"] < 0.65
    assert doc["decision"]["promote"] is False and ihm["checks"]["auroc_non_inferior"]["passed"] is False
    reason = doc["decision"]["reason"]
    assert reason.startswith("ihm: challenger AUROC") and "not above -0.02" in reason and "keep the champion" in reason


def test_better_or_equal_challenger_is_promoted(models, tree):
    better = _cmp(models, "shuffled", "good", tree)
    assert better["decision"]["promote"] is True and better["decision"]["reason"].endswith("not worse; promote")
    assert better["tasks"]["ihm"]["difference"]["auroc"]["ci_low"] > 0.1
    same = _cmp(models, "good", "good", tree)
    assert same["decision"]["promote"] is True and same["identical_models"] is True
    d = same["tasks"]["ihm"]["difference"]["auroc"]
    # paired: the same resamples for both sides, so an identical model differs by exactly 0 in each
    assert d["value"] == d["ci_low"] == d["ci_high"] == 0.0
    assert same["tasks"]["ihm"]["champion"]["auroc"]["ci_high"] > same["tasks"]["ihm"]["champion"]["auroc"]["ci_low"]


def test_bootstrap_is_seeded_and_deterministic(models, tree):
    a = _cmp(models, "shuffled", "good", tree, seed=3)
    b = _cmp(models, "shuffled", "good", tree, seed=3)
    c = _cmp(models, "shuffled", "good", tree, seed=4)
    assert a == b
    assert a["tasks"]["ihm"]["difference"]["auroc"]["ci_low"] != c["tasks"]["ihm"]["difference"]["auroc"]["ci_low"]
    assert a["tasks"]["ihm"]["rows_sha256"] == c["tasks"]["ihm"]["rows_sha256"]


def test_worse_calibration_alone_keeps_the_champion():
    rng = np.random.default_rng(1)
    risk = rng.normal(size=600)
    p = 1 / (1 + np.exp(-(-1 + 1.5 * risk)))
    y = (rng.random(600) < p).astype(float)
    e = compare_predictions(y, p, p ** 0.3, Rule(), resamples=B)  # same ranking, overconfident
    assert e["difference"]["auroc"]["value"] == 0.0 and e["checks"]["auroc_non_inferior"]["passed"]
    assert e["promote"] is False and "calibration worse by" in e["reason"] and "ECE" in e["reason"]
    assert e["difference"]["brier"]["value"] > 0


def test_script_writes_the_property_file_atomically_and_handles_no_champion(models, tree, tmp_path):
    tarball = make_model_tarball(models["good"], tmp_path / "champion" / "model.tar.gz")
    out = tmp_path / "out"
    argv = ["--challenger", str(models["shuffled"]), "--test", str(tree / "test"), "--output", str(out),
            "--bootstrap", str(B)]
    assert compare_models.main(["--champion", str(tarball), *argv]) == 0
    doc = read_json(out / "comparison.json")
    assert doc["decision"]["promote"] is False and doc["champion"]["path"] == str(tarball)
    assert sorted(p.name for p in out.iterdir()) == ["comparison.json"]  # no temporary left behind
    assert compare_models.main(["--champion", "none", *argv]) == 0
    doc = read_json(out / "comparison.json")
    assert doc["decision"] == {"promote": True, "reason": doc["tasks"]["ihm"]["reason"]}
    assert doc["champion"] is None and "no champion model" in doc["decision"]["reason"]


def test_bad_inputs_name_the_file(models, tree, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=rf"champion model: {empty}/metadata.json: file not found"):
        compare_models.main(["--champion", str(empty), "--challenger", str(models["good"]),
                             "--test", str(tree / "test"), "--output", str(tmp_path / "o")])
    with pytest.raises(DataError, match=r"challenger model: .*/missing: no model directory or model.tar.gz"):
        compare_models.main(["--champion", "none", "--challenger", str(tmp_path / "missing"),
                             "--test", str(tree / "test"), "--output", str(tmp_path / "o")])
    with pytest.raises(DataError, match=r"readmit/feature_spec.json: the challenger model has no 'ihm' task"):
        _cmp(models, "good", "readmit_only", tree)
    part = tmp_path / "good"
    shutil.copytree(models["good"], part)
    (part / "ihm" / "xgboost.json").unlink()
    with pytest.raises(DataError, match=r"good/ihm/xgboost.json: not found: the champion model has no xgboost"):
        compare(load(part), load(models["good"]), tree / "test", resamples=B)
    with pytest.raises(DataError, match="at least 100 resamples"):
        compare(load(models["good"]), load(models["good"]), tree / "test", resamples=10)
    rc = cli.main(["compare-models", "--champion", "none", "--challenger", str(models["good"]),
                   "--test", str(tmp_path / "nowhere"), "--output", str(tmp_path / "o")])
    assert rc == 2 and "nowhere: test split folder not found" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
