"""Deploy step, SageMaker backend, against moto.

moto implements model packages, models, endpoint configs and create_endpoint, so the create
path runs for real. It does not implement update_endpoint: the update path runs against the
same moto backend with only that one call replaced by a recorder (marked below).
"""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from inference import deploy, deploy_sagemaker

ROLE = "arn:aws:iam::123456789012:role/sagemaker"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-ml:1"


@pytest.fixture
def sm(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        client = boto3.client("sagemaker", region_name="us-east-1")
        client.create_model_package_group(ModelPackageGroupName="outcomes")
        monkeypatch.setattr(deploy_sagemaker, "client", lambda service="sagemaker": client)
        yield client


def _register(sm, status="Approved", data="s3://bucket/model/model.tar.gz"):
    return sm.create_model_package(
        ModelPackageGroupName="outcomes", ModelApprovalStatus=status,
        InferenceSpecification={"Containers": [{"Image": IMAGE, "ModelDataUrl": data}],
                                "SupportedContentTypes": ["text/csv", "application/json"],
                                "SupportedResponseMIMETypes": ["application/json"]},
    )["ModelPackageArn"]


def _args(arn, tmp_path, *extra):
    return ["--backend", "sagemaker", "--model-package-arn", arn, "--endpoint-name", "outcomes-ep",
            "--role-arn", ROLE, "--capture-uri", "s3://bucket/capture", "--capture-percent", "50",
            "--kms-key-id", "arn:aws:kms:us-east-1:123456789012:key/abc", "--challenger-weight", "0.25",
            "--output-dir", str(tmp_path), *extra]


def test_plan_variants():
    assert deploy.plan_variants("new", None, 0.2) == [
        {"name": "champion", "model_package_arn": "new", "weight": 1.0}]
    assert deploy.plan_variants("new", "new", 0.2)[0]["weight"] == 1.0
    two = deploy.plan_variants("new", "old", 0.2)
    assert [(v["name"], v["model_package_arn"], v["weight"]) for v in two] == [
        ("champion", "old", 0.8), ("challenger", "new", 0.2)]


def test_first_deploy_creates_a_single_variant_endpoint(sm, tmp_path):
    arn = _register(sm)
    assert deploy.main(_args(arn, tmp_path)) == 0
    info = json.loads((tmp_path / "endpoint.json").read_text())
    assert info["action"] == "create" and len(info["variants"]) == 1
    assert info["variants"][0]["model_package_arn"] == arn and info["variants"][0]["weight"] == 1.0
    ep = sm.describe_endpoint(EndpointName="outcomes-ep")
    cfg = sm.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"])
    (v,) = cfg["ProductionVariants"]
    assert v["VariantName"] == "champion" and v["InstanceType"] == "ml.m5.large"
    model = sm.describe_model(ModelName=v["ModelName"])
    assert model["PrimaryContainer"]["ModelPackageName"] == arn
    cap = cfg["DataCaptureConfig"]
    assert cap["EnableCapture"] and cap["InitialSamplingPercentage"] == 50
    assert cap["DestinationS3Uri"] == "s3://bucket/capture" and cap["KmsKeyId"].endswith("key/abc")
    assert {o["CaptureMode"] for o in cap["CaptureOptions"]} == {"Input", "Output"}


def test_second_deploy_updates_with_champion_and_challenger(sm, tmp_path):
    first = _register(sm)
    deploy.main(_args(first, tmp_path))
    _register(sm, status="Rejected")  # never becomes the champion
    second = _register(sm)
    calls = []
    # moto has no update_endpoint: record the call instead (the only stubbed call)
    sm.update_endpoint = lambda **kw: calls.append(kw) or {"EndpointArn": "arn"}
    deploy.main(_args(second, tmp_path, "--image-uri", IMAGE))
    info = json.loads((tmp_path / "endpoint.json").read_text())
    assert info["action"] == "update"
    assert calls == [{"EndpointName": "outcomes-ep", "EndpointConfigName": info["endpoint_config_name"]}]
    cfg = sm.describe_endpoint_config(EndpointConfigName=info["endpoint_config_name"])
    got = {v["VariantName"]: v for v in cfg["ProductionVariants"]}
    assert got["champion"]["InitialVariantWeight"] == pytest.approx(0.75)
    assert got["challenger"]["InitialVariantWeight"] == pytest.approx(0.25)
    by_name = {v["name"]: v for v in info["variants"]}
    assert by_name["champion"]["model_package_arn"] == first
    assert by_name["challenger"]["model_package_arn"] == second
    m = sm.describe_model(ModelName=got["challenger"]["ModelName"])
    assert m["PrimaryContainer"]["Image"] == IMAGE
    assert m["PrimaryContainer"]["ModelDataUrl"] == "s3://bucket/model/model.tar.gz"


def test_unapproved_package_is_refused(sm, tmp_path):
    from clinical_ml.io import DataError

    arn = _register(sm, status="PendingManualApproval")
    with pytest.raises(DataError, match="PendingManualApproval"):
        deploy.main(_args(arn, tmp_path))
    assert not (tmp_path / "endpoint.json").exists()
    assert deploy.main(_args(arn, tmp_path, "--require-approval", "false")) == 0


def test_bad_arguments_exit_with_usage(tmp_path):
    for argv in (["--backend", "sagemaker"], ["--model-package-arn", "x", "--challenger-weight", "2"]):
        with pytest.raises(SystemExit) as e:
            deploy.parse_args(argv)
        assert e.value.code == 2
