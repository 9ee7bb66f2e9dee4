"""The demo's endpoint: where it is, traffic through the SageMaker runtime API, which model
answers, and stopping it at the end (``pipelines/local/demo.py``)."""
from __future__ import annotations

import datetime as dt
import json
import os
import time
from pathlib import Path
from typing import Any

from clinical_ml.io import read_json


class DemoError(Exception):
    pass


def endpoint_info(run_dir: Path) -> dict[str, Any]:
    f = run_dir / "steps" / "Deploy" / "output" / "deploy" / "endpoint.json"
    if not f.is_file():
        raise DemoError(f"the Deploy step wrote no endpoint.json ({f})")
    return read_json(f)


def endpoint_url(info: dict[str, Any]) -> str:
    for k in ("url", "endpoint_url", "EndpointUrl", "Url"):
        if info.get(k):
            return str(info[k]).rstrip("/")
    raise DemoError(f"endpoint.json has no url field (keys: {sorted(info)})")


def send_traffic(url: str, endpoint: str, payloads: Path, log: Path, window: str) -> dict[str, int]:
    """Every payload line (one request body each) through the SageMaker runtime API, as
    application code would call the real endpoint: boto3 ``invoke_endpoint`` with the local
    ``endpoint_url``; each request carries an InferenceId (``<window>-<n>``) that its capture
    record keeps, for joining ground truth later."""
    import boto3
    from botocore.exceptions import ClientError

    runtime = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=url,
                           aws_access_key_id="local", aws_secret_access_key="local")
    files = sorted(payloads.rglob("*.jsonl")) if payloads.is_dir() else [payloads]
    ok = bad = 0
    with open(log, "a") as lf:
        for f in files:
            for line in f.read_text().splitlines():
                if not line.strip():
                    continue
                try:
                    runtime.invoke_endpoint(EndpointName=endpoint, Body=line.encode(), ContentType="application/json",
                                            InferenceId=f"{window}-{ok + bad}")
                    ok += 1
                except ClientError as e:
                    bad += 1
                    lf.write(f"{e.response['Error'].get('Code')} {str(e)[:200]}\n")
    if ok == 0:
        raise DemoError(f"the endpoint {url} answered no request successfully ({bad} failed; log {log})")
    return {"ok": ok, "failed": bad}


def captured(capture_root: Path, window: str, since: dt.datetime | None = None) -> int:
    """How many capture records of one window (InferenceId ``<window>-<n>``) are on disk, in the
    hour folders from ``since`` on (``capture_files``: the drift job's reader of the layout)."""
    from clinical_ml.monitor.capture import capture_files

    if not capture_root.is_dir():  # the writer has not flushed its first record yet
        return 0
    prefix, n = f"{window}-", 0
    for f in capture_files(capture_root, start=since):
        for line in f.read_text().splitlines():
            try:
                n += json.loads(line)["eventMetadata"].get("inferenceId", "").startswith(prefix)
            except (ValueError, KeyError, TypeError, AttributeError):
                continue  # a line being written
    return n


def wait_for_capture(capture_root: Path, window: str, expected: int, since: dt.datetime | None = None,
                     timeout_s: float = 15.0) -> int:
    """Poll until every request of a window is captured (the writer flushes in the background
    every 0.25 s, so a fixed sleep waits either too long or too little); returns the count."""
    deadline = time.monotonic() + timeout_s
    while (n := captured(capture_root, window, since)) < expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return n


def load_schedule(ex) -> tuple[dict[str, Any], Path]:
    """(schedule.json of an execution's ScheduleMonitor step, the endpoint's capture folder)."""
    sched_file = ex.run_dir / "steps" / "ScheduleMonitor" / "output" / "schedule" / "schedule.json"
    if not sched_file.is_file():
        raise DemoError(f"the ScheduleMonitor step wrote no schedule.json ({sched_file})")
    schedule = read_json(sched_file)
    if not str(schedule["baseline_uri"]).startswith("s3://"):  # local: relative to schedule.json
        schedule["baseline_uri"] = str(sched_file.parent / schedule["baseline_uri"])
    return schedule, Path(ex.localize(str(schedule["capture_uri"]))) / schedule["endpoint_name"]


def serving_model(info: dict[str, Any]) -> str:
    """Which registered version answers untargeted requests (the heaviest variant)."""
    variants = info.get("variants") or []
    if not variants:
        return "?"
    v = max(variants, key=lambda x: float(x.get("weight", 0)))
    return f"outcomes v{v.get('model_package_version', '?')}"


def stop_endpoint(info: dict[str, Any] | None) -> str:
    if (info or {}).get("container"):  # the endpoint ran as a container (run-local --containers)
        from clinical_ml import containers  # noqa: PLC0415

        gone = containers.run(["rm", "--force", "--ignore", info["container"]], check=False).returncode == 0
        return f"{'stopped' if gone else 'could not stop'} (container {info['container']})"
    pid = (info or {}).get("pid")
    if not pid:
        return "left running (endpoint.json names no pid)"
    try:
        os.kill(int(pid), 15)
        return f"stopped (pid {pid})"
    except (ProcessLookupError, PermissionError, ValueError):
        return f"not running (pid {pid})"
