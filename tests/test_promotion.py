"""Champion vs challenger wired into the pipeline: CompareModels finds the production model in the
registry itself, and CheckPromotion registers/deploys the new outcome model only when it is not
worse; otherwise KeepChampion ends the execution with the reason.

The runner tests execute the real definition's CompareModels, CheckPromotion and KeepChampion
JSON (from ``get_pipeline``) with the real step script, on a small synthetic task tree; only
what sits upstream (the tuned model, the test split) becomes parameters, and the promotion
branch is a stand-in RegisterOutcomes + Deploy (their own steps are tested elsewhere).
"""
from __future__ import annotations

import copy
import io
import json
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from clinical_ml.io import make_model_tarball, read_json
from clinical_ml.outcomes.production import production_model
from clinical_ml.outcomes.train import HyperParameters
from clinical_ml.registry import LocalRegistry
from outcomes_toy import make_task_tree, train_toy_models
from pipeline_expr import all_steps
from processing import compare_models

GROUP = "clinical-ml-outcomes"  # model_package_groups("clinical-ml")["outcomes"]
HP = HyperParameters(max_rounds=40, early_stopping_rounds=5, nthread=1)
FIXTURE_DEPLOY = "/opt/ml/code/tests/fixtures/local_runner/deploy.py"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_task_tree(tmp_path_factory.mktemp("tasks"), n_stays=1000, seed=5, timeseries=False)


def _train(tree: Path, out: Path, shuffle: bool) -> Path:
    return train_toy_models(tree, out, ("ihm",), HP, shuffle)


