"""Storm guard: at most one retraining in flight and a cooldown, however many alarms fire.

Three layers (docs/monitoring.md, "Storm guard"):

1. The composite alarm changes state once per drift episode, and EventBridge emits an event on
   state *changes* only: N feature alarms firing is one event.
2. ``decide`` is the rule: a drift-triggered retraining proceeds only if no other execution of
   the pipeline is in flight (``Executing``/``Stopping``; when two start together, the earliest
   by (StartTime, ARN) wins, so exactly one of them proceeds) and no drift-triggered execution
   that went ahead started within ``cooldown_s``. Executions the guard skipped end ``Stopped``
   and do not restart the cooldown. Manual and scheduled triggers always proceed.
3. Where the rule runs: *before* a start (``handle_alarm_event`` and the local loop, under a
   lock, so checks and starts of concurrent events are serialized), and *inside* the pipeline
   as its first step (``monitoring/guard.py``: the pipeline's condition reads
   ``{"proceed": ..., "reason": ...}`` through a PropertyFile), which covers the direct
   EventBridge -> StartPipelineExecution target where nothing runs before the start.
"""
from __future__ import annotations

import fcntl
import os
import tempfile
import uuid
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import orjson

from clinical_ml.monitor.capture import format_time, parse_time

IN_FLIGHT = ("Executing", "Stopping")
DEFAULT_COOLDOWN_S = 6 * 3600


@dataclass
class Execution:
    arn: str
    status: str
    start_time: datetime
    trigger: str = "manual"


def decide(executions: list[Execution], now: datetime, cooldown_s: float = DEFAULT_COOLDOWN_S,
           self_arn: str | None = None, trigger: str = "drift") -> dict[str, Any]:
    """``{"proceed": bool, "reason": str, ...}`` for a retraining triggered by ``trigger``."""
    now = parse_time(now)
    if trigger != "drift":
        return {"proceed": True, "reason": f"trigger={trigger}: the guard applies to drift triggers only"}
    me = next((e for e in executions if e.arn == self_arn), None) if self_arn else None
    others = [e for e in executions if e.arn != self_arn]
    key = (lambda e: (parse_time(e.start_time), e.arn))
    earlier = [e for e in others if me is None or key(e) < key(me)]
    running = [e for e in earlier if e.status in IN_FLIGHT]
    if running:
        first = min(running, key=key)
        return {"proceed": False, "reason": "in_flight", "blocking_execution": first.arn,
                "in_flight": len(running)}
    went_ahead = [e for e in earlier if e.trigger == "drift" and e.status != "Stopped"]
    if went_ahead:
        last = max(went_ahead, key=key)
        age = (now - parse_time(last.start_time)).total_seconds()
        if age < cooldown_s:
            return {"proceed": False, "reason": "cooldown", "last_drift_execution": last.arn,
                    "seconds_since": round(age, 1), "cooldown_s": cooldown_s}
    return {"proceed": True, "reason": "no retraining in flight or in cooldown"}


# ---- SageMaker ----

def sagemaker_executions(sm: Any, pipeline_name: str, trigger_parameter: str = "Trigger",
                         max_results: int = 50) -> list[Execution]:
    """Recent executions of the pipeline with their trigger parameter (newest first)."""
    resp = sm.list_pipeline_executions(PipelineName=pipeline_name, SortBy="CreationTime",
                                       SortOrder="Descending", MaxResults=max_results)
    out = []
    for s in resp.get("PipelineExecutionSummaries", []):
        arn = s["PipelineExecutionArn"]
        params = sm.list_pipeline_parameters_for_execution(PipelineExecutionArn=arn).get(
            "PipelineParameters", [])
        trig = next((p["Value"] for p in params if p["Name"] == trigger_parameter), "manual")
        out.append(Execution(arn, s["PipelineExecutionStatus"], parse_time(s["StartTime"]), trig))
    return out


