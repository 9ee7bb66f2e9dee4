"""Drift job (processing step, runs on a schedule): captured traffic of a window vs the baseline.

    python -m monitoring.drift_job --capture /opt/ml/processing/input/capture \
        --baseline /opt/ml/processing/input/baseline --output /opt/ml/processing/output/drift \
        --window-end 2026-01-31T14:00:00Z

Writes Model Monitor's ``constraint_violations.json`` and the window's ``statistics.json``, plus
``drift_summary.json`` (status ``no_data`` | ``ok`` | ``drift``, drift score, rows, window) and
publishes the metrics (CloudWatch under SageMaker, a JSONL file under the local backend).
Run by hand with no AWS region configured, the metrics go to the local file, with one warning
line saying where and how to publish instead; a failed PutMetricData (no credentials, no
permission) is one error line naming what to do, never a botocore traceback. With ``--ground-truth`` it also reports model quality (AUROC, Brier, calibration;
``clinical_ml.monitor.quality``), and with ``--registered-metrics`` its drop vs the registered model.
"""
from __future__ import annotations

import argparse
import os
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from clinical_ml.io import DataError, backend, write_json
from clinical_ml.logs import get_logger
from clinical_ml.monitor.env import processing_path
from clinical_ml.monitor import check, formats, metrics, quality
from clinical_ml.monitor.capture import CaptureWindow, format_time, parse_time, read_window

log = get_logger("monitoring.drift_job")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clinical-ml drift", description=__doc__.splitlines()[0])
    p.add_argument("--capture", default=processing_path("input/capture"),
                   help="data-capture folder (<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl below it)")
    p.add_argument("--baseline", default=processing_path("input/baseline"))
    p.add_argument("--output", default=processing_path("output/drift"))
    p.add_argument("--window-start", default=None, help="ISO time (default: window end - window hours)")
    p.add_argument("--window-end", default=None,
                   help="ISO time, floored to the hour (default: the start of the current hour)")
    p.add_argument("--window-hours", type=float, default=1.0)
    p.add_argument("--endpoint", default=os.environ.get("ENDPOINT_NAME"),
                   help="metric dimension Endpoint (default: the capture folder's only endpoint)")
    p.add_argument("--schedule", default=os.environ.get("MONITORING_SCHEDULE_NAME", "clinical-ml-drift"),
                   help="metric dimension MonitoringSchedule")
    p.add_argument("--metrics-file", default=None, help="local backend: metrics JSONL to append to")
    p.add_argument("--metrics-backend", choices=("auto", "cloudwatch", "local"), default="auto",
                   help="where metrics go; auto: the local file under CLINICAL_ML_BACKEND=local or "
                        "when no AWS region is configured (a run by hand), else CloudWatch")
    p.add_argument("--no-metrics", action="store_true", help="write files only")
    p.add_argument("--ground-truth", default=None, help="folder of ground-truth JSONL records")
    p.add_argument("--registered-metrics", default=None,
                   help="evaluation.json / model_metrics.json of the registered model")
    p.add_argument("--comparison-threshold", type=float, default=None,
                   help="override the constraints' comparison_threshold (numeric and categorical)")
    p.add_argument("--task", default="ihm")
    p.add_argument("--max-auroc-drop", type=float, default=0.05)
    p.add_argument("--max-brier-increase", type=float, default=0.02)
    return p.parse_args(argv)


def window_bounds(start: str | None, end: str | None, hours: float) -> tuple[datetime, datetime]:
    if end is None:
        end_dt = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
    else:
        end_dt = parse_time(end)
        if start is None:  # a scheduled run passes its scheduled time: analyse the hour before
            end_dt = end_dt.replace(minute=0, second=0, microsecond=0)
    start_dt = parse_time(start) if start else end_dt - timedelta(hours=hours)
    if start_dt >= end_dt:
        raise DataError(f"window start {format_time(start_dt)} is not before its end {format_time(end_dt)}")
    return start_dt, end_dt


def infer_endpoint(capture: str) -> str:
    subdirs = [p.name for p in Path(capture).iterdir() if p.is_dir()] if Path(capture).is_dir() else []
    return subdirs[0] if len(subdirs) == 1 else "unknown"


def aws_region() -> str | None:
    """The region to publish to: boto3's (AWS_DEFAULT_REGION, the profile's config), else
    AWS_REGION (which SageMaker jobs set and boto3 itself does not read)."""
    try:
        import boto3  # noqa: PLC0415

        region = boto3.session.Session().region_name
    except Exception:  # noqa: BLE001 (a broken AWS config file: no usable region from it)
        region = None
    return region or os.environ.get("AWS_REGION") or None


