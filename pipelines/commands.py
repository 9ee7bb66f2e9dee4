"""``clinical-ml definition | upsert-pipeline | run-pipeline`` (``make definition``,
``make upsert-pipeline``, ``make run-pipeline``).

Settings come from flags, else the environment: AWS_REGION, AWS_ENDPOINT_URL (e.g. a moto
server), ROLE_ARN, BUCKET, PIPELINE_NAME, plus optional EVENTS_ROLE_ARN, SCHEDULER_ROLE_ARN,
KMS_KEY_ID, ENDPOINT_NAME, SUBNET_IDS, SECURITY_GROUP_IDS, RETRAIN_SCHEDULE.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from clinical_ml.io import DataError, write_text


def _build_parser(prog: str, description: str) -> argparse.ArgumentParser:
    env = os.environ.get
    p = argparse.ArgumentParser(prog=f"clinical-ml {prog}", description=description)
    p.add_argument("--region", default=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--role-arn", default=env("ROLE_ARN"), help="SageMaker execution role (ROLE_ARN)")
    p.add_argument("--bucket", default=env("BUCKET"), help="artifact bucket (BUCKET; default clinical-ml-<account>-<region>)")
    p.add_argument("--pipeline-name", default=env("PIPELINE_NAME") or "clinical-ml")
    p.add_argument("--endpoint-name", default=env("ENDPOINT_NAME") or "clinical-ml")
    p.add_argument("--kms-key-id", default=env("KMS_KEY_ID") or "alias/clinical-ml")
    p.add_argument("--subnet-ids", default=env("SUBNET_IDS", ""), help="comma-separated; puts every job in your VPC")
    p.add_argument("--security-group-ids", default=env("SECURITY_GROUP_IDS", ""))
    p.add_argument("--scheduler-role-arn", default=env("SCHEDULER_ROLE_ARN"),
                   help="role EventBridge Scheduler assumes for the hourly drift job (default: role)")
    return p


def _pipeline(args: argparse.Namespace):
    from pipelines.definition import get_pipeline

    split = lambda v: [s.strip() for s in (v or "").split(",") if s.strip()]  # noqa: E731
    return get_pipeline(region=args.region, role=args.role_arn, default_bucket=args.bucket,
                        pipeline_name=args.pipeline_name, kms_key_id=args.kms_key_id,
                        subnets=split(args.subnet_ids), security_group_ids=split(args.security_group_ids),
                        endpoint_name=args.endpoint_name, scheduler_role_arn=args.scheduler_role_arn)


def _quiet_sdk() -> None:
    """The SDK logs a warning per step about job names it drops; not useful to users here."""
    import logging
    import warnings

    import pipelines.definition  # noqa: F401  (imports the SDK, which creates its loggers)

    for name in list(logging.root.manager.loggerDict):
        if name.split(".")[0] in ("sagemaker", "sagemaker_core"):
            logging.getLogger(name).setLevel(logging.ERROR)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="sagemaker")


def build_definition(**overrides) -> dict:
    """The definition dict from the environment's settings (what the local runner executes)."""
    _quiet_sdk()
    from pipelines.definition import definition_json, settings_from_env

    return definition_json(**{**settings_from_env(), **overrides})


def definition(argv: list[str] | None = None) -> int:
    """Write the pipeline definition JSON (offline: no network, no credentials)."""
    p = _build_parser("definition", definition.__doc__)
    p.add_argument("--out", default="-", help="file to write (default: stdout)")
    args = p.parse_args(argv)
    _quiet_sdk()
    from pipelines.definition import definition_json

    text = json.dumps(definition_json(_pipeline(args)), indent=2) + "\n"
    if args.out == "-":
        sys.stdout.write(text)
    else:
        write_text(args.out, text)
        print(f"wrote {args.out} ({len(text)} bytes)", file=sys.stderr)
    return 0


