"""Local model registry: versions, approval, boto3-shaped responses, no half-written versions."""
from __future__ import annotations

import datetime as dt
import json
from concurrent.futures import ThreadPoolExecutor

import pytest

from clinical_ml.io import DataError
from clinical_ml.registry import LocalRegistry, parse_arn, to_json


@pytest.fixture
def reg(tmp_path):
    r = LocalRegistry(tmp_path / "registry")
    r.create_model_package_group("outcomes", "outcome models")
    return r


@pytest.fixture
def tarball(tmp_path):
    p = tmp_path / "model.tar.gz"
    p.write_bytes(b"not really a tarball")
    return p


def test_versions_increment_and_describe_is_boto3_shaped(reg, tarball):
    a1 = reg.create_model_package("outcomes", tarball, "PendingManualApproval",
                                  model_metrics={"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": "x"}}},
                                  customer_metadata={"trigger": "manual", "auroc": 0.8})
    a2 = reg.create_model_package("outcomes", tarball, "Approved")
    assert a1 == "arn:aws:sagemaker:local:000000000000:model-package/outcomes/1"
    assert parse_arn(a2) == ("outcomes", 2)
    d = reg.describe_model_package(a1)
    assert d["ModelPackageGroupName"] == "outcomes" and d["ModelPackageVersion"] == 1
    assert d["ModelApprovalStatus"] == "PendingManualApproval"
    assert d["CustomerMetadataProperties"] == {"trigger": "manual", "auroc": "0.8"}
    assert d["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"] == "x"
    assert isinstance(d["CreationTime"], dt.datetime)
    url = d["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert url.endswith("outcomes/1/model.tar.gz") and open(url, "rb").read() == b"not really a tarball"
    json.dumps(to_json(d))  # serializable for summary.json


def test_list_newest_first_filter_and_update(reg, tarball):
    arns = [reg.create_model_package("outcomes", tarball, "PendingManualApproval") for _ in range(3)]
    assert [s["ModelPackageVersion"] for s in reg.list_model_packages("outcomes")] == [3, 2, 1]
    assert reg.list_model_packages("outcomes", approval_status="Approved") == []
    assert reg.latest_approved("outcomes") is None
    reg.update_model_package(arns[1], "Approved")
    approved = reg.list_model_packages("outcomes", approval_status="Approved")
    assert [s["ModelPackageArn"] for s in approved] == [arns[1]]
    assert reg.latest_approved("outcomes")["ModelPackageVersion"] == 2


def test_bad_inputs_name_the_problem(reg, tarball, tmp_path):
    with pytest.raises(DataError, match="approval status"):
        reg.create_model_package("outcomes", tarball, "Yes")
    with pytest.raises(DataError, match="not found"):
        reg.create_model_package("missing-group", tarball, "Approved")
    with pytest.raises(DataError, match="model data not found"):
        reg.create_model_package("outcomes", tmp_path / "nope.tar.gz", "Approved")
    with pytest.raises(DataError, match="not a model package ARN"):
        reg.describe_model_package("arn:aws:sagemaker:x")
    with pytest.raises(DataError, match="naming rule"):
        reg.create_model_package_group("bad name!")
    # the failed create left no version behind
    assert reg.list_model_packages("outcomes") == []
    assert not any(p.name.isdigit() for p in (reg.root / "outcomes").iterdir())


def test_group_create_is_idempotent_and_dir_models_copied(reg, tmp_path):
    assert reg.create_model_package_group("outcomes") == reg.create_model_package_group("outcomes")
    assert reg.describe_model_package_group("outcomes")["ModelPackageGroupDescription"] == "outcome models"
    mdir = tmp_path / "m"
    mdir.mkdir()
    (mdir / "metadata.json").write_text("{}")
    arn = reg.create_model_package("outcomes", mdir, "Approved")
    url = reg.describe_model_package(arn)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    assert (tmp_path / "registry/outcomes/1/model/metadata.json").samefile(url + "/metadata.json")
    s3 = reg.create_model_package("outcomes", "s3://b/k/model.tar.gz", "Approved")
    assert reg.describe_model_package(s3)["InferenceSpecification"]["Containers"][0]["ModelDataUrl"] == "s3://b/k/model.tar.gz"


def test_concurrent_registrations_get_distinct_versions(reg, tarball):
    with ThreadPoolExecutor(8) as ex:
        arns = list(ex.map(lambda _: reg.create_model_package("outcomes", tarball, "Approved"), range(16)))
    assert sorted(parse_arn(a)[1] for a in arns) == list(range(1, 17))


def test_incomplete_version_folder_is_skipped(reg, tarball):
    (reg.root / "outcomes" / "1").mkdir()  # a killed writer's leftover
    arn = reg.create_model_package("outcomes", tarball, "Approved")
    assert parse_arn(arn)[1] == 2
    assert [s["ModelPackageVersion"] for s in reg.list_model_packages("outcomes")] == [2]
