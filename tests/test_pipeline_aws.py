"""``make upsert-pipeline`` / ``make run-pipeline`` against moto (no AWS): create then update,
model package groups, drift alarms + composite alarm, the EventBridge rule targeting the
pipeline with Trigger=drift, and starting (and waiting for) an execution."""
from __future__ import annotations

import json

import boto3
import pytest
from moto import mock_aws

from clinical_ml.io import DataError

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/clinical-ml-sagemaker-execution"
EVENTS_ROLE = "arn:aws:iam::123456789012:role/clinical-ml-events"


@pytest.fixture
def aws_env(monkeypatch):
    from moto.cloudwatch.responses import CloudWatchResponse

    from pipelines.moto_server import _put_composite_alarm

    # moto 5.2.5 has no PutCompositeAlarm action (see pipelines/moto_server.py)
    if not hasattr(CloudWatchResponse, "put_composite_alarm"):
        monkeypatch.setattr(CloudWatchResponse, "put_composite_alarm", _put_composite_alarm, raising=False)
    for k in ("AWS_ENDPOINT_URL", "AWS_PROFILE", "BUCKET", "ENDPOINT_NAME", "SUBNET_IDS", "SECURITY_GROUP_IDS"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_REGION", REGION)
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("ROLE_ARN", ROLE)
    monkeypatch.setenv("EVENTS_ROLE_ARN", EVENTS_ROLE)
    monkeypatch.setenv("PIPELINE_NAME", "clinical-ml-test")
    with mock_aws():
        yield


def test_upsert_twice_then_start(aws_env, capsys, tmp_path):
    from pipelines import commands

    assert commands.upsert(["--out", str(tmp_path / "def.json")]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["action"] == "created"
    assert commands.upsert([]) == 0
    second = json.loads(capsys.readouterr().out)
    assert second["action"] == "updated" and second["pipeline_arn"] == first["pipeline_arn"]

    sm = boto3.client("sagemaker", region_name=REGION)
    desc = sm.describe_pipeline(PipelineName="clinical-ml-test")
    assert desc["RoleArn"] == ROLE
    uploaded = json.loads(desc["PipelineDefinition"])
    assert uploaded == json.loads((tmp_path / "def.json").read_text())
    assert {p["Name"] for p in uploaded["Parameters"]} >= {"Trigger", "DataWindowStart", "InputDataUri"}

    groups = {g["ModelPackageGroupName"] for g in sm.list_model_package_groups()["ModelPackageGroupSummaryList"]}
    assert groups == {"clinical-ml-test-outcomes", "clinical-ml-test-extractor"}

    # alarms: metric alarms on the drift job's metrics + the composite the rule listens to
    cw = boto3.client("cloudwatch", region_name=REGION)
    found = cw.describe_alarms(AlarmTypes=["MetricAlarm", "CompositeAlarm"])
    metric = {a["AlarmName"]: a for a in found["MetricAlarms"]}
    composite = {a["AlarmName"]: a for a in found["CompositeAlarms"]}
    drift = metric["clinical-ml-clinical-ml-drift-score"]
    assert drift["Namespace"] == "clinical-ml/DataDrift" and drift["MetricName"] == "drift_score"
    assert {d["Name"]: d["Value"] for d in drift["Dimensions"]} == {
        "Endpoint": "clinical-ml", "MonitoringSchedule": "clinical-ml-drift"}
    assert second["composite_alarm"] in composite
    assert all(f'ALARM("{name}")' in composite[second["composite_alarm"]]["AlarmRule"] for name in metric)

    # the rule fires on the composite alarm and starts THIS pipeline with Trigger=drift
    events = boto3.client("events", region_name=REGION)
    rule = events.describe_rule(Name=second["rule"])
    pattern = json.loads(rule["EventPattern"])
    assert pattern["detail"]["alarmName"] == [second["composite_alarm"]]
    assert pattern["detail"]["state"]["value"] == ["ALARM"]
    (target,) = events.list_targets_by_rule(Rule=second["rule"])["Targets"]
    assert target["Arn"] == first["pipeline_arn"] and target["RoleArn"] == EVENTS_ROLE
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [{"Name": "Trigger", "Value": "drift"}]
    assert len(events.list_rules()["Rules"]) == 1  # the second upsert updated, not duplicated

    # optional periodic retraining: a schedule rule starting the pipeline with Trigger=schedule
    assert commands.upsert(["--retrain-schedule", "rate(30 days)"]) == 0
    third = json.loads(capsys.readouterr().out)
    sched = events.describe_rule(Name=third["scheduled_rule"])
    assert sched["ScheduleExpression"] == "rate(30 days)"
    (target,) = events.list_targets_by_rule(Rule=third["scheduled_rule"])["Targets"]
    assert target["Arn"] == first["pipeline_arn"]
    assert target["SageMakerPipelineParameters"]["PipelineParameterList"] == [{"Name": "Trigger", "Value": "schedule"}]

    # run-pipeline: overrides reach the execution; --wait reports the final status
    assert commands.run(["Trigger=manual", "--param", "MinIhmAuroc=0.8", "--wait", "--poll", "0"]) == 0
    out = capsys.readouterr().out
    assert "started arn:aws:sagemaker" in out and "Succeeded" in out
    (execution,) = sm.list_pipeline_executions(PipelineName="clinical-ml-test")["PipelineExecutionSummaries"]
    params = sm.list_pipeline_parameters_for_execution(
        PipelineExecutionArn=execution["PipelineExecutionArn"])["PipelineParameters"]
    assert {p["Name"]: p["Value"] for p in params} == {"Trigger": "manual", "MinIhmAuroc": "0.8"}

    with pytest.raises(DataError, match="unknown pipeline parameter"):
        commands.run(["MinAuroc=0.8"])
    with pytest.raises(DataError, match="Name=Value"):
        commands.run(["Trigger"])


def test_upsert_requires_a_role(aws_env, monkeypatch):
    from pipelines import commands

    monkeypatch.delenv("ROLE_ARN")
    with pytest.raises(DataError, match="ROLE_ARN"):
        commands.upsert([])


class _FakeSageMaker:
    """describe_pipeline_execution walks Executing -> Succeeded; steps appear as they run."""

    def __init__(self):
        self.polls = 0

    def describe_pipeline_execution(self, PipelineExecutionArn):
        self.polls += 1
        return {"PipelineExecutionStatus": "Executing" if self.polls < 3 else "Succeeded"}

    def get_paginator(self, name):
        assert name == "list_pipeline_execution_steps"
        steps = [{"StepName": "DriftGuard", "StepStatus": "Succeeded", "StartTime": 1},
                 {"StepName": "BuildTasks", "StepStatus": "Executing" if self.polls < 3 else "Succeeded",
                  "StartTime": 2}]
        return type("P", (), {"paginate": lambda self_, **kw: [{"PipelineExecutionSteps": steps}]})()


def test_wait_polls_until_terminal_and_reports_steps():
    from pipelines import aws

    sm, sleeps, seen = _FakeSageMaker(), [], []
    final = aws.wait(sm, "arn:x", poll_s=5, sleep=sleeps.append,
                     on_poll=lambda d: seen.append([s["status"] for s in aws.step_statuses(sm, "arn:x")]))
    assert final["PipelineExecutionStatus"] == "Succeeded"
    assert sleeps == [5, 5]
    assert seen[0] == ["Succeeded", "Executing"] and seen[-1] == ["Succeeded", "Succeeded"]


def test_parse_overrides():
    from pipelines.aws import parse_overrides

    assert parse_overrides(["A=1", "B=x=y", "C="]) == {"A": "1", "B": "x=y", "C": ""}
    with pytest.raises(ValueError):
        parse_overrides(["=1"])
