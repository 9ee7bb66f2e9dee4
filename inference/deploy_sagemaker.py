"""Deploy to SageMaker hosting with boto3 (see ``inference/deploy.py`` for the variant design).

Idempotent by construction: models are named after the package (group + version) and reused
if they exist; every run creates a new, timestamped endpoint config (configs are immutable) and
then creates the endpoint or points the existing one at the new config (``update_endpoint``:
SageMaker swaps variants without downtime).
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any

from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from inference.deploy import check_package, plan_variants, previous_approved

log = get_logger(__name__)
CAPTURE_TYPES = {"CsvContentTypes": ["text/csv"],
                 "JsonContentTypes": ["application/json", "application/jsonlines"]}


def client(service: str = "sagemaker"):
    import boto3  # noqa: PLC0415

    return boto3.client(service)


def _name(*parts: str, limit: int = 63) -> str:
    """A SageMaker resource name: [a-zA-Z0-9-], no leading/trailing or double hyphens."""
    s = re.sub(r"-+", "-", re.sub(r"[^a-zA-Z0-9-]", "-", "-".join(p for p in parts if p))).strip("-")
    return s[:limit].rstrip("-")


def _group_and_version(desc: dict[str, Any]) -> tuple[str, str]:
    group = desc.get("ModelPackageGroupName") or ""
    version = str(desc.get("ModelPackageVersion") or desc["ModelPackageArn"].rsplit("/", 1)[-1])
    return group, version


def list_approved(sm, group: str) -> list[dict[str, Any]]:
    out, token = [], None
    while True:
        kw = {"ModelPackageGroupName": group, "ModelApprovalStatus": "Approved",
              "SortBy": "CreationTime", "SortOrder": "Descending", "MaxResults": 100}
        if token:
            kw["NextToken"] = token
        page = sm.list_model_packages(**kw)
        out += page.get("ModelPackageSummaryList", [])
        token = page.get("NextToken")
        if not token:
            return out


def ensure_model(sm, desc: dict[str, Any], endpoint: str, role_arn: str, image_uri: str | None) -> str:
    """A SageMaker Model for the package (reused if it already exists)."""
    group, version = _group_and_version(desc)
    name = _name(endpoint, group[-30:], f"v{version}")
    if image_uri:  # explicit image: run the package's model data in our serving image
        container = {"Image": image_uri, "Mode": "SingleModel",
                     "ModelDataUrl": desc["InferenceSpecification"]["Containers"][0]["ModelDataUrl"],
                     "Environment": {"SAGEMAKER_PROGRAM": "serve"}}
    else:
        container = {"ModelPackageName": desc["ModelPackageArn"]}
    try:
        sm.create_model(ModelName=name, ExecutionRoleArn=role_arn, PrimaryContainer=container,
                        Tags=[{"Key": "clinical-ml:model-package", "Value": desc["ModelPackageArn"]}])
        log.info("created model %s", name)
    except sm.exceptions.ClientError as e:
        if "already exist" not in str(e):
            raise
        log.info("model %s exists; reusing it", name)
    return name


def endpoint_config(name: str, variants: list[dict[str, Any]], args: argparse.Namespace) -> dict[str, Any]:
    """CreateEndpointConfig arguments: production variants and data capture (KMS)."""
    cfg: dict[str, Any] = {
        "EndpointConfigName": name,
        "ProductionVariants": [{
            "VariantName": v["name"], "ModelName": v["model_name"],
            "InitialInstanceCount": args.instance_count, "InstanceType": args.instance_type,
            "InitialVariantWeight": v["weight"]} for v in variants],
    }
    if args.capture_uri:
        capture = {"EnableCapture": args.capture_percent > 0,
                   "InitialSamplingPercentage": int(round(args.capture_percent)),
                   "DestinationS3Uri": args.capture_uri,
                   "CaptureOptions": [{"CaptureMode": "Input"}, {"CaptureMode": "Output"}],
                   "CaptureContentTypeHeader": CAPTURE_TYPES}
        if args.kms_key_id:
            capture["KmsKeyId"] = args.kms_key_id
        cfg["DataCaptureConfig"] = capture
    if args.kms_key_id:
        cfg["KmsKeyId"] = args.kms_key_id  # the instances' storage volumes
    return cfg


def endpoint_exists(sm, name: str) -> bool:
    try:
        sm.describe_endpoint(EndpointName=name)
        return True
    except sm.exceptions.ClientError as e:
        if "Could not find" in str(e) or "ValidationException" in str(e):
            return False
        raise


def deploy(args: argparse.Namespace, sm=None) -> dict[str, Any]:
    sm = sm or client()
    if not args.role_arn:
        raise DataError("--role-arn (or ROLE_ARN) is required to create SageMaker models")
    new = sm.describe_model_package(ModelPackageName=args.model_package_arn)
    check_package(new, args.require_approval == "true")
    group = args.model_package_group or new.get("ModelPackageGroupName")
    champion = previous_approved(list_approved(sm, group), new["ModelPackageArn"]) if group else None
    variants = plan_variants(new["ModelPackageArn"], champion, args.challenger_weight)
    for v in variants:
        desc = new if v["model_package_arn"] == new["ModelPackageArn"] else \
            sm.describe_model_package(ModelPackageName=v["model_package_arn"])
        v["model_package_version"] = _group_and_version(desc)[1]
        v["model_name"] = ensure_model(sm, desc, args.endpoint_name, args.role_arn, args.image_uri)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S%f")[:-3]
    cfg = endpoint_config(_name(args.endpoint_name[:44], stamp), variants, args)
    sm.create_endpoint_config(**cfg)
    if endpoint_exists(sm, args.endpoint_name):
        action = "update"
        sm.update_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=cfg["EndpointConfigName"])
    else:
        action = "create"
        sm.create_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=cfg["EndpointConfigName"])
    if args.wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=args.endpoint_name)
    ep = sm.describe_endpoint(EndpointName=args.endpoint_name)
    region = sm.meta.region_name
    return {"backend": "sagemaker", "endpoint_name": args.endpoint_name,
            "endpoint_arn": ep.get("EndpointArn"), "endpoint_status": ep.get("EndpointStatus"),
            "endpoint_config_name": cfg["EndpointConfigName"], "action": action,
            "url": f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{args.endpoint_name}/invocations",
            "variants": variants, "model_package_group": group,
            "data_capture": cfg.get("DataCaptureConfig")}


def delete(args: argparse.Namespace) -> None:
    raise DataError("--delete is for the local backend; delete SageMaker endpoints with "
                    "`aws sagemaker delete-endpoint`")
