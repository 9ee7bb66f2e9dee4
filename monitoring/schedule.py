"""Drift schedule (processing step): run the drift job every hour on the endpoint's capture.

    python -m monitoring.schedule --endpoint-name clinical-ml-outcomes \
        --baseline-uri s3://bucket/baseline/ --capture-uri s3://bucket/capture/ ...

SageMaker backend: an EventBridge Scheduler schedule (``--cron``, default
``cron(5 * * * ? *)``: five minutes past every hour, once the past hour's capture files are
closed) whose universal target ``arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob``
creates one drift processing job per run, named after the scheduler's execution id and told its
scheduled time (``--window-end <aws.scheduler.scheduled-time>``; the job analyses the hour
before). Created or updated in place (idempotent). Local backend: only ``schedule.json``, which
the local runner reads to run ``monitoring/drift_job.py`` itself.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, backend, localize, read_json, write_json
from clinical_ml.logs import get_logger
from clinical_ml.monitor.env import processing_path

log = get_logger("monitoring.schedule")
DEFAULT_CRON = "cron(5 * * * ? *)"
TARGET_ARN = "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="monitoring.schedule", description=__doc__.splitlines()[0])
    p.add_argument("--endpoint-name", default=os.environ.get("ENDPOINT_NAME"))
    p.add_argument("--deploy-info", default=processing_path("input/deploy"),
                   help="the deploy step's output (folder or s3:// prefix holding endpoint.json); "
                        "its endpoint name wins over --endpoint-name")
    p.add_argument("--schedule-name", default=None, help="default: <endpoint>-drift")
    p.add_argument("--cron", "--schedule-expression", dest="cron", default=DEFAULT_CRON)
    p.add_argument("--baseline-uri", default=None,
                   help="s3:// prefix of the baseline the scheduled job reads (default: the S3 URI of this "
                        "step's 'baseline' input; local backend: /opt/ml/processing/input/baseline)")
    p.add_argument("--drift-threshold", type=float, default=None,
                   help="comparison_threshold override passed to the drift job (practical L-inf floor)")
    p.add_argument("--kms-key-id", default="", help="KMS key for the drift job's volume and outputs")
    p.add_argument("--capture-uri", default=None, help="data-capture destination (s3:// or folder)")
    p.add_argument("--output-uri", default=None, help="where drift job outputs go (s3:// prefix)")
    p.add_argument("--image-uri", default=os.environ.get("CLINICAL_ML_IMAGE_URI", ""))
    p.add_argument("--role-arn", default=os.environ.get("SAGEMAKER_ROLE_ARN", ""))
    p.add_argument("--scheduler-role-arn", default=os.environ.get("SCHEDULER_ROLE_ARN"),
                   help="role EventBridge Scheduler assumes (default: --role-arn)")
    p.add_argument("--instance-type", default="ml.m5.large")
    p.add_argument("--output", "--output-dir", dest="output", default=processing_path("output/schedule"))
    return p.parse_args(argv)


def _deploy_doc(deploy_info: str) -> dict | None:
    uri = localize(deploy_info)
    if uri.startswith("s3://"):
        import boto3
        bucket, _, key = uri[5:].partition("/")
        key = key.rstrip("/") + "/endpoint.json" if not key.endswith(".json") else key
        try:
            body = boto3.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read()
        except Exception as e:  # noqa: BLE001 - any S3 error: fall back to --endpoint-name
            log.warning("schedule: could not read endpoint.json from the deploy output (%s)", type(e).__name__)
            return None
        return json.loads(body)
    p = Path(uri)
    p = p if p.suffix == ".json" else p / "endpoint.json"
    return read_json(p) if p.is_file() else None


def processing_input_uri(name: str, config: str = "/opt/ml/config/processingjobconfig.json") -> str | None:
    """The S3 URI a processing input came from: SageMaker writes the job's request to
    ``/opt/ml/config/processingjobconfig.json`` inside every processing container."""
    p = Path(config)
    if p.is_file():
        for inp in read_json(p).get("ProcessingInputs", []):
            if inp.get("InputName") == name and "S3Input" in inp:
                return inp["S3Input"]["S3Uri"]
    return None


def endpoint_name(args: argparse.Namespace) -> str:
    doc = _deploy_doc(args.deploy_info) if args.deploy_info else None
    for k in ("endpoint_name", "EndpointName", "endpoint"):
        if doc and isinstance(doc.get(k), str) and doc[k]:
            return doc[k]
    if args.endpoint_name:
        return args.endpoint_name
    raise DataError(f"no endpoint name: pass --endpoint-name or the deploy step's output ({args.deploy_info})")


def drift_arguments(endpoint: str, schedule: str, threshold: float | None = None) -> list[str]:
    args = ["--capture", "/opt/ml/processing/input/capture", "--baseline", "/opt/ml/processing/input/baseline",
            "--output", "/opt/ml/processing/output/drift", "--endpoint", endpoint, "--schedule", schedule]
    return args + (["--comparison-threshold", str(threshold)] if threshold is not None else [])


def processing_job_request(args: argparse.Namespace, endpoint: str, schedule: str) -> dict[str, Any]:
    """CreateProcessingJob request for one scheduled drift run (scheduler context attributes inside)."""
    if not (args.capture_uri and args.image_uri and args.role_arn):
        raise DataError("sagemaker backend needs --capture-uri, --image-uri and --role-arn")
    if not str(args.baseline_uri or "").startswith("s3://"):
        raise DataError("sagemaker backend needs --baseline-uri s3://... (the DriftBaseline step's output "
                        "URI): the scheduled job runs long after this step's local copy is gone")
    output_uri = args.output_uri or args.capture_uri.rstrip("/").rsplit("/", 1)[0] + "/drift"

    def s3in(name: str, uri: str) -> dict:
        return {"InputName": name, "S3Input": {"S3Uri": uri, "LocalPath": f"/opt/ml/processing/input/{name}",
                                               "S3DataType": "S3Prefix", "S3InputMode": "File"}}
    return {
        "ProcessingJobName": "drift-<aws.scheduler.execution-id>",
        "RoleArn": args.role_arn,
        "AppSpecification": {"ImageUri": args.image_uri,
                             "ContainerEntrypoint": ["python", "-m", "monitoring.drift_job"],
                             "ContainerArguments": drift_arguments(endpoint, schedule, args.drift_threshold)
                             + ["--window-end", "<aws.scheduler.scheduled-time>"]},
        "ProcessingInputs": [s3in("capture", args.capture_uri.rstrip("/") + f"/{endpoint}/"),
                             s3in("baseline", args.baseline_uri)],
        "ProcessingOutputConfig": {"Outputs": [{"OutputName": "drift", "S3Output": {
            "S3Uri": output_uri.rstrip("/") + f"/{schedule}/<aws.scheduler.execution-id>/",
            "LocalPath": "/opt/ml/processing/output/drift", "S3UploadMode": "EndOfJob"}}],
            **({"KmsKeyId": args.kms_key_id} if args.kms_key_id else {})},
        "ProcessingResources": {"ClusterConfig": {"InstanceCount": 1, "InstanceType": args.instance_type,
                                                  "VolumeSizeInGB": 30,
                                                  **({"VolumeKmsKeyId": args.kms_key_id} if args.kms_key_id else {})}},
        "StoppingCondition": {"MaxRuntimeInSeconds": 3000},
        "Environment": {"ENDPOINT_NAME": endpoint, "MONITORING_SCHEDULE_NAME": schedule},
    }


def upsert_schedule(client: Any, name: str, cron: str, target: dict) -> str:
    """Create or update the schedule; returns its ARN."""
    kwargs = {"Name": name, "ScheduleExpression": cron, "ScheduleExpressionTimezone": "UTC",
              "FlexibleTimeWindow": {"Mode": "OFF"}, "State": "ENABLED", "Target": target,
              "Description": "clinical-ml drift job: captured traffic vs baseline"}
    try:
        client.get_schedule(Name=name)
        return client.update_schedule(**kwargs)["ScheduleArn"]
    except client.exceptions.ResourceNotFoundException:
        return client.create_schedule(**kwargs)["ScheduleArn"]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    endpoint = endpoint_name(args)
    schedule = args.schedule_name or f"{endpoint}-drift"
    baseline = args.baseline_uri or processing_path("input/baseline")
    doc: dict[str, Any] = {"schedule_name": schedule, "cron": args.cron, "timezone": "UTC",
                           "endpoint_name": endpoint, "backend": backend(), "baseline_uri": baseline,
                           "capture_uri": args.capture_uri, "drift_threshold": args.drift_threshold,
                           "drift_job": {"script": "monitoring/drift_job.py",
                                         "arguments": drift_arguments(endpoint, schedule, args.drift_threshold)}}
    if backend() == "local" and not str(baseline).startswith("s3://"):
        # the step's input folder is a run-scoped copy: keep the baseline next to schedule.json
        import shutil
        src = Path(baseline)
        if src.is_dir():
            dst = Path(args.output) / "baseline"
            shutil.copytree(src, dst, dirs_exist_ok=True)
            # relative to schedule.json: the runner renames the step folder when it succeeds
            doc["baseline_uri"] = "baseline"
    if backend() == "local":
        # concrete arguments for the local runner's hourly run (it adds --output/--window-end)
        capture = localize(args.capture_uri) if args.capture_uri else None
        doc["local_drift_arguments"] = (
            (["--capture", str(Path(capture) / endpoint)] if capture else [])
            + ["--baseline", doc["baseline_uri"], "--endpoint", endpoint, "--schedule", schedule]
            + (["--comparison-threshold", str(args.drift_threshold)] if args.drift_threshold is not None else []))
    if backend() != "local":
        import boto3
        args.baseline_uri = args.baseline_uri or processing_input_uri("baseline")
        request = processing_job_request(args, endpoint, schedule)
        target = {"Arn": TARGET_ARN, "RoleArn": args.scheduler_role_arn or args.role_arn,
                  "Input": json.dumps(request), "RetryPolicy": {"MaximumRetryAttempts": 2}}
        doc["schedule_arn"] = upsert_schedule(boto3.client("scheduler"), schedule, args.cron, target)
        doc["target"] = {"arn": TARGET_ARN, "processing_job": request}
    write_json(Path(args.output) / "schedule.json", doc)
    log.info("schedule: %s %s (%s backend)", schedule, args.cron, backend())
    return 0


if __name__ == "__main__":
    sys.exit(main())
