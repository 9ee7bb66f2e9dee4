"""AWS side against moto: metrics are put, alarms/rule/schedule created, an alarm storm starts one execution."""
from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta, timezone

import boto3
import pytest
from moto import mock_aws

from clinical_ml.monitor import alarms, formats, stats
from clinical_ml.monitor import guard as G
from clinical_ml.monitor import scenarios as S
from clinical_ml.monitor.capture import iter_frame_records, write_capture
from monitoring import drift_job, schedule
from monitoring import guard as guard_step

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/sagemaker"
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch):
    monkeypatch.delenv("CLINICAL_ML_BACKEND", raising=False)  # the sagemaker backend
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": REGION, "AWS_REGION": REGION}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture(scope="module")
def baseline_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("baseline")
    ref = S.reference_frame(3000, seed=0, channels=["heart_rate", "temperature"])
    cols = [c for c in ref.columns if c != "y"]
    st_ = stats.dataset_statistics(ref, cols)
    formats.write_baseline(d, st_, stats.suggest_constraints(st_))
    return d, ref, cols


def test_drift_job_puts_cloudwatch_metrics(tmp_path, baseline_dir):
    d, ref, cols = baseline_dir
    frame = S.generate(ref, "units", 600, seed=1)[cols]
    write_capture(tmp_path / "cap", "ep-1", "AllTraffic", iter_frame_records(frame, T0, T0 + timedelta(hours=1), 5))
    with mock_aws():
        assert drift_job.main(["--capture", str(tmp_path / "cap"), "--baseline", str(d), "--output", str(tmp_path / "o"),
                               "--window-end", "2026-01-01T01:00:00Z", "--schedule", "ep-1-drift"]) == 0
        cw = boto3.client("cloudwatch", region_name=REGION)
        listed = cw.list_metrics(Namespace="clinical-ml/DataDrift")["Metrics"]
        names = {m["MetricName"] for m in listed}
        assert {"drift_score", "rows_analyzed", "integrity_violations",
                "feature_baseline_drift_f_temperature_mean_full"} <= names
        assert len([n for n in names if n.startswith("feature_baseline_drift_")]) == len(cols)
        dims = [{"Name": "Endpoint", "Value": "ep-1"}, {"Name": "MonitoringSchedule", "Value": "ep-1-drift"}]
        assert all(sorted(m["Dimensions"], key=lambda x: x["Name"]) == dims for m in listed)
        got = cw.get_metric_statistics(Namespace="clinical-ml/DataDrift", MetricName="drift_score", Dimensions=dims,
                                       StartTime=T0, EndTime=T0 + timedelta(hours=2), Period=3600,
                                       Statistics=["Maximum"])["Datapoints"]
        summary = json.loads((tmp_path / "o" / "drift_summary.json").read_text())
        assert summary["metrics"]["backend"] == "cloudwatch"
        assert got and got[0]["Maximum"] == pytest.approx(summary["drift_score"]) and summary["drift_score"] > 1
        rows = cw.get_metric_statistics(Namespace="clinical-ml/DataDrift", MetricName="rows_analyzed", Dimensions=dims,
                                        StartTime=T0, EndTime=T0 + timedelta(hours=2), Period=3600,
                                        Statistics=["Sum"])["Datapoints"]
        assert rows[0]["Sum"] == 600


def test_alarm_specs_create_in_cloudwatch_and_rule_targets_pipeline():
    specs = alarms.alarm_specs("ep-1", "ep-1-drift", 1.0, features=["f_temperature_mean_full"])
    metric_specs = [s for s in specs if "AlarmRule" not in s]
    composite = [s for s in specs if "AlarmRule" in s]
    assert len(composite) == 1 and all(f'ALARM("{s["AlarmName"]}")' in composite[0]["AlarmRule"] for s in metric_specs)
    with mock_aws():
        cw = boto3.client("cloudwatch", region_name=REGION)
        for s in metric_specs:
            cw.put_metric_alarm(**s)
        got = {a["AlarmName"]: a for a in cw.describe_alarms()["MetricAlarms"]}
        drift = got["clinical-ml-ep-1-drift-score"]
        assert drift["MetricName"] == "drift_score" and drift["Namespace"] == "clinical-ml/DataDrift"
        assert drift["Threshold"] == 1.0 and drift["ComparisonOperator"] == "GreaterThanThreshold"
        assert drift["TreatMissingData"] == "notBreaching"
        ev = boto3.client("events", region_name=REGION)
        rule = alarms.retrain_rule_spec(composite[0]["AlarmName"], "arn:aws:sagemaker:us-east-1:123456789012:pipeline/p",
                                        ROLE)
        ev.put_rule(**rule["put_rule"])
        ev.put_targets(**rule["put_targets"])
        tgt = ev.list_targets_by_rule(Rule=rule["put_rule"]["Name"])["Targets"][0]
        assert tgt["SageMakerPipelineParameters"]["PipelineParameterList"] == [{"Name": "Trigger", "Value": "drift"}]
        pattern = json.loads(ev.describe_rule(Name=rule["put_rule"]["Name"])["EventPattern"])
        assert pattern["detail"]["alarmName"] == [composite[0]["AlarmName"]]

    class Recorder:
        def __init__(self):
            self.calls = []
        def put_metric_alarm(self, **kw):
            self.calls.append(("metric", kw["AlarmName"]))
        def put_composite_alarm(self, **kw):
            self.calls.append(("composite", kw["AlarmName"]))
    rec = Recorder()
    alarms.create_alarms(rec, specs)
    assert rec.calls[-1] == ("composite", "clinical-ml-ep-1-retrain") and len(rec.calls) == len(specs)


