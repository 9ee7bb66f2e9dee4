"""Deploy to SageMaker hosting with boto3 (see ``inference/deploy.py`` for the variant design).

Idempotent by construction: models are named after the package (group + version) and reused
if they exist. The endpoint's current config is compared with the planned one
(``variants.classify_change``): when the same variants run the same models on the same instances
with the same capture, only the weights move (``update_endpoint_weights_and_capacities``: no new
instances, seconds); otherwise a new, timestamped endpoint config (configs are immutable) is
created and the endpoint created or pointed at it (``update_endpoint``: SageMaker swaps variants
without downtime). Nothing changes when the plan is what is deployed.
"""
from __future__ import annotations

import argparse
import datetime as dt
import re
from typing import Any

from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from inference.variants import check_package, classify_change, plan_variants, previous_approved

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


def _variant_keys(cfg: dict[str, Any]) -> dict[str, tuple[Any, float]]:
    """``{variant: (model, instances, capture), weight}`` of an endpoint config, for classify_change."""
    cap = cfg.get("DataCaptureConfig") or {}
    capture = tuple(cap.get(k) for k in ("EnableCapture", "InitialSamplingPercentage",
                                         "DestinationS3Uri", "KmsKeyId"))
    return {v["VariantName"]: ((v["ModelName"], v.get("InstanceType"), v.get("InitialInstanceCount"),
                                capture, cfg.get("KmsKeyId")), float(v.get("InitialVariantWeight", 1.0)))
            for v in cfg["ProductionVariants"]}


def current_variants(sm, name: str) -> dict[str, tuple[Any, float]] | None:
    """The endpoint's variants as deployed, weights as they are now (None: no such endpoint)."""
    try:
        ep = sm.describe_endpoint(EndpointName=name)
    except sm.exceptions.ClientError as e:
        if "Could not find" in str(e) or "ValidationException" in str(e):
            return None
        raise
    keys = _variant_keys(sm.describe_endpoint_config(EndpointConfigName=ep["EndpointConfigName"]))
    now = {v["VariantName"]: v.get("CurrentWeight") for v in ep.get("ProductionVariants") or []}
    return {n: (k, float(now[n]) if now.get(n) is not None else w) for n, (k, w) in keys.items()}


def apply(sm, args: argparse.Namespace, variants: list[dict[str, Any]]) -> tuple[str, str, dict[str, Any]]:
    """Make the endpoint serve ``variants``: (action, change, the planned endpoint config, which
    is created only when the change is ``create`` or ``variants``)."""
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%d%H%M%S%f")[:-3]
    cfg = endpoint_config(_name(args.endpoint_name[:44], stamp), variants, args)
    change = classify_change(current_variants(sm, args.endpoint_name), _variant_keys(cfg))
    if change == "none":
        return "update", change, cfg
    if change == "weights":
        sm.update_endpoint_weights_and_capacities(
            EndpointName=args.endpoint_name,
            DesiredWeightsAndCapacities=[{"VariantName": v["name"], "DesiredWeight": v["weight"]}
                                         for v in variants])
        return "update", change, cfg
    sm.create_endpoint_config(**cfg)
    if change == "create":
        sm.create_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=cfg["EndpointConfigName"])
        return "create", change, cfg
    sm.update_endpoint(EndpointName=args.endpoint_name, EndpointConfigName=cfg["EndpointConfigName"])
    return "update", change, cfg


def deploy(args: argparse.Namespace, sm=None) -> dict[str, Any]:
    sm = sm or client()
    if not args.role_arn:
        raise DataError("--role-arn (or ROLE_ARN) is required to create SageMaker models")
    new = sm.describe_model_package(ModelPackageName=args.model_package_arn)
    check_package(new, args.require_approval == "true")
    group = args.model_package_group or new.get("ModelPackageGroupName")
    champion = previous_approved(list_approved(sm, group), new["ModelPackageArn"]) if group else None
    variants = plan_variants(new["ModelPackageArn"], champion, args.challenger_weight, args.traffic)
    for v in variants:
        desc = new if v["model_package_arn"] == new["ModelPackageArn"] else \
            sm.describe_model_package(ModelPackageName=v["model_package_arn"])
        v["model_package_version"] = _group_and_version(desc)[1]
        v["model_name"] = ensure_model(sm, desc, args.endpoint_name, args.role_arn, args.image_uri)
    action, change, cfg = apply(sm, args, variants)
    config_name = cfg["EndpointConfigName"] if change in ("create", "variants") else None
    if args.wait:
        sm.get_waiter("endpoint_in_service").wait(EndpointName=args.endpoint_name)
    ep = sm.describe_endpoint(EndpointName=args.endpoint_name)
    region = sm.meta.region_name
    return {"backend": "sagemaker", "endpoint_name": args.endpoint_name,
            "endpoint_arn": ep.get("EndpointArn"), "endpoint_status": ep.get("EndpointStatus"),
            "endpoint_config_name": config_name or ep.get("EndpointConfigName"), "action": action,
            "change": change, "traffic": args.traffic,
            "url": f"https://runtime.sagemaker.{region}.amazonaws.com/endpoints/{args.endpoint_name}/invocations",
            "variants": variants, "model_package_group": group,
            "data_capture": cfg.get("DataCaptureConfig")}


def delete(args: argparse.Namespace) -> None:
    raise DataError("--delete is for the local backend; delete SageMaker endpoints with "
                    "`aws sagemaker delete-endpoint`")
