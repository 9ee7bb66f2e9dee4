"""Deploy step, SageMaker backend, against moto.

moto implements model packages, models, endpoint configs and create_endpoint, so the create
path runs for real. It does not implement update_endpoint: the update path runs against the
same moto backend with only that one call replaced by a recorder (marked below).
"""
from __future__ import annotations

import datetime as dt
import json

import boto3
import botocore.session
import pytest
from botocore.stub import ANY, Stubber
from moto import mock_aws

from clinical_ml.io import DataError
from inference import deploy, deploy_sagemaker, variants

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
    for traffic in ("all", "canary"):
        assert variants.plan_variants("new", None, 0.2, traffic) == [
            {"name": "champion", "model_package_arn": "new", "weight": 1.0}]
        assert variants.plan_variants("new", "new", 0.2, traffic)[0]["weight"] == 1.0
    canary = variants.plan_variants("new", "old", 0.2, "canary")
    assert [(v["name"], v["model_package_arn"], v["weight"]) for v in canary] == [
        ("champion", "old", 0.8), ("challenger", "new", 0.2)]
    promoted = variants.plan_variants("new", "old", 0.2)  # default: all traffic to the new model
    assert [(v["name"], v["model_package_arn"], v["weight"]) for v in promoted] == [
        ("champion", "new", 1.0), ("previous", "old", 0.0)]
    with pytest.raises(DataError, match="all, canary"):
        variants.plan_variants("new", "old", 0.2, "half")


def test_classify_change():
    now = {"champion": ("m1", 0.9), "challenger": ("m2", 0.1)}
    assert variants.classify_change(None, now) == "create"
    assert variants.classify_change(now, dict(now)) == "none"
    assert variants.classify_change(now, {"champion": ("m1", 0.0), "challenger": ("m2", 1.0)}) == "weights"
    assert variants.classify_change(now, {"champion": ("m2", 1.0), "previous": ("m1", 0.0)}) == "variants"
    assert variants.classify_change(now, {"champion": ("m1", 1.0)}) == "variants"


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


def test_canary_deploy_updates_with_champion_and_challenger(sm, tmp_path):
    first = _register(sm)
    deploy.main(_args(first, tmp_path))
    _register(sm, status="Rejected")  # never becomes the champion
    second = _register(sm)
    calls = []
    # moto has no update_endpoint: record the call instead (the only stubbed call)
    sm.update_endpoint = lambda **kw: calls.append(kw) or {"EndpointArn": "arn"}
    deploy.main(_args(second, tmp_path, "--image-uri", IMAGE, "--traffic", "canary"))
    info = json.loads((tmp_path / "endpoint.json").read_text())
    assert info["action"] == "update" and info["change"] == "variants"
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


# --- promotion's traffic shift, request by request (botocore Stubber; moto has no update_endpoint) ---
EP, NEW, OLD = "outcomes-ep", "arn:aws:sagemaker:us-east-1:123456789012:model-package/outcomes/2", \
    "arn:aws:sagemaker:us-east-1:123456789012:model-package/outcomes/1"
EP_ARN = f"arn:aws:sagemaker:us-east-1:123456789012:endpoint/{EP}"
CFG_ARN = "arn:aws:sagemaker:us-east-1:123456789012:endpoint-config/cfg"
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
CAPTURE = {"EnableCapture": True, "InitialSamplingPercentage": 50, "DestinationS3Uri": "s3://bucket/capture",
           "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
           "CaptureContentTypeHeader": deploy_sagemaker.CAPTURE_TYPES,
           "KmsKeyId": "arn:aws:kms:us-east-1:123456789012:key/abc"}


def _pkg(arn):
    version = int(arn.rsplit("/", 1)[-1])
    return {"ModelPackageName": f"outcomes/{version}", "ModelPackageArn": arn, "CreationTime": T0,
            "ModelPackageStatus": "Completed", "ModelPackageStatusDetails": {"ValidationStatuses": []},
            "ModelPackageGroupName": "outcomes", "ModelPackageVersion": version,
            "ModelApprovalStatus": "Approved",
            "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": f"s3://b/{version}.tar.gz"}],
                                       "SupportedContentTypes": ["text/csv"],
                                       "SupportedResponseMIMETypes": ["application/json"]}}


def _variant(name, model, weight):
    return {"VariantName": name, "ModelName": model, "InitialInstanceCount": 1,
            "InstanceType": "ml.m5.large", "InitialVariantWeight": weight}


def _stub_models(stub, arns):
    """describe_model_package(new), list_model_packages, then each variant's create_model."""
    stub.add_response("describe_model_package", _pkg(NEW), {"ModelPackageName": NEW})
    stub.add_response("list_model_packages", {"ModelPackageSummaryList": [
        {"ModelPackageArn": a, "CreationTime": T0, "ModelPackageStatus": "Completed"} for a in (NEW, OLD)]},
        {"ModelPackageGroupName": "outcomes", "ModelApprovalStatus": "Approved", "SortBy": "CreationTime",
         "SortOrder": "Descending", "MaxResults": 100})
    for arn in arns:
        if arn != NEW:
            stub.add_response("describe_model_package", _pkg(arn), {"ModelPackageName": arn})
        stub.add_response("create_model", {"ModelArn": "arn:aws:sagemaker:us-east-1:123456789012:model/m"}, {
            "ModelName": f"{EP}-outcomes-v{arn[-1]}", "ExecutionRoleArn": ROLE,
            "PrimaryContainer": {"ModelPackageName": arn},
            "Tags": [{"Key": "clinical-ml:model-package", "Value": arn}]})


