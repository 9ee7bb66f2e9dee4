"""Drift metrics: CloudWatch ``put_metric_data`` under SageMaker, a JSONL file locally.

Namespace ``clinical-ml/DataDrift``; dimensions ``Endpoint`` and ``MonitoringSchedule``
(docs/contracts.md, "Drift monitor"). Metrics per window:

- ``feature_baseline_drift_<feature>``: the feature's baseline_drift_check distance (as
  Model Monitor emits);
- ``drift_score``: largest check score of the window (> 1 = violation; see ``check``);
- ``rows_analyzed``: rows in the window (0 for an empty window, which publishes nothing else,
  so the alarm sees missing data, treated as not breaching);
- ``integrity_violations``: schema/type violations;
- with ground truth (window status ``ok``): ``model_auroc``, ``model_brier``, ``model_ece``,
  ``calibration_slope``, ``calibration_intercept``, ``auroc_drop``, ``brier_increase``,
  ``labelled_rows``; a window without labels publishes none of them (missing data: the
  quality alarm treats it as not breaching).

The local file holds one datapoint a line, the same fields as CloudWatch's MetricData plus
``Namespace``: what the local alarm evaluation (``alarms.evaluate``) reads.
"""
from __future__ import annotations

import fcntl
import os
from datetime import datetime
from pathlib import Path
from typing import Any, Iterable

import orjson

from clinical_ml.monitor.capture import format_time, parse_time

NAMESPACE = "clinical-ml/DataDrift"
FEATURE_PREFIX = "feature_baseline_drift_"
# model quality, published only for a window whose status is "ok" (none: no datapoint at all)
QUALITY_METRICS = ("model_auroc", "model_brier", "model_ece", "calibration_slope",
                   "calibration_intercept", "auroc_drop", "brier_increase")
DRIFT_METRICS = ("rows_analyzed", "drift_score", "integrity_violations", "labelled_rows")
MAX_PER_CALL = 500  # CloudWatch accepts up to 1000 metrics per PutMetricData call


def dimensions(endpoint: str, schedule: str) -> list[dict]:
    return [{"Name": "Endpoint", "Value": endpoint}, {"Name": "MonitoringSchedule", "Value": schedule}]


def datapoints(report: Any, endpoint: str, schedule: str, timestamp: datetime,
               quality: dict | None = None) -> list[dict]:
    """MetricData entries for one window's ``WindowReport`` (and model-quality results)."""
    dims = dimensions(endpoint, schedule)
    ts = parse_time(timestamp)

    def dp(name: str, value: float, unit: str = "None") -> dict:
        return {"MetricName": name, "Dimensions": dims, "Timestamp": ts, "Value": float(value), "Unit": unit}

    out = [dp("rows_analyzed", report.rows_analyzed, "Count")]
    if report.status != "no_data":
        out.append(dp("drift_score", report.drift_score))
        out.append(dp("integrity_violations", report.integrity_violations, "Count"))
        for name, f in report.features.items():
            if "distance" in f:
                out.append(dp(feature_metric_name(name), f["distance"]))
    if quality and quality.get("status") == "ok":
        out.append(dp("labelled_rows", quality["labelled_rows"], "Count"))
        for k in QUALITY_METRICS:
            if quality.get(k) is not None:
                out.append(dp(k, quality[k]))
    return out


def feature_metric_name(feature: str) -> str:
    return (FEATURE_PREFIX + feature)[:255]  # CloudWatch's metric-name limit


def put_cloudwatch(points: list[dict], client: Any = None, namespace: str = NAMESPACE) -> int:
    """PutMetricData in batches; returns the number of calls made."""
    if client is None:
        import boto3
        client = boto3.client("cloudwatch")
    calls = 0
    for i in range(0, len(points), MAX_PER_CALL):
        client.put_metric_data(Namespace=namespace, MetricData=points[i:i + MAX_PER_CALL])
        calls += 1
    return calls


def append_local(points: Iterable[dict], path: str | os.PathLike, namespace: str = NAMESPACE) -> Path:
    """Append datapoints to a JSONL file (one whole batch per locked write: no torn lines)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    blob = b"".join(orjson.dumps({"Namespace": namespace, **pt, "Timestamp": format_time(pt["Timestamp"])})
                    + b"\n" for pt in points)
    with open(p, "ab") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(blob)
        fh.flush()
        fcntl.flock(fh, fcntl.LOCK_UN)
    return p


def read_local(path: str | os.PathLike) -> list[dict]:
    """Datapoints of a local metrics file, Timestamp parsed; a missing file is no datapoints."""
    p = Path(path)
    if not p.is_file():
        return []
    out = []
    for line in p.read_bytes().splitlines():
        if line.strip():
            d = orjson.loads(line)
            d["Timestamp"] = parse_time(d["Timestamp"])
            out.append(d)
    return out


def default_local_file(explicit: str | None, fallback_dir: str | os.PathLike) -> Path:
    """--metrics-file, else $CLINICAL_ML_RUN_DIR/metrics/drift_metrics.jsonl, else beside the output."""
    if explicit:
        return Path(explicit)
    run_dir = os.environ.get("CLINICAL_ML_RUN_DIR")
    if run_dir:
        return Path(run_dir) / "metrics" / "drift_metrics.jsonl"
    return Path(fallback_dir) / "drift_metrics.jsonl"
