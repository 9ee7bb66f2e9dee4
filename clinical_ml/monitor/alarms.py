"""The drift alarms, defined once: CloudWatch kwargs for AWS and the same rules evaluated locally.

``alarm_specs(endpoint, schedule, threshold)`` returns ``put_metric_alarm`` kwargs (drift score,
model-quality drop, optional per-feature alarms) followed by one ``put_composite_alarm`` kwargs
dict (it has ``AlarmRule``): ``<prefix>-<endpoint>-retrain`` is in ALARM when any child is.
The EventBridge rule (``retrain_rule_spec``) listens for the *composite* alarm's state change
to ALARM: a composite changes state once however many children fire, so one drift episode
emits one event (the first layer of the storm guard; ``guard`` is the second).

``evaluate(spec, datapoints, now)`` mirrors CloudWatch's evaluation for the local loop: the
metric's datapoints matching the alarm's dimensions are grouped into ``Period``-second buckets,
reduced with ``Statistic``; of the last ``EvaluationPeriods`` buckets, at least
``DatapointsToAlarm`` must breach ``ComparisonOperator Threshold``; missing buckets count as
not breaching (``TreatMissingData: notBreaching``); no datapoint at all is INSUFFICIENT_DATA.
"""
from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Iterable

from clinical_ml.monitor import alarm_rule
from clinical_ml.monitor.capture import parse_time
from clinical_ml.monitor.metrics import NAMESPACE, dimensions, feature_metric_name

_OPS = {"GreaterThanThreshold": lambda v, t: v > t,
        "GreaterThanOrEqualToThreshold": lambda v, t: v >= t,
        "LessThanThreshold": lambda v, t: v < t,
        "LessThanOrEqualToThreshold": lambda v, t: v <= t}
_STATS = {"Maximum": max, "Minimum": min, "Sum": sum, "Average": lambda v: sum(v) / len(v),
          "SampleCount": len}


def _metric_alarm(name: str, metric: str, dims: list[dict], threshold: float, period: int,
                  evaluation_periods: int, datapoints_to_alarm: int, description: str) -> dict:
    return {"AlarmName": name, "AlarmDescription": description, "ActionsEnabled": True,
            "Namespace": NAMESPACE, "MetricName": metric, "Dimensions": dims,
            "Statistic": "Maximum", "Period": int(period), "EvaluationPeriods": int(evaluation_periods),
            "DatapointsToAlarm": int(datapoints_to_alarm), "Threshold": float(threshold),
            "ComparisonOperator": "GreaterThanThreshold", "TreatMissingData": "notBreaching"}


def alarm_specs(endpoint_name: str, schedule_name: str, threshold: float = 1.0, *,
                period: int = 3600, evaluation_periods: int = 1, datapoints_to_alarm: int = 1,
                max_auroc_drop: float | None = 0.05, features: Iterable[str] = (),
                feature_threshold: float = 0.1, prefix: str = "clinical-ml") -> list[dict]:
    """Metric alarms then the composite retrain alarm (the dict with ``AlarmRule``)."""
    dims = dimensions(endpoint_name, schedule_name)
    base = f"{prefix}-{endpoint_name}"
    specs = [_metric_alarm(f"{base}-drift-score", "drift_score", dims, threshold, period,
                           evaluation_periods, datapoints_to_alarm,
                           f"Data drift on {endpoint_name}: drift_score > {threshold} "
                           "(a Model Monitor constraint violated)")]
    if max_auroc_drop is not None:
        specs.append(_metric_alarm(f"{base}-auroc-drop", "auroc_drop", dims, max_auroc_drop, period,
                                   evaluation_periods, datapoints_to_alarm,
                                   f"Model quality on {endpoint_name}: AUROC fell more than "
                                   f"{max_auroc_drop} below the registered model's"))
    for f in features:
        specs.append(_metric_alarm(f"{base}-drift-{f}"[:255], feature_metric_name(f), dims,
                                   feature_threshold, period, evaluation_periods,
                                   datapoints_to_alarm, f"Baseline drift of {f} > {feature_threshold}"))
    rule = " OR ".join(f'ALARM("{s["AlarmName"]}")' for s in specs)
    specs.append({"AlarmName": composite_name(endpoint_name, prefix), "AlarmRule": rule,
                  "ActionsEnabled": True,
                  "AlarmDescription": f"Retrain: drift or quality alarm on {endpoint_name}; "
                                      "the EventBridge rule starts the pipeline with Trigger=drift"})
    return specs


