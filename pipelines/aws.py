"""AWS side of ``make upsert-pipeline`` / ``make run-pipeline``: idempotent create-or-update of
the pipeline, its model package groups, the drift alarms and the EventBridge retrain rule, and
starting/watching executions.

Everything takes boto3 clients, so the same code runs against AWS, a moto server
(``AWS_ENDPOINT_URL``) and moto's in-process mock in the tests. The alarm and rule shapes are
defined once by the monitoring code (``clinical_ml.monitor.alarms``), which the local loop also
evaluates.
"""
from __future__ import annotations

import json
import os
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable

from clinical_ml.logs import get_logger
from clinical_ml.monitor import alarms

log = get_logger("pipelines.aws")

TAGS = [{"Key": "project", "Value": "clinical-ml"}]
TERMINAL = ("Succeeded", "Failed", "Stopped")
PIPELINE_DESCRIPTION = ("MIMIC-III -> benchmark tasks + notes -> outcome models and clinical "
                        "extractor -> quality gate -> registry -> A/B endpoint -> drift monitor")


@dataclass
class Clients:
    sagemaker: Any
    cloudwatch: Any
    events: Any


def clients(region: str, endpoint_url: str | None = None, session=None) -> Clients:
    """boto3 clients; ``endpoint_url`` (AWS_ENDPOINT_URL) points them at e.g. a moto server."""
    import boto3

    session = session or boto3.Session(region_name=region)
    kw = {"region_name": region, **({"endpoint_url": endpoint_url} if endpoint_url else {})}
    return Clients(session.client("sagemaker", **kw), session.client("cloudwatch", **kw),
                   session.client("events", **kw))


def _exists(call: Callable[[], Any]) -> bool:
    """True if a describe call succeeds, False if the resource does not exist."""
    from botocore.exceptions import ClientError

    try:
        call()
        return True
    except ClientError as e:
        code = e.response.get("Error", {}).get("Code", "")
        message = e.response.get("Error", {}).get("Message", "")
        missing = any(m in message.lower() for m in ("does not exist", "not found", "could not find"))
        if code in ("ResourceNotFound", "ResourceNotFoundException") or (code == "ValidationException" and missing):
            return False
        raise


def upsert_pipeline(sm: Any, name: str, definition: dict | str, role_arn: str) -> tuple[str, str]:
    """Create the pipeline or update its definition; returns (arn, "created" | "updated")."""
    body = definition if isinstance(definition, str) else json.dumps(definition)
    common = {"PipelineName": name, "PipelineDefinition": body, "RoleArn": role_arn,
              "PipelineDisplayName": name, "PipelineDescription": PIPELINE_DESCRIPTION}
    if _exists(lambda: sm.describe_pipeline(PipelineName=name)):
        arn = sm.update_pipeline(**common)["PipelineArn"]
        return arn, "updated"
    arn = sm.create_pipeline(**common, ClientRequestToken=uuid.uuid4().hex, Tags=TAGS)["PipelineArn"]
    return arn, "created"


def upsert_model_package_groups(sm: Any, groups: dict[str, str]) -> dict[str, str]:
    """Create the registry groups that do not exist yet; returns {kind: group ARN}."""
    out = {}
    for kind, group in groups.items():
        if not _exists(lambda: sm.describe_model_package_group(ModelPackageGroupName=group)):
            sm.create_model_package_group(
                ModelPackageGroupName=group, Tags=TAGS,
                ModelPackageGroupDescription=f"clinical-ml {kind} models registered by the pipeline")
        out[kind] = sm.describe_model_package_group(ModelPackageGroupName=group)["ModelPackageGroupArn"]
    return out


def upsert_retraining(cloudwatch: Any, events: Any, *, endpoint_name: str, pipeline_arn: str,
                      events_role_arn: str, drift_score_threshold: float = 1.0) -> dict:
    """Drift/quality alarms, the composite retrain alarm, and the EventBridge rule whose target
    starts the pipeline with ``Trigger=drift`` (CloudWatch and EventBridge puts are idempotent).

    The alarms watch the dimensions the scheduled drift job publishes: this endpoint and its
    schedule ``<endpoint>-drift`` (monitoring/schedule.py's default name).
    """
    schedule = f"{endpoint_name}-drift"
    specs = alarms.alarm_specs(endpoint_name, schedule, drift_score_threshold)
    names = alarms.create_alarms(cloudwatch, specs)
    composite = alarms.composite_name(endpoint_name)
    rule = alarms.retrain_rule_spec(composite, pipeline_arn, events_role_arn)
    rule_arn = events.put_rule(**rule["put_rule"], Tags=TAGS)["RuleArn"]
    failed = events.put_targets(**rule["put_targets"]).get("FailedEntryCount", 0)
    if failed:
        raise RuntimeError(f"EventBridge rejected the retraining target of rule {rule['put_rule']['Name']}")
    return {"alarms": names, "composite_alarm": composite, "rule": rule["put_rule"]["Name"],
            "rule_arn": rule_arn, "schedule": schedule}


