"""Lineage joins the registry entry, the model's metadata.json and its evaluation."""
from __future__ import annotations

import json

from clinical_ml import lineage
from clinical_ml.io import make_model_tarball, write_json
from clinical_ml.registry import LocalRegistry


def _register(tmp_path, with_eval=True, meta_extra=None):
    model = tmp_path / "model"
    meta = {"model_type": "outcomes", "data_manifest_sha256": "d" * 64, "code_version": "abc123",
            "hyperparameters": {"max_rounds": 50}}
    meta.update(meta_extra or {})
    write_json(model / "metadata.json", meta)
    tarball = make_model_tarball(model, tmp_path / "model.tar.gz")
    write_json(tmp_path / "eval" / "evaluation.json", {"gate": {"ihm_auroc": 0.83}})
    metrics = ({"ModelQuality": {"Statistics": {"ContentType": "application/json",
                                                "S3Uri": str(tmp_path / "eval" / "evaluation.json")}}}
               if with_eval else {})
    reg = LocalRegistry(tmp_path / "registry")
    reg.create_model_package_group("outcomes")
    return reg, reg.create_model_package("outcomes", tarball, "Approved", model_metrics=metrics,
                                         customer_metadata={"mlflow_run_id": "0123abcd"})


def test_lineage_complete(tmp_path, capsys):
    _, arn = _register(tmp_path)
    rc = lineage.main([arn, "--registry", str(tmp_path / "registry")])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert out["data_manifest_sha256"] == "d" * 64 and out["code_version"] == "abc123"
    assert out["hyperparameters"] == {"max_rounds": 50}
    assert out["evaluation"] == {"ihm_auroc": 0.83} and out["version"] == 1
    assert out["mlflow_run_id"] == "0123abcd"  # the registered version's MLflow run (TrackRuns)


def test_lineage_by_group_and_version(tmp_path, capsys):
    _register(tmp_path)
    assert lineage.main(["outcomes/1", "--registry", str(tmp_path / "registry")]) == 0
    assert lineage.main(["outcomes", "--registry", str(tmp_path / "registry")]) == 0


def test_lineage_incomplete_names_missing(tmp_path, capsys):
    _, arn = _register(tmp_path, with_eval=False, meta_extra={"code_version": None})
    assert lineage.main([arn, "--registry", str(tmp_path / "registry")]) == 1
    err = capsys.readouterr().err
    assert "code_version" in err and "evaluation" in err