@pytest.fixture(scope="module")
def models(tree, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("models")
    good, weak = _train(tree, root / "good", False), _train(tree, root / "weak", True)
    # as SageMaker stores them: the training job's model.tar.gz
    return {"good": make_model_tarball(good, root / "good.tar" / "model.tar.gz"),
            "weak": make_model_tarball(weak, root / "weak.tar" / "model.tar.gz")}


# -- the real definition's steps, run by the local runner ---------------------------------------

@pytest.fixture(scope="module")
def definition() -> dict:
    from pipelines.local.runner import build_definition

    real = build_definition()
    steps = all_steps(real)
    compare = copy.deepcopy(steps["CompareModels"])
    compare.pop("DependsOn")  # EvaluateOutcomes is not part of this small definition
    upstream = {"challenger": "Parameters.ChallengerUri", "test": "Parameters.TestUri"}
    for i in compare["Arguments"]["ProcessingInputs"]:
        i["S3Input"]["S3Uri"] = {"Get": upstream[i["InputName"]]}
    check = copy.deepcopy(steps["CheckPromotion"])
    (keep,) = check["Arguments"]["ElseSteps"]
    keep.pop("DependsOn")  # RegisterExtractor: not part of it either
    register = {"Name": "RegisterOutcomes", "Type": "RegisterModel", "Arguments": {
        "ModelPackageGroupName": GROUP, "ModelApprovalStatus": {"Get": "Parameters.ModelApprovalStatus"},
        "InferenceSpecification": {"Containers": [{"Image": "inference", "ModelDataUrl": {"Get": "Parameters.ChallengerUri"}}],
                                   "SupportedContentTypes": ["application/json"],
                                   "SupportedResponseMIMETypes": ["application/json"]}}}
    deploy = copy.deepcopy(compare)
    deploy.pop("PropertyFiles")
    deploy.update(Name="Deploy", DisplayName="Deploy", Description="stand-in: records the package it deploys")
    deploy["Arguments"]["ProcessingInputs"] = []
    deploy["Arguments"]["ProcessingOutputConfig"]["Outputs"][0].update(OutputName="deploy")
    deploy["Arguments"]["ProcessingOutputConfig"]["Outputs"][0]["S3Output"]["LocalPath"] = "/opt/ml/processing/output/deploy"
    deploy["Arguments"]["AppSpecification"]["ContainerEntrypoint"] = ["python3", FIXTURE_DEPLOY]
    deploy["Arguments"]["AppSpecification"]["ContainerArguments"] = [
        "--model-package-arn", {"Get": "Steps.RegisterOutcomes.ModelPackageArn"}, "--out", "/opt/ml/processing/output/deploy"]
    check["Arguments"]["IfSteps"] = [register, deploy]
    params = real["Parameters"] + [{"Name": "ChallengerUri", "Type": "String"}, {"Name": "TestUri", "Type": "String"}]
    return {**real, "Parameters": params, "Steps": [compare, check]}


def _champion(root: Path, model: Path) -> str:
    reg = LocalRegistry(root / "registry")
    reg.create_model_package_group(GROUP)
    return reg.create_model_package(GROUP, model, "Approved")


def _run(definition, root: Path, challenger: Path, tree: Path):
    from pipelines.local.runner import run_execution

    ex, summary = run_execution(definition, root, {"ChallengerUri": str(challenger), "TestUri": str(tree / "test"),
                                                   "ModelApprovalStatus": "Approved"}, stream=io.StringIO())
    return ex, {s["name"]: s["status"] for s in summary["steps"]}


def test_weakened_challenger_keeps_the_champion_and_says_why(definition, models, tree, tmp_path):
    root = tmp_path / "runs"
    champion = _champion(root, models["good"])
    ex, status = _run(definition, root, models["weak"], tree)
    assert status == {"CompareModels": "Succeeded", "CheckPromotion": "Succeeded", "KeepChampion": "Failed",
                      "RegisterOutcomes": "NotExecuted", "Deploy": "NotExecuted"}
    doc = read_json(ex.run_dir / "steps/CompareModels/output/comparison/comparison.json")
    assert doc["decision"]["promote"] is False
    assert doc["champion_package"]["model_package_arn"] == champion  # found in the registry at run time
    assert doc["tasks"]["ihm"]["champion"]["auroc"]["value"] > doc["tasks"]["ihm"]["challenger"]["auroc"]["value"] + 0.1
    assert ex.failure.step == "KeepChampion"
    assert ex.failure.message == "Champion kept, the new outcome model is not promoted: " + doc["decision"]["reason"]
    assert "keep the champion" in ex.failure.message and "95% CI" in ex.failure.message
    # nothing new in the registry, nothing deployed
    assert [p["ModelPackageArn"] for p in LocalRegistry(root / "registry").list_model_packages(GROUP)] == [champion]
    assert not (ex.run_dir / "steps/Deploy").exists()
    # the decision is in the execution's audit trail
    records = [json.loads(line) for line in (ex.run_dir / "audit.jsonl").read_text().splitlines()]
    (compared,) = [r["details"] for r in records if r["event"] == "models_compared"]
    assert compared["promote"] is False and compared["champion"] == champion
    assert compared["reason"] == doc["decision"]["reason"]


def test_better_challenger_is_registered_and_deployed(definition, models, tree, tmp_path):
    root = tmp_path / "runs"
    champion = _champion(root, models["weak"])
    ex, status = _run(definition, root, models["good"], tree)
    assert ex.failure is None, ex.failure and ex.failure.message
    assert status == {"CompareModels": "Succeeded", "CheckPromotion": "Succeeded", "KeepChampion": "NotExecuted",
                      "RegisterOutcomes": "Succeeded", "Deploy": "Succeeded"}
    doc = read_json(ex.run_dir / "steps/CompareModels/output/comparison/comparison.json")
    assert doc["decision"]["promote"] is True and doc["decision"]["reason"].endswith("not worse; promote")
    assert doc["champion_package"]["model_package_arn"] == champion
    assert doc["tasks"]["ihm"]["difference"]["auroc"]["ci_low"] > 0.1
    newest = LocalRegistry(root / "registry").latest_approved(GROUP)
    assert newest["ModelPackageVersion"] == 2 and newest["ModelPackageArn"] != champion
    deployed = json.loads((ex.run_dir / "steps/Deploy/output/deploy/endpoint.json").read_text())
    assert deployed["model_package_arn"] == newest["ModelPackageArn"]


# -- the script's registry lookup, both backends -------------------------------------------------

def _argv(models, tree, out: Path, *extra: str) -> list[str]:
    return ["--champion-group", GROUP, "--challenger", str(models["weak"]), "--test", str(tree / "test"),
            "--output", str(out), "--bootstrap", "200", *extra]


def test_no_approved_version_promotes_with_no_production_model(models, tree, tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_REGISTRY", str(tmp_path / "registry"))
    out = tmp_path / "out"
    assert compare_models.main(_argv(models, tree, out)) == 0  # no group at all yet: the first execution
    doc = read_json(out / "comparison.json")
    assert doc["decision"]["promote"] is True and doc["champion"] is None
    assert doc["decision"]["reason"].startswith(f"no production model (no Approved version in model package group {GROUP})")
    assert doc["champion_package"] == {"source": "model registry", "backend": "local", "model_package_group": GROUP,
                                       "model_package_arn": None}
    reg = LocalRegistry(tmp_path / "registry")  # a version awaiting approval is not in production
    reg.create_model_package_group(GROUP)
    reg.create_model_package(GROUP, models["good"], "PendingManualApproval")
    assert compare_models.main(_argv(models, tree, out)) == 0
    assert read_json(out / "comparison.json")["decision"]["promote"] is True
    approved = reg.create_model_package(GROUP, models["good"], "Approved")
    reg.create_model_package(GROUP, models["good"], "Rejected")  # newer, but not Approved
    assert compare_models.main(_argv(models, tree, out)) == 0
    doc = read_json(out / "comparison.json")
    assert doc["decision"]["promote"] is False and doc["champion_package"]["model_package_arn"] == approved
    assert doc["champion_package"]["model_package_version"] == 2
    with pytest.raises(SystemExit):  # one way to name the champion, not two
        compare_models.parse_args(_argv(models, tree, out, "--champion", "none"))


def test_sagemaker_backend_downloads_the_newest_approved_model(models, tree, tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "sagemaker")
    for k, v in {"AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with mock_aws():
        s3, sm = boto3.client("s3"), boto3.client("sagemaker")
        s3.create_bucket(Bucket="bkt")
        assert production_model(GROUP, tmp_path / "none") == (None, {  # an empty (or missing) group
            "source": "model registry", "backend": "sagemaker", "model_package_group": GROUP, "model_package_arn": None})
        sm.create_model_package_group(ModelPackageGroupName=GROUP)
        arns = []
        for name, status in (("weak", "Approved"), ("good", "Approved"), ("weak", "PendingManualApproval")):
            key = f"clinical-ml/TuneOutcomes/{name}-{len(arns)}/output/model.tar.gz"
            s3.upload_file(str(models[name]), "bkt", key)
            arns.append(sm.create_model_package(
                ModelPackageGroupName=GROUP, ModelApprovalStatus=status,
                InferenceSpecification={"Containers": [{"Image": "inference", "ModelDataUrl": f"s3://bkt/{key}"}],
                                        "SupportedContentTypes": ["application/json"],
                                        "SupportedResponseMIMETypes": ["application/json"]})["ModelPackageArn"])
        out = tmp_path / "out"
        assert compare_models.main(_argv(models, tree, out)) == 0
    doc = read_json(out / "comparison.json")
    package = doc["champion_package"]
    assert package["model_package_arn"] == arns[1] and package["backend"] == "sagemaker"  # the newest Approved one
    assert package["model_data_url"] == "s3://bkt/clinical-ml/TuneOutcomes/good-1/output/model.tar.gz"
    assert doc["champion"]["path"] == package["model_data_url"]
    assert doc["decision"]["promote"] is False and "keep the champion" in doc["decision"]["reason"]