def upsert_scheduled_retraining(events: Any, *, pipeline_name: str, pipeline_arn: str, events_role_arn: str,
                                schedule_expression: str) -> dict:
    """Optional periodic retraining: an EventBridge schedule rule starting the pipeline with
    ``Trigger=schedule`` (e.g. ``rate(30 days)`` or ``cron(0 3 1 * ? *)``)."""
    name = f"{pipeline_name}-scheduled-retrain"
    rule_arn = events.put_rule(Name=name, ScheduleExpression=schedule_expression, State="ENABLED",
                               Description="Periodic retraining (Trigger=schedule)", Tags=TAGS)["RuleArn"]
    failed = events.put_targets(Rule=name, Targets=[{
        "Id": "retraining-pipeline", "Arn": pipeline_arn, "RoleArn": events_role_arn,
        "SageMakerPipelineParameters": {"PipelineParameterList": [{"Name": "Trigger", "Value": "schedule"}]}}]
    ).get("FailedEntryCount", 0)
    if failed:
        raise RuntimeError(f"EventBridge rejected the retraining target of rule {name}")
    return {"scheduled_rule": name, "scheduled_rule_arn": rule_arn, "retrain_schedule": schedule_expression}


def parse_overrides(tokens: list[str]) -> dict[str, str]:
    """``["Name=Value", ...]`` -> dict (values stay strings, as the service takes them)."""
    out = {}
    for token in tokens:
        name, sep, value = token.partition("=")
        if not sep or not name:
            raise ValueError(f"parameter override {token!r}: expected Name=Value")
        out[name.strip()] = value
    return out


def declared_parameters(sm: Any, pipeline_name: str) -> list[str]:
    """Parameter names of the pipeline definition as the service holds it."""
    body = sm.describe_pipeline(PipelineName=pipeline_name)["PipelineDefinition"]
    return [p["Name"] for p in json.loads(body).get("Parameters", [])]


def start_execution(sm: Any, pipeline_name: str, overrides: dict[str, str], display_name: str | None = None) -> str:
    """Start an execution; unknown parameter names are refused before anything starts."""
    known = declared_parameters(sm, pipeline_name)
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {', '.join(unknown)}; "
                         f"the pipeline {pipeline_name} declares: {', '.join(known)}")
    kwargs = {"PipelineName": pipeline_name, "ClientRequestToken": uuid.uuid4().hex,
              "PipelineParameters": [{"Name": k, "Value": v} for k, v in overrides.items()]}
    if display_name:
        kwargs["PipelineExecutionDisplayName"] = display_name
    return sm.start_pipeline_execution(**kwargs)["PipelineExecutionArn"]


def step_statuses(sm: Any, execution_arn: str) -> list[dict] | None:
    """[{name, status, reason}] of an execution's steps, None where the API is unavailable."""
    from botocore.exceptions import ClientError

    try:
        pages = sm.get_paginator("list_pipeline_execution_steps").paginate(PipelineExecutionArn=execution_arn)
        steps = [s for page in pages for s in page.get("PipelineExecutionSteps", [])]
    except (ClientError, NotImplementedError) as e:  # moto: not implemented
        log.info("step statuses unavailable: %s", type(e).__name__)
        return None
    return [{"name": s.get("StepName"), "status": s.get("StepStatus"), "reason": s.get("FailureReason", "")}
            for s in sorted(steps, key=lambda s: s.get("StartTime") or 0)]


def wait(sm: Any, execution_arn: str, poll_s: float = 30.0, timeout_s: float = 24 * 3600,
         on_poll: Callable[[dict], None] | None = None, sleep: Callable[[float], None] = time.sleep) -> dict:
    """Poll until the execution is terminal; returns its final description."""
    deadline = time.monotonic() + timeout_s
    while True:
        desc = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn)
        if on_poll:
            on_poll(desc)
        if desc["PipelineExecutionStatus"] in TERMINAL:
            return desc
        if time.monotonic() > deadline:
            raise TimeoutError(f"{execution_arn} still {desc['PipelineExecutionStatus']} after {timeout_s:.0f} s")
        sleep(poll_s)


def events_role_default(role_arn: str) -> str:
    """EVENTS_ROLE_ARN, else the execution role (which must then trust events.amazonaws.com)."""
    return os.environ.get("EVENTS_ROLE_ARN") or role_arn
