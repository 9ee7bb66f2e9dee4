"""Storm guard (processing step, first step of a retraining execution): proceed or stand down.

    python -m monitoring.guard --pipeline-name clinical-ml --execution-arn <this execution> \
        --trigger drift --output /opt/ml/processing/output/guard

Writes ``guard.json`` ``{"proceed": true|false, "reason": ..., "data_window": {...}}``; the
pipeline's condition reads ``proceed`` and BuildTasks its window (``data_window.start``/``end``)
through a PropertyFile. The window rule is ``clinical_ml.tasks.window.retraining_window``: the
DataWindowStart/End parameters when given, else for a drift trigger the admissions newer than the
production model's training window (the newest Approved version of ``--champion-group``).

A drift-triggered execution proceeds only when no earlier execution is in flight and no drift
retraining went ahead within the cooldown
(``clinical_ml.monitor.guard.decide``). Under SageMaker, a skipped execution stops itself
(``--stop-skipped``) so it ends ``Stopped`` and does not extend the cooldown. Under the local
backend the executions come from the local runner's ledger (``--ledger``).
"""
from __future__ import annotations

import argparse
import os
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

from clinical_ml.io import DataError, backend, write_json
from clinical_ml.logs import get_logger
from clinical_ml.monitor.env import processing_path
from clinical_ml.monitor.guard import DEFAULT_COOLDOWN_S, LocalLedger, decide, sagemaker_executions
from clinical_ml.tasks.window import OPEN, retraining_window

log = get_logger("monitoring.guard")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="monitoring.guard", description=__doc__.splitlines()[0])
    p.add_argument("--pipeline-name", default=os.environ.get("PIPELINE_NAME", "clinical-ml"))
    p.add_argument("--execution-arn", default=os.environ.get("PIPELINE_EXECUTION_ARN"),
                   help="this execution (ExecutionVariables.PIPELINE_EXECUTION_ARN)")
    p.add_argument("--trigger", default="manual", help="the execution's Trigger parameter")
    p.add_argument("--data-window-start", default="none", help="DataWindowStart (none: the rule decides)")
    p.add_argument("--data-window-end", default="none", help="DataWindowEnd (none: the rule decides)")
    p.add_argument("--champion-group", default="",
                   help="outcomes model package group whose newest Approved version is the production model")
    p.add_argument("--cooldown-hours", type=float, default=DEFAULT_COOLDOWN_S / 3600)
    p.add_argument("--ledger", default=None,
                   help="local backend: executions ledger (default $CLINICAL_ML_RUN_DIR/../guard/executions.json)")
    p.add_argument("--stop-skipped", action=argparse.BooleanOptionalAction, default=True,
                   help="sagemaker backend: stop this execution when the guard skips it")
    p.add_argument("--output", "--output-dir", dest="output", default=processing_path("output/guard"))
    return p.parse_args(argv)


def _local_self(execs: list, execution_arn: str | None) -> str | None:
    """This execution's ledger entry: the runner may record its id where we were given an ARN."""
    ids = {i for i in (execution_arn, os.environ.get("CLINICAL_ML_EXECUTION_ID")) if i}
    for e in execs:
        if e.arn in ids or any(e.arn.endswith(i) or i.endswith(e.arn) for i in ids):
            return e.arn
    return execution_arn


def data_window(args: argparse.Namespace, sm=None) -> dict:
    """The execution's data window; the registry is asked only when the rule needs the champion."""
    needs_champion = (args.trigger == "drift" and args.champion_group
                      and all(str(v).strip().lower() in OPEN for v in (args.data_window_start, args.data_window_end)))
    champion = None
    if needs_champion:
        from clinical_ml.outcomes.production import latest_approved  # noqa: PLC0415

        champion = latest_approved(args.champion_group, sm=sm)
    window = retraining_window(args.trigger, args.data_window_start, args.data_window_end, champion)
    log.info("guard: data window [%s, %s) (%s: %s)", window["start"], window["end"], window["rule"], window["reason"])
    return window


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    now = datetime.now(timezone.utc)
    cooldown = args.cooldown_hours * 3600
    sm = None
    if args.trigger != "drift":
        decision = decide([], now, cooldown, trigger=args.trigger)
    elif backend() == "local":
        ledger = args.ledger or (Path(os.environ["CLINICAL_ML_RUN_DIR"]).parent / "guard" / "executions.json"
                                 if os.environ.get("CLINICAL_ML_RUN_DIR") else None)
        if ledger is None:
            raise DataError("local backend: pass --ledger or set CLINICAL_ML_RUN_DIR")
        execs = LocalLedger(ledger).executions()
        decision = decide(execs, now, cooldown, _local_self(execs, args.execution_arn), args.trigger)
    else:
        import boto3
        sm = boto3.client("sagemaker")
        decision = decide(sagemaker_executions(sm, args.pipeline_name), now, cooldown,
                          args.execution_arn, args.trigger)
    decision["trigger"] = args.trigger
    decision["data_window"] = data_window(args, sm)
    write_json(Path(args.output) / "guard.json", decision)
    log.info("guard: trigger=%s proceed=%s reason=%s", args.trigger, decision["proceed"], decision["reason"])
    if sm is not None and not decision["proceed"] and args.stop_skipped and args.execution_arn:
        sm.stop_pipeline_execution(PipelineExecutionArn=args.execution_arn,
                                   ClientRequestToken=uuid.uuid4().hex)
    return 0


if __name__ == "__main__":
    sys.exit(main())