def upsert(argv: list[str] | None = None) -> int:
    """Create or update the pipeline, its model package groups, drift alarms and retrain rule."""
    p = _build_parser("upsert-pipeline", upsert.__doc__)
    p.add_argument("--endpoint-url", default=os.environ.get("AWS_ENDPOINT_URL"))
    p.add_argument("--events-role-arn", default=os.environ.get("EVENTS_ROLE_ARN"),
                   help="role EventBridge assumes to start the pipeline (default: ROLE_ARN)")
    p.add_argument("--drift-score-threshold", type=float, default=1.0,
                   help="drift_score alarm threshold (> 1 means a baseline constraint is violated)")
    p.add_argument("--retrain-schedule", default=os.environ.get("RETRAIN_SCHEDULE"),
                   help="also retrain periodically (Trigger=schedule), e.g. 'rate(30 days)' (RETRAIN_SCHEDULE)")
    p.add_argument("--out", default=None, help="also write the upserted definition here")
    args = p.parse_args(argv)
    if not args.role_arn:
        raise DataError("ROLE_ARN is not set: export ROLE_ARN=arn:aws:iam::<account>:role/<execution role> "
                        "(pipelines/infra/template.yaml creates one; see docs/pipeline.md)")
    _quiet_sdk()
    from pipelines import aws
    from pipelines.definition import definition_json, model_package_groups

    body = definition_json(_pipeline(args))
    if args.out:
        write_text(args.out, json.dumps(body, indent=2) + "\n")
    c = aws.clients(args.region, args.endpoint_url)
    arn, action = aws.upsert_pipeline(c.sagemaker, args.pipeline_name, body, args.role_arn)
    groups = aws.upsert_model_package_groups(c.sagemaker, model_package_groups(args.pipeline_name))
    events_role = args.events_role_arn or args.role_arn
    retraining = aws.upsert_retraining(c.cloudwatch, c.events, endpoint_name=args.endpoint_name,
                                       pipeline_arn=arn, events_role_arn=events_role,
                                       drift_score_threshold=args.drift_score_threshold)
    if args.retrain_schedule:
        retraining.update(aws.upsert_scheduled_retraining(
            c.events, pipeline_name=args.pipeline_name, pipeline_arn=arn, events_role_arn=events_role,
            schedule_expression=args.retrain_schedule))
    print(json.dumps({"pipeline_arn": arn, "action": action, "model_package_groups": groups, **retraining},
                     indent=2))
    return 0


def run(argv: list[str] | None = None) -> int:
    """Start a pipeline execution with parameter overrides; --wait prints step statuses."""
    env = os.environ.get
    p = argparse.ArgumentParser(prog="clinical-ml run-pipeline", description=run.__doc__)
    p.add_argument("overrides", nargs="*", metavar="Name=Value", help="parameter overrides")
    p.add_argument("--param", action="append", default=[], metavar="Name=Value")
    p.add_argument("--region", default=env("AWS_REGION") or env("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--endpoint-url", default=env("AWS_ENDPOINT_URL"))
    p.add_argument("--pipeline-name", default=env("PIPELINE_NAME") or "clinical-ml")
    p.add_argument("--display-name", default=None)
    p.add_argument("--wait", action="store_true", help="wait for the end and print step statuses")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between status polls")
    p.add_argument("--timeout", type=float, default=24 * 3600)
    args = p.parse_args(argv)
    from pipelines import aws

    try:
        overrides = aws.parse_overrides(args.overrides + args.param)
    except ValueError as e:
        raise DataError(str(e)) from None
    sm = aws.clients(args.region, args.endpoint_url).sagemaker
    try:
        arn = aws.start_execution(sm, args.pipeline_name, overrides, args.display_name)
    except ValueError as e:
        raise DataError(str(e)) from None
    print(f"started {arn}")
    if not args.wait:
        return 0
    seen: dict[str, str] = {}

    def show(desc: dict) -> None:
        for step in aws.step_statuses(sm, arn) or []:
            if seen.get(step["name"]) != step["status"]:
                seen[step["name"]] = step["status"]
                print(f"  {step['name']:<28} {step['status']}" + (f"  {step['reason']}" if step["reason"] else ""))

    final = aws.wait(sm, arn, poll_s=args.poll, timeout_s=args.timeout, on_poll=show)
    status = final["PipelineExecutionStatus"]
    reason = final.get("FailureReason")
    print(f"{status}" + (f": {reason}" if reason else ""))
    return 0 if status == "Succeeded" else 1
