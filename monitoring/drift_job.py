"""Drift job (processing step, runs on a schedule): captured traffic of a window vs the baseline.

    python -m monitoring.drift_job --capture /opt/ml/processing/input/capture \
        --baseline /opt/ml/processing/input/baseline --output /opt/ml/processing/output/drift \
        --window-end 2026-01-31T14:00:00Z

Writes Model Monitor's ``constraint_violations.json`` and the window's ``statistics.json``, plus
``drift_summary.json`` (status ``no_data`` | ``ok`` | ``drift``, drift score, rows, window) and
publishes the metrics (CloudWatch under SageMaker, a JSONL file under the local backend).
With ``--ground-truth`` and ``--registered-metrics`` it also checks model quality.
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
    if args.ground_truth and args.registered_metrics and report.status != "no_data":
        qual = quality.evaluate(win.event_ids, win.row_in_event, win.predictions,
                                quality.read_ground_truth(args.ground_truth),
                                quality.registered_metrics(args.registered_metrics, args.task),
                                args.max_auroc_drop, args.max_brier_increase)
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
    if not args.no_metrics:
        if backend() == "local":
            path = metrics.append_local(points, metrics.default_local_file(args.metrics_file, out))
            summary["metrics"] = {"backend": "local", "file": str(path), "datapoints": len(points)}
        else:
            calls = metrics.put_cloudwatch(points)
            summary["metrics"] = {"backend": "cloudwatch", "namespace": metrics.NAMESPACE,
                                  "datapoints": len(points), "calls": calls}
    write_json(out / "drift_summary.json", summary)
    log.info("drift: window %s..%s rows=%d status=%s score=%s violations=%d undecodable=%d",
             summary["window_start"][11:16], summary["window_end"][11:16], report.rows_analyzed,
             report.status, None if report.drift_score is None else round(report.drift_score, 3),
             len(report.violations), win.undecodable)
    return 0


if __name__ == "__main__":
    sys.exit(main())