def metrics_target(choice: str) -> tuple[str, str | None]:
    """("local", why it was chosen automatically, or None) or ("cloudwatch", region)."""
    if choice == "local" or (choice == "auto" and backend() == "local"):
        return "local", None
    region = aws_region()
    if region is None:
        if choice == "cloudwatch":
            raise DataError("--metrics-backend cloudwatch: no AWS region configured; set "
                            "AWS_REGION (and credentials), or use --metrics-backend local")
        return "local", "no AWS region configured (AWS_REGION, AWS_DEFAULT_REGION or a profile)"
    return "cloudwatch", region


def cloudwatch_error(e: Exception, n: int, out: Path) -> str:
    """One line for a failed PutMetricData: what failed and what to do instead."""
    name = type(e).__name__
    hint = {"NoCredentialsError": "no AWS credentials found: configure them (AWS_PROFILE, "
                                  "aws configure, an instance role)",
            "EndpointConnectionError": "CloudWatch is not reachable from here"}.get(
        name, "check the identity's cloudwatch:PutMetricData permission and the region")
    return (f"publishing {n} drift metrics to CloudWatch failed ({name}: {str(e)[:200]}); {hint}, "
            f"or rerun with --metrics-backend local or --no-metrics. The window's files are in {out}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    start, end = window_bounds(args.window_start, args.window_end, args.window_hours)
    statistics, constraints = formats.read_baseline(args.baseline)
    if args.comparison_threshold is not None:
        dc = constraints.setdefault("monitoring_config", {}).setdefault("distribution_constraints", {})
        dc["comparison_threshold"] = dc["categorical_comparison_threshold"] = args.comparison_threshold
    names = [f["name"] for f in constraints["features"]]
    endpoint = args.endpoint or infer_endpoint(args.capture)
    text = [f["name"] for f in constraints["features"] if f["inferred_type"] == "String"]
    win = read_window(args.capture, names, start, end, string_columns=text, task=args.task) if Path(args.capture).exists() else None
    if win is None:
        log.warning("drift: capture folder %s does not exist yet: treating the window as empty", args.capture)
        win = CaptureWindow(pd.DataFrame(columns=names), np.empty(0), [], np.empty(0, dtype=np.int64))
    report = check.run_checks(statistics, constraints, win.frame)
    qual = None
    if args.ground_truth:  # no labels for the window yet: status "none", no quality datapoint
        qual = quality.evaluate(win.event_ids, win.row_in_event, win.predictions,
                                quality.read_ground_truth(args.ground_truth),
                                quality.registered_metrics(args.registered_metrics, args.task)
                                if args.registered_metrics else {},
                                args.max_auroc_drop, args.max_brier_increase,
                                inference_ids=win.inference_ids)
    out = Path(args.output)
    write_json(out / formats.VIOLATIONS, formats.validate_violations({"violations": report.violations}))
    if report.statistics is not None:
        write_json(out / formats.STATISTICS, formats.validate_statistics(report.statistics), indent=None)
    summary = {**report.summary(), "window_start": format_time(start), "window_end": format_time(end),
               "endpoint": endpoint, "schedule": args.schedule, "capture_files": win.files,
               "capture_records": win.records, "undecodable_records": win.undecodable,
               "features": {n: f for n, f in report.features.items() if f.get("score", 0) > 1},
               "model_quality": qual}
    if report.status == "no_data":
        summary["message"] = "no data: no captured requests in the window; no drift evaluated"
    points = metrics.datapoints(report, endpoint, args.schedule, end, qual)
    failure = None
    if not args.no_metrics:
        target, detail = metrics_target(args.metrics_backend)
        if target == "local":
            why = detail
            path = metrics.append_local(points, metrics.default_local_file(args.metrics_file, out))
            summary["metrics"] = {"backend": "local", "file": str(path), "datapoints": len(points)}
            if why:
                summary["metrics"]["reason"] = why
                log.warning("drift: %s: metrics written to %s, not CloudWatch (set AWS_REGION and "
                            "credentials to publish them, or pass --no-metrics)", why, path)
        else:
            import boto3  # noqa: PLC0415
            from botocore.exceptions import BotoCoreError, ClientError  # noqa: PLC0415

            try:
                calls = metrics.put_cloudwatch(points, boto3.client("cloudwatch", region_name=detail))
                summary["metrics"] = {"backend": "cloudwatch", "namespace": metrics.NAMESPACE,
                                      "datapoints": len(points), "calls": calls}
            except (BotoCoreError, ClientError) as e:  # one line saying what to do, no traceback
                failure = cloudwatch_error(e, len(points), out)
                summary["metrics"] = {"backend": "cloudwatch", "error": failure}
    write_json(out / "drift_summary.json", summary)
    if failure:
        raise DataError(failure)
    log.info("drift: window %s..%s rows=%d status=%s score=%s violations=%d undecodable=%d",
             summary["window_start"][11:16], summary["window_end"][11:16], report.rows_analyzed,
             report.status, None if report.drift_score is None else round(report.drift_score, 3),
             len(report.violations), win.undecodable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