def test_schedule_step_creates_eventbridge_scheduler_schedule(tmp_path):
    with mock_aws():
        argv = ["--endpoint-name", "ep-1", "--baseline-uri", "s3://b/baseline/", "--capture-uri", "s3://b/p/capture",
                "--image-uri", "123.dkr.ecr.us-east-1.amazonaws.com/clinical-ml:latest", "--role-arn", ROLE,
                "--deploy-info", str(tmp_path / "none"), "--drift-threshold", "0.15", "--output-dir", str(tmp_path / "s")]
        assert schedule.main(argv) == 0
        assert schedule.main(argv + ["--schedule-expression", "cron(10 * * * ? *)"]) == 0   # update in place
        sch = boto3.client("scheduler", region_name=REGION).get_schedule(Name="ep-1-drift")
        assert sch["ScheduleExpression"] == "cron(10 * * * ? *)"
        assert sch["Target"]["Arn"] == "arn:aws:scheduler:::aws-sdk:sagemaker:createProcessingJob"
        req = json.loads(sch["Target"]["Input"])
        assert req["AppSpecification"]["ContainerEntrypoint"][-1] == "monitoring.drift_job"
        assert "<aws.scheduler.scheduled-time>" in req["AppSpecification"]["ContainerArguments"]
        assert "0.15" in req["AppSpecification"]["ContainerArguments"]
        assert req["ProcessingInputs"][0]["S3Input"]["S3Uri"] == "s3://b/p/capture/ep-1/"
    doc = json.loads((tmp_path / "s" / "schedule.json").read_text())
    assert doc["schedule_name"] == "ep-1-drift" and doc["schedule_arn"].endswith("ep-1-drift")