@contextmanager
def file_lock(path: str | os.PathLike) -> Iterator[None]:
    """Exclusive advisory lock: serializes check-then-start between processes on one host.
    The lock file is created 0600 and never through a symlink (it may live in a shared /tmp)."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(p, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    with os.fdopen(fd, "r+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def handle_alarm_event(event: dict, sm: Any, pipeline_name: str, *,
                       cooldown_s: float = DEFAULT_COOLDOWN_S, parameters: dict[str, str] | None = None,
                       lock_path: str | os.PathLike | None = None, now: datetime | None = None) -> dict:
    """One alarm state-change event -> at most one StartPipelineExecution (guard, then start).

    Usable as the body of an EventBridge-invoked function or by any process that relays alarms.
    Events that are not a transition into ALARM are ignored.
    """
    detail = event.get("detail", {})
    state = detail.get("state", {}).get("value", "ALARM")
    if state != "ALARM":
        return {"proceed": False, "reason": f"alarm state {state}", "started": None}
    now = parse_time(now or datetime.now(timezone.utc))
    lock = lock_path or Path(tempfile.gettempdir()) / f"clinical-ml-guard-{pipeline_name}.lock"
    with file_lock(lock):
        decision = decide(sagemaker_executions(sm, pipeline_name), now, cooldown_s)
        decision["started"] = None
        if decision["proceed"]:
            params = {"Trigger": "drift", **(parameters or {})}
            resp = sm.start_pipeline_execution(
                PipelineName=pipeline_name, ClientRequestToken=uuid.uuid4().hex,
                PipelineExecutionDescription=f"drift alarm {detail.get('alarmName', '')}"[:3072],
                PipelineParameters=[{"Name": k, "Value": str(v)} for k, v in params.items()])
            decision["started"] = resp["PipelineExecutionArn"]
    return decision


# ---- local runner: a small execution ledger under the runs folder ----

class LocalLedger:
    """The local stand-in for ``list_pipeline_executions``: a JSON file of executions.

    The local runner records a start (``record``) and an end (``finish``); the guard reads it.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.lock = self.path.with_name(self.path.name + ".lock")

    def executions(self) -> list[Execution]:
        if not self.path.is_file():
            return []
        rows = orjson.loads(self.path.read_bytes() or b"[]")
        return [Execution(r["arn"], r["status"], parse_time(r["start_time"]), r.get("trigger", "manual"))
                for r in rows]

    def _write(self, execs: list[Execution]) -> None:
        from clinical_ml.io import write_text
        rows = [{**asdict(e), "start_time": format_time(e.start_time)} for e in execs]
        write_text(self.path, orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode() + "\n")

    def record(self, arn: str, trigger: str, status: str = "Executing", start_time: datetime | None = None) -> None:
        with file_lock(self.lock):
            execs = [e for e in self.executions() if e.arn != arn]
            execs.append(Execution(arn, status, parse_time(start_time or datetime.now(timezone.utc)), trigger))
            self._write(execs)

    def finish(self, arn: str, status: str = "Succeeded") -> None:
        with file_lock(self.lock):
            execs = self.executions()
            for e in execs:
                if e.arn == arn:
                    e.status = status
            self._write(execs)

    def guarded_start(self, start: Callable[[dict], Any], params: dict[str, str],
                      cooldown_s: float = DEFAULT_COOLDOWN_S, now: datetime | None = None) -> dict:
        """Decide and, if it proceeds, call ``start(params)`` and record it: one atomic step."""
        now = parse_time(now or datetime.now(timezone.utc))
        with file_lock(self.lock.with_suffix(".start")):
            decision = decide(self.executions(), now, cooldown_s, trigger=params.get("Trigger", "drift"))
            decision["started"] = None
            if decision["proceed"]:
                result = start(params)
                arn, status = (result.get("id"), result.get("status", "Executing")) if isinstance(
                    result, dict) else (str(result), "Executing")
                self.record(arn, params.get("Trigger", "drift"), status, now)
                decision["started"] = arn
        return decision
