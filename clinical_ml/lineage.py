"""Model lineage: from a registered model version back to its data, code, parameters and the
evaluation it passed.

Nothing is stored twice: the registry entry (local ``runs/registry`` or SageMaker's Model
Registry) says which model data and which metrics file belong to the version; the model's own
``metadata.json`` (written by the training step) holds the data manifest hash, code version and
hyperparameters; the metrics file is the evaluation step's ``model_metrics.json``/
``evaluation.json``. ``clinical-ml lineage`` joins them and exits 1 naming what is missing.

MODEL_VERSION is a model package ARN, ``<group>/<version>`` or ``<group>`` (latest version).
"""
from __future__ import annotations

import argparse
import io
import json
import os
import sys
import tarfile
from pathlib import Path
from typing import Any, Callable

from clinical_ml.io import DataError

REQUIRED = ("data_manifest_sha256", "code_version", "hyperparameters", "evaluation")


def _reader(s3_client: Any = None) -> Callable[[str], bytes]:
    """Read bytes from a local path or an s3:// URI."""
    def read(uri: str) -> bytes:
        if uri.startswith("s3://"):
            import boto3

            bucket, _, key = uri[5:].partition("/")
            client = s3_client or boto3.client("s3")
            return client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return Path(uri).read_bytes()
    return read


def model_metadata(model_data: str, read: Callable[[str], bytes]) -> dict[str, Any]:
    """``metadata.json`` of a model given as a folder or a ``model.tar.gz`` (local or s3)."""
    if not model_data.startswith("s3://") and Path(model_data).is_dir():
        p = Path(model_data) / "metadata.json"
        return json.loads(p.read_text()) if p.exists() else {}
    with tarfile.open(fileobj=io.BytesIO(read(model_data)), mode="r:gz") as tar:
        for name in ("metadata.json", "./metadata.json"):
            try:
                return json.load(tar.extractfile(name))
            except KeyError:
                continue
    return {}


def _metric_uris(model_metrics: dict[str, Any]) -> list[str]:
    uris = []
    for section in model_metrics.values():
        if isinstance(section, dict):
            for item in section.values():
                if isinstance(item, dict) and item.get("S3Uri"):
                    uris.append(item["S3Uri"])
    return uris


def lineage_of(package: dict[str, Any], read: Callable[[str], bytes]) -> dict[str, Any]:
    """Join a DescribeModelPackage response with the model's metadata and its metrics."""
    container = package["InferenceSpecification"]["Containers"][0]
    model_data = container["ModelDataUrl"]
    meta = model_metadata(model_data, read)
    evaluation: dict[str, Any] = {}
    sources = []
    for uri in _metric_uris(package.get("ModelMetrics", {})):
        try:
            doc = json.loads(read(uri))
        except (OSError, ValueError, KeyError):
            continue
        if isinstance(doc, dict):
            sources.append(uri)
            # evaluation.json carries the gate the pipeline condition checked; a registry
            # ModelMetrics file (model_metrics.json) is kept whole
            evaluation.update(doc["gate"] if "gate" in doc else {"model_metrics": doc})
    custom = package.get("CustomerMetadataProperties", {})
    return {
        "model_package_arn": package["ModelPackageArn"],
        "group": package["ModelPackageGroupName"],
        "version": package["ModelPackageVersion"],
        "approval_status": package["ModelApprovalStatus"],
        "created": str(package.get("CreationTime")),
        "model_data": model_data,
        "image": container.get("Image", ""),
        "data_manifest_sha256": meta.get("data_manifest_sha256") or custom.get("data_manifest_sha256"),
        "code_version": meta.get("code_version") or custom.get("code_version"),
        "hyperparameters": meta.get("hyperparameters"),
        "model_type": meta.get("model_type"),
        "evaluation": evaluation or None,
        "evaluation_sources": sources,
        "mlflow_run_id": custom.get("mlflow_run_id") or None,  # the run TrackRuns logged (MLflow)
        "customer_metadata": custom,
    }


def missing(lineage: dict[str, Any]) -> list[str]:
    return [k for k in REQUIRED if not lineage.get(k)]


def _describe(ref: str, backend: str, registry: str) -> dict[str, Any]:
    if backend == "local":
        from clinical_ml.registry import LocalRegistry, package_arn

        reg = LocalRegistry(registry)
        if ref.startswith("arn:"):
            return reg.describe_model_package(ref)
        group, _, version = ref.partition("/")
        if version:
            return reg.describe_model_package(package_arn(group, int(version)))
        packages = reg.list_model_packages(group)
        if not packages:
            raise DataError(f"model package group {group!r} has no versions under {registry}")
        return reg.describe_model_package(packages[0]["ModelPackageArn"])
    import boto3

    sm = boto3.client("sagemaker")
    if not ref.startswith("arn:"):
        group, _, version = ref.partition("/")
        summaries = sm.list_model_packages(ModelPackageGroupName=group, SortBy="CreationTime",
                                           SortOrder="Descending")["ModelPackageSummaryList"]
        match = [s for s in summaries if not version or str(s.get("ModelPackageVersion")) == version]
        if not match:
            raise DataError(f"no model package {ref!r} in the SageMaker Model Registry")
        ref = match[0]["ModelPackageArn"]
    return sm.describe_model_package(ModelPackageName=ref)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="clinical-ml lineage", description=__doc__.split("\n\n")[0])
    p.add_argument("model_version", help="model package ARN, <group>/<version> or <group>")
    p.add_argument("--registry", default=os.environ.get("CLINICAL_ML_REGISTRY", "runs/registry"),
                   help="local registry folder (local backend)")
    p.add_argument("--backend", choices=["local", "sagemaker"],
                   default=os.environ.get("CLINICAL_ML_LINEAGE_BACKEND", "local"))
    args = p.parse_args(argv)
    lineage = lineage_of(_describe(args.model_version, args.backend, args.registry), _reader())
    print(json.dumps(lineage, indent=2, default=str))
    gaps = missing(lineage)
    if gaps:
        print(f"lineage: {lineage['model_package_arn']}: incomplete, missing {', '.join(gaps)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