def test_schedule_step_local_backend_writes_schedule_json(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    (tmp_path / "deploy").mkdir()
    (tmp_path / "deploy" / "endpoint.json").write_text(json.dumps({"endpoint_name": "local-ep"}))
    monkeypatch.setenv("CLINICAL_ML_S3_ROOT", str(tmp_path / "s3"))
    monkeypatch.setenv("CLINICAL_ML_PROCESSING_DIR", str(tmp_path / "step"))   # the runner's mapping
    (tmp_path / "step" / "input" / "baseline").mkdir(parents=True)
    (tmp_path / "step" / "input" / "baseline" / "constraints.json").write_text("{}")
    assert schedule.main(["--deploy-info", str(tmp_path / "deploy"), "--capture-uri", "s3://b/p/capture",
                          "--drift-threshold", "0.2", "--output", str(tmp_path / "s")]) == 0
    doc = json.loads((tmp_path / "s" / "schedule.json").read_text())
    assert doc["endpoint_name"] == "local-ep" and doc["cron"] == schedule.DEFAULT_CRON
    assert doc["drift_job"]["script"] == "monitoring/drift_job.py" and "schedule_arn" not in doc
    assert (tmp_path / "s" / "baseline" / "constraints.json").is_file()   # kept beside schedule.json
    assert doc["baseline_uri"] == "baseline"
    assert doc["local_drift_arguments"] == ["--capture", str(tmp_path / "s3" / "b" / "p" / "capture" / "local-ep"),
                                            "--baseline", "baseline",   # relative to schedule.json
                                            "--endpoint", "local-ep", "--schedule", "local-ep-drift",
                                            "--comparison-threshold", "0.2"]


def _pipeline(sm, name="clinical-ml"):
    sm.create_pipeline(PipelineName=name, RoleArn=ROLE, PipelineDefinition=json.dumps(
        {"Version": "2020-12-01", "Parameters": [{"Name": "Trigger", "Type": "String", "DefaultValue": "manual"}],
         "Steps": []}))


def _alarm_event(i):
    return {"source": "aws.cloudwatch", "detail-type": "CloudWatch Alarm State Change",
            "detail": {"alarmName": f"clinical-ml-ep-retrain", "state": {"value": "ALARM"},
                       "previousState": {"value": "OK"}}, "id": f"evt-{i}"}


def test_alarm_storm_starts_at_most_one_execution(tmp_path):
    with mock_aws():
        sm = boto3.client("sagemaker", region_name=REGION)
        _pipeline(sm)
        results = [G.handle_alarm_event(_alarm_event(i), sm, "clinical-ml", lock_path=tmp_path / "l",
                                        parameters={"DataWindowEnd": "2026-01-01T01:00:00Z"}) for i in range(5)]
        threads = [threading.Thread(target=lambda i=i: results.append(G.handle_alarm_event(
            _alarm_event(100 + i), boto3.client("sagemaker", region_name=REGION), "clinical-ml",
            lock_path=tmp_path / "l"))) for i in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        execs = sm.list_pipeline_executions(PipelineName="clinical-ml")["PipelineExecutionSummaries"]
        assert len(execs) == 1
        assert sum(r["started"] is not None for r in results) == 1 and len(results) == 15
        assert {r["reason"] for r in results if not r["proceed"]} == {"cooldown"}
        params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=execs[0]["PipelineExecutionArn"])
        assert {"Name": "Trigger", "Value": "drift"} in params["PipelineParameters"]
        # an OK transition never starts anything; a manual run is not blocked by the guard
        assert G.handle_alarm_event({"detail": {"state": {"value": "OK"}}}, sm, "clinical-ml")["started"] is None
        # after the cooldown, the next alarm retrains again
        later = G.handle_alarm_event(_alarm_event(999), sm, "clinical-ml", lock_path=tmp_path / "l",
                                     now=datetime.now(timezone.utc) + timedelta(hours=7))
        assert later["proceed"] and later["started"]


class FakeSageMaker:
    """Executions that stay Executing (moto finishes them at once); records stops."""

    def __init__(self, executions):
        self.execs = executions   # arn -> (status, start, trigger)
        self.stopped = []

    def list_pipeline_executions(self, **_):
        return {"PipelineExecutionSummaries": [
            {"PipelineExecutionArn": a, "PipelineExecutionStatus": s, "StartTime": t}
            for a, (s, t, _) in sorted(self.execs.items(), key=lambda kv: kv[1][1], reverse=True)]}

    def list_pipeline_parameters_for_execution(self, PipelineExecutionArn):
        return {"PipelineParameters": [{"Name": "Trigger", "Value": self.execs[PipelineExecutionArn][2]}]}

    def stop_pipeline_execution(self, PipelineExecutionArn, ClientRequestToken):
        assert len(ClientRequestToken) >= 32
        self.stopped.append(PipelineExecutionArn)


def test_guard_step_in_pipeline_lets_exactly_one_concurrent_drift_execution_proceed(tmp_path, monkeypatch):
    now = datetime.now(timezone.utc)
    arns = [f"arn:aws:sagemaker:us-east-1:1:pipeline/p/execution/e{i}" for i in range(6)]
    fake = FakeSageMaker({a: ("Executing", now - timedelta(seconds=30 - i), "drift") for i, a in enumerate(arns)})
    monkeypatch.setattr(boto3, "client", lambda *a, **k: fake)
    decisions = []
    for i, arn in enumerate(arns):
        out = tmp_path / f"g{i}"
        assert guard_step.main(["--pipeline-name", "p", "--execution-arn", arn, "--trigger", "drift",
                                "--output-dir", str(out)]) == 0
        decisions.append(json.loads((out / "guard.json").read_text()))
    assert [d["proceed"] for d in decisions] == [True] + [False] * 5
    assert {d["reason"] for d in decisions[1:]} == {"in_flight"}
    assert fake.stopped == arns[1:]
    # a manual run always proceeds, whatever is in flight
    assert guard_step.main(["--execution-arn", "m", "--trigger", "manual", "--output-dir", str(tmp_path / "m")]) == 0
    assert json.loads((tmp_path / "m" / "guard.json").read_text())["proceed"] is True


def test_decide_cooldown_ignores_skipped_executions():
    now = datetime(2026, 1, 1, 12, tzinfo=timezone.utc)
    E = G.Execution
    went = E("a", "Succeeded", now - timedelta(hours=2), "drift")
    skipped = E("b", "Stopped", now - timedelta(minutes=5), "drift")
    assert G.decide([went, skipped], now, cooldown_s=3 * 3600)["reason"] == "cooldown"
    assert G.decide([went, skipped], now, cooldown_s=3600)["proceed"] is True   # skips don't extend it
    assert G.decide([E("m", "Executing", now, "manual")], now)["reason"] == "in_flight"
    assert G.decide([E("m", "Failed", now - timedelta(minutes=1), "manual")], now)["proceed"] is True


def test_baseline_uri_falls_back_to_the_processing_input(tmp_path):
    cfg = tmp_path / "processingjobconfig.json"
    cfg.write_text(json.dumps({"ProcessingInputs": [
        {"InputName": "code", "S3Input": {"S3Uri": "s3://b/code"}},
        {"InputName": "baseline", "S3Input": {"S3Uri": "s3://b/p/DriftBaseline/baseline"}}]}))
    assert schedule.processing_input_uri("baseline", str(cfg)) == "s3://b/p/DriftBaseline/baseline"
    assert schedule.processing_input_uri("nope", str(cfg)) is None
    assert schedule.processing_input_uri("baseline", str(tmp_path / "absent.json")) is None
