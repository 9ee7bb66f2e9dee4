"""The local drift loop for ``make demo``: metrics -> alarm evaluation -> storm guard -> start.

Mirrors the AWS chain (drift job -> CloudWatch -> composite alarm -> EventBridge rule ->
StartPipelineExecution(Trigger=drift)) with the same alarm definitions (``alarms.alarm_specs``)
evaluated over the local metrics file the drift job appends to. ``start_execution`` is the local
runner's own "start an execution" callable; it receives the pipeline parameters.
"""
from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from clinical_ml import audit
from clinical_ml.logs import get_logger
from clinical_ml.monitor import alarms, metrics
from clinical_ml.monitor.capture import format_time
from clinical_ml.monitor.guard import DEFAULT_COOLDOWN_S, LocalLedger

log = get_logger(__name__)


def evaluate_and_trigger(metrics_file: str | os.PathLike, endpoint_name: str, schedule_name: str,
                         start_execution: Callable[[dict[str, str]], Any],
                         ledger_file: str | os.PathLike, *, threshold: float = 1.0,
                         cooldown_s: float = DEFAULT_COOLDOWN_S, now: datetime | None = None,
                         window: tuple[datetime, datetime] | None = None,
                         specs: list[dict] | None = None,
                         extra_parameters: dict[str, str] | None = None) -> dict[str, Any]:
    """Evaluate the alarms on the local metrics; on a composite ALARM, start one guarded execution.

    Returns ``{"alarms": {name: state}, "composite": state, "decision": {...} | None,
    "started": execution id | None}``. The execution gets ``Trigger=drift`` and the static
    ``extra_parameters`` only, as from EventBridge: ``window`` (the capture window that fired, in
    wall-clock time, not ADMITTIME) goes to the audit trail, and the execution's DriftGuard finds
    its data window itself (``clinical_ml.tasks.window.retraining_window``).
    """
    specs = specs or alarms.alarm_specs(endpoint_name, schedule_name, threshold)
    points = metrics.read_local(metrics_file)
    states = alarms.evaluate_all(specs, points, now)
    composite = next(s["AlarmName"] for s in specs if "AlarmRule" in s)
    result: dict[str, Any] = {"alarms": states, "composite": states[composite], "decision": None,
                              "started": None}
    if states[composite] != "ALARM":
        log.info("drift loop: composite alarm %s (%d datapoints)", states[composite], len(points))
        return result
    audit.log_event("drift_alarm", alarm=composite, endpoint=endpoint_name,
                    alarms={k: v for k, v in states.items() if v == "ALARM"})
    params = {"Trigger": "drift", **(extra_parameters or {})}
    alarm_window = [format_time(window[0]), format_time(window[1])] if window else None
    decision = LocalLedger(ledger_file).guarded_start(start_execution, params, cooldown_s, now)
    result.update(decision=decision, started=decision.get("started"))
    audit.log_event("retrain_triggered", "ok" if decision["proceed"] else "skipped",
                    trigger="drift", reason=decision["reason"], execution=decision.get("started"),
                    alarm_window=alarm_window)
    log.info("drift loop: ALARM -> guard %s (%s)", "proceeds" if decision["proceed"] else "skips",
             decision["reason"])
    return result


def default_ledger(run_root: str | os.PathLike) -> Path:
    """``runs/guard/executions.json``: where the local runner and the guard share executions."""
    return Path(run_root) / "guard" / "executions.json"
