"""The production (champion) outcome model: the newest Approved version of a model package group.

CompareModels looks the champion up when it runs, not when the pipeline is defined or started:
EventBridge starts a drift retraining with static parameters, so "what is serving now" cannot
be a parameter. The lookup is the one the Deploy step makes (``inference/deploy.py``: the
endpoint's champion variant is the newest Approved package), with the same calls on both
backends:

- ``sagemaker``: ``ListModelPackages(ModelPackageGroupName, ModelApprovalStatus="Approved",
  SortBy="CreationTime", SortOrder="Descending", MaxResults=1)`` then ``DescribeModelPackage``;
  the package's ``ModelDataUrl`` (an ``s3://`` model.tar.gz) is downloaded;
- ``local`` (the local runner, ``CLINICAL_ML_BACKEND=local``): ``clinical_ml.registry.LocalRegistry``
  at ``$CLINICAL_ML_REGISTRY`` (the runner's ``runs/registry``), whose ``ModelDataUrl`` is a
  local copy (``s3://`` ones map under ``$CLINICAL_ML_S3_ROOT``).

No Approved version (the first execution, or every earlier one rejected): ``None``; the
comparison then promotes with the reason "no production model".
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, backend, localize


def _sagemaker_client():
    import boto3  # noqa: PLC0415

    return boto3.client("sagemaker")


def _s3_client():
    import boto3  # noqa: PLC0415

    return boto3.client("s3")


def latest_approved(group: str, *, sm: Any = None, which: str | None = None) -> dict[str, Any] | None:
    """DescribeModelPackage of the newest Approved version of ``group``, or None."""
    which = which or backend()
    if which == "local":
        from clinical_ml.registry import LocalRegistry  # noqa: PLC0415

        root = os.environ.get("CLINICAL_ML_REGISTRY")
        if not root:
            raise DataError("CLINICAL_ML_REGISTRY is not set: the local runner sets it to runs/registry "
                            "(or pass --champion PATH|none)")
        return LocalRegistry(root).latest_approved(group)
    sm = sm or _sagemaker_client()
    page = sm.list_model_packages(ModelPackageGroupName=group, ModelApprovalStatus="Approved",
                                  SortBy="CreationTime", SortOrder="Descending", MaxResults=1)
    items = page.get("ModelPackageSummaryList", [])
    if not items:
        return None
    return sm.describe_model_package(ModelPackageName=items[0]["ModelPackageArn"])


def model_data_url(desc: dict[str, Any]) -> str:
    try:
        return desc["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    except (KeyError, IndexError, TypeError):
        raise DataError(f"model package {desc.get('ModelPackageArn')}: no InferenceSpecification.Containers[0]."
                        "ModelDataUrl; register the outcome model with its model.tar.gz") from None


def fetch_model_data(url: str, dest: Path, s3: Any = None) -> Path:
    """The package's model data as a local path (a model.tar.gz or a model folder): local paths
    and (local backend) ``s3://`` under ``$CLINICAL_ML_S3_ROOT`` as they are, else downloaded."""
    path = localize(url)
    if not path.startswith("s3://"):
        p = Path(path[len("file://"):] if path.startswith("file://") else path)
        if not p.exists():
            raise DataError(f"{p}: the production model's data ({url}) is not there")
        return p
    bucket, _, key = path[len("s3://"):].partition("/")
    if not key.endswith(".tar.gz"):
        raise DataError(f"{url}: expected the s3:// URI of a model.tar.gz (the training job's model artifact)")
    s3 = s3 or _s3_client()
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "model.tar.gz"
    s3.download_file(bucket, key, str(out))
    return out


def production_model(group: str, dest: Path, *, sm: Any = None, s3: Any = None,
                     which: str | None = None) -> tuple[Path | None, dict[str, Any]]:
    """(local model path or None, what was found): the champion CompareModels scores."""
    which = which or backend()
    desc = latest_approved(group, sm=sm, which=which)
    info: dict[str, Any] = {"source": "model registry", "backend": which, "model_package_group": group,
                            "model_package_arn": None}
    if desc is None:
        return None, info
    url = model_data_url(desc)
    created = desc.get("CreationTime")
    info.update(model_package_arn=desc["ModelPackageArn"], model_package_version=desc.get("ModelPackageVersion"),
                approval_status=desc.get("ModelApprovalStatus"), model_data_url=url,
                creation_time=created.isoformat() if hasattr(created, "isoformat") else created)
    return fetch_model_data(url, dest, s3), info