def composite_name(endpoint_name: str, prefix: str = "clinical-ml") -> str:
    return f"{prefix}-{endpoint_name}-retrain"


def create_alarms(cloudwatch: Any, specs: list[dict]) -> list[str]:
    """Create/update every alarm of ``specs`` (idempotent, as CloudWatch's put calls are)."""
    names = []
    for s in specs:
        (cloudwatch.put_composite_alarm if "AlarmRule" in s else cloudwatch.put_metric_alarm)(**s)
        names.append(s["AlarmName"])
    return names


def retrain_rule_spec(composite_alarm: str, pipeline_arn: str, role_arn: str,
                      parameters: dict[str, str] | None = None, rule_name: str | None = None) -> dict:
    """EventBridge ``put_rule`` and ``put_targets`` kwargs: composite alarm -> StartPipelineExecution."""
    name = rule_name or f"{composite_alarm}-rule"
    params = {"Trigger": "drift", **(parameters or {})}
    pattern = {"source": ["aws.cloudwatch"], "detail-type": ["CloudWatch Alarm State Change"],
               "detail": {"alarmName": [composite_alarm], "state": {"value": ["ALARM"]}}}
    return {"put_rule": {"Name": name, "EventPattern": json.dumps(pattern), "State": "ENABLED",
                         "Description": "Drift alarm -> retraining pipeline (Trigger=drift)"},
            "put_targets": {"Rule": name, "Targets": [{
                "Id": "retraining-pipeline", "Arn": pipeline_arn, "RoleArn": role_arn,
                "SageMakerPipelineParameters": {"PipelineParameterList": [
                    {"Name": k, "Value": str(v)} for k, v in params.items()]}}]}}


# ---- local evaluation ----

def _matches(dp: dict, spec: dict) -> bool:
    if dp.get("MetricName") != spec["MetricName"] or dp.get("Namespace", NAMESPACE) != spec["Namespace"]:
        return False
    want = {d["Name"]: d["Value"] for d in spec.get("Dimensions", [])}
    have = {d["Name"]: d["Value"] for d in dp.get("Dimensions", [])}
    return want == have


def evaluate(spec: dict, points: Iterable[dict], now: datetime | None = None) -> str:
    """State of one metric alarm over ``points``: ``ALARM``, ``OK`` or ``INSUFFICIENT_DATA``."""
    pts = [p for p in points if _matches(p, spec)]
    if not pts:
        return "INSUFFICIENT_DATA"
    period = int(spec["Period"])
    times = [parse_time(p["Timestamp"]).timestamp() for p in pts]
    now_s = parse_time(now).timestamp() if now is not None else max(times)
    last_bucket = int(now_s // period)
    buckets: dict[int, list[float]] = {}
    for t, p in zip(times, pts):
        b = int(t // period)
        if last_bucket - int(spec["EvaluationPeriods"]) < b <= last_bucket:
            buckets.setdefault(b, []).append(float(p["Value"]))
    op, stat = _OPS[spec["ComparisonOperator"]], _STATS[spec["Statistic"]]
    breaching = sum(op(stat(v), float(spec["Threshold"])) for v in buckets.values())
    if not buckets and spec.get("TreatMissingData") == "missing":
        return "INSUFFICIENT_DATA"
    return "ALARM" if breaching >= int(spec.get("DatapointsToAlarm", spec["EvaluationPeriods"])) else "OK"


def evaluate_composite(rule: str, states: dict[str, str]) -> str:
    """``ALARM("a") OR ALARM("b") AND NOT OK("c")``-style rules over child states (parsed by
    ``alarm_rule``; a rule outside its grammar raises ``AlarmRuleError``, a ValueError)."""
    return "ALARM" if alarm_rule.evaluate(alarm_rule.parse(rule), states) else "OK"


def evaluate_all(specs: list[dict], points: list[dict], now: datetime | None = None) -> dict[str, str]:
    """States of every alarm in ``specs`` (metric alarms first, then composites)."""
    states: dict[str, str] = {}
    for s in specs:
        if "AlarmRule" not in s:
            states[s["AlarmName"]] = evaluate(s, points, now)
    for s in specs:
        if "AlarmRule" in s:
            states[s["AlarmName"]] = evaluate_composite(s["AlarmRule"], states)
    return states


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