def _stub_endpoint(stub, weights, variants, config="cfg-1"):
    """describe_endpoint (current weights) + describe_endpoint_config (its variants)."""
    stub.add_response("describe_endpoint", {
        "EndpointName": EP, "EndpointArn": EP_ARN, "EndpointStatus": "InService", "CreationTime": T0,
        "LastModifiedTime": T0, "EndpointConfigName": config,
        "ProductionVariants": [{"VariantName": n, "CurrentWeight": w} for n, w in weights.items()]},
        {"EndpointName": EP})
    stub.add_response("describe_endpoint_config", {
        "EndpointConfigName": config, "EndpointConfigArn": CFG_ARN, "CreationTime": T0,
        "ProductionVariants": variants, "DataCaptureConfig": CAPTURE, "KmsKeyId": CAPTURE["KmsKeyId"]},
        {"EndpointConfigName": config})


def _run_stubbed(tmp_path, monkeypatch, stub_calls, *extra):
    sm = botocore.session.get_session().create_client(
        "sagemaker", region_name="us-east-1", aws_access_key_id="testing", aws_secret_access_key="testing")
    with Stubber(sm) as stub:
        stub_calls(stub)
        monkeypatch.setattr(deploy_sagemaker, "client", lambda service="sagemaker": sm)
        assert deploy.main(_args(NEW, tmp_path, *extra)) == 0
        stub.assert_no_pending_responses()
    return json.loads((tmp_path / "endpoint.json").read_text())


def test_promotion_makes_the_new_model_the_champion_with_all_traffic(tmp_path, monkeypatch):
    """Endpoint serving v1 alone; v2 promoted: a new config (champion v2 at 1.0, previous v1 at
    0.0) and update_endpoint, in exactly these requests."""
    def calls(stub):
        _stub_models(stub, [NEW, OLD])
        _stub_endpoint(stub, {"champion": 1.0}, [_variant("champion", f"{EP}-outcomes-v1", 1.0)])
        stub.add_response("create_endpoint_config", {"EndpointConfigArn": CFG_ARN}, {
            "EndpointConfigName": ANY, "KmsKeyId": CAPTURE["KmsKeyId"], "DataCaptureConfig": CAPTURE,
            "ProductionVariants": [_variant("champion", f"{EP}-outcomes-v2", 1.0),
                                   _variant("previous", f"{EP}-outcomes-v1", 0.0)]})
        stub.add_response("update_endpoint", {"EndpointArn": EP_ARN},
                          {"EndpointName": EP, "EndpointConfigName": ANY})
        stub.add_response("describe_endpoint", {
            "EndpointName": EP, "EndpointArn": EP_ARN, "EndpointStatus": "Updating", "CreationTime": T0,
            "LastModifiedTime": T0}, {"EndpointName": EP})

    info = _run_stubbed(tmp_path, monkeypatch, calls)
    assert (info["action"], info["change"], info["traffic"]) == ("update", "variants", "all")
    assert [(v["name"], v["model_package_arn"], v["weight"]) for v in info["variants"]] == [
        ("champion", NEW, 1.0), ("previous", OLD, 0.0)]
    assert info["endpoint_config_name"].startswith(EP)


def test_weights_only_change_uses_update_endpoint_weights_and_capacities(tmp_path, monkeypatch):
    """Same variants on the same models (a canary at 0.1 moved to 0.5): no new endpoint config."""
    def calls(stub):
        _stub_models(stub, [OLD, NEW])
        _stub_endpoint(stub, {"champion": 0.9, "challenger": 0.1},
                       [_variant("champion", f"{EP}-outcomes-v1", 0.9),
                        _variant("challenger", f"{EP}-outcomes-v2", 0.1)])
        stub.add_response("update_endpoint_weights_and_capacities", {"EndpointArn": EP_ARN}, {
            "EndpointName": EP, "DesiredWeightsAndCapacities": [
                {"VariantName": "champion", "DesiredWeight": 0.5},
                {"VariantName": "challenger", "DesiredWeight": 0.5}]})
        stub.add_response("describe_endpoint", {
            "EndpointName": EP, "EndpointArn": EP_ARN, "EndpointStatus": "Updating", "CreationTime": T0,
            "LastModifiedTime": T0, "EndpointConfigName": "cfg-1"}, {"EndpointName": EP})

    info = _run_stubbed(tmp_path, monkeypatch, calls, "--traffic", "canary", "--challenger-weight", "0.5")
    assert (info["action"], info["change"], info["endpoint_config_name"]) == ("update", "weights", "cfg-1")


def test_nothing_to_change_makes_no_update(tmp_path, monkeypatch):
    """Deploy rerun with what is deployed (champion v2 at 1.0, previous v1 at 0): no write calls."""
    def calls(stub):
        _stub_models(stub, [NEW, OLD])
        _stub_endpoint(stub, {"champion": 1.0, "previous": 0.0},
                       [_variant("champion", f"{EP}-outcomes-v2", 1.0),
                        _variant("previous", f"{EP}-outcomes-v1", 0.0)])
        stub.add_response("describe_endpoint", {
            "EndpointName": EP, "EndpointArn": EP_ARN, "EndpointStatus": "InService", "CreationTime": T0,
            "LastModifiedTime": T0, "EndpointConfigName": "cfg-1"}, {"EndpointName": EP})

    info = _run_stubbed(tmp_path, monkeypatch, calls)
    assert (info["action"], info["change"]) == ("update", "none")
