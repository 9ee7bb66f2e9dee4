"""Run the pipeline definition on this machine: one execution of ``get_pipeline``'s JSON
(``run_execution``), its parameters and caching; the command line is ``pipelines.local.cli``
(``clinical-ml run-local``). See docs/local-runner.md.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, write_json

from pipelines.local.engine import Execution, StepResult, dependencies, descendants, flatten_steps, parameter_values
from pipelines.local.steproc import check_stale

DATA_PARAMETER = "InputDataUri"
CORPORA_PARAMETER = "AnnotatedCorporaUri"


def new_execution_id() -> str:
    """Sortable and unique: ``20261128T130501-3fa9c2`` (the run folder's name)."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def build_definition() -> dict[str, Any]:
    """The pipeline definition from ``get_pipeline``: the exact JSON ``make definition`` prints."""
    try:
        from pipelines.commands import build_definition as build
    except ImportError as e:
        raise DataError("the pipeline definition code is missing (pipelines/commands.py build_definition / "
                        f"pipelines/definition.py get_pipeline): {e}; pass --definition FILE instead") from None
    definition = build()
    return json.loads(definition) if isinstance(definition, str) else definition


class Progress:
    """One status line per step (start, end, duration); a live last-log line on a terminal."""

    def __init__(self, stream=None, total: int = 0):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.total, self.count, self.started = total, 0, {}
        self._live = False

    def __call__(self, step: str, state: str, detail: str) -> None:
        if state == "Running":
            if self.tty:
                line = f"    {step}: {detail}"[: shutil.get_terminal_size((100, 20)).columns - 1]
                self.stream.write("\r\x1b[2K" + line)
                self.stream.flush()
                self._live = True
            return
        if self._live:
            self.stream.write("\r\x1b[2K")
            self._live = False
        if state == "Executing":
            self.count += 1
            self.started[step] = time.monotonic()
            self.stream.write(f"[{self.count:>2}/{self.total}] {step:<28} {detail} ...\n")
        else:
            self.stream.write(f"       {step:<28} {state:<11} {detail}\n")
        self.stream.flush()


def point_latest(root: Path, target: Path) -> None:
    link = root / "latest"
    tmp = root / f".latest.{os.getpid()}"
    if tmp.is_symlink():
        tmp.unlink()
    os.symlink(target.name, tmp)
    os.replace(tmp, link)


def execution_summary(ex: Execution, trigger: str, started: float) -> dict[str, Any]:
    return {
        "execution_id": ex.execution_id, "execution_arn": execution_arn(ex.pipeline_name, ex.execution_id),
        "trigger": trigger, "run_dir": str(ex.run_dir),
        "status": "Failed" if ex.failure else "Succeeded",
        "failure": ({"step": ex.failure.step, "message": ex.failure.message, "log": str(ex.failure.log or "")}
                    if ex.failure else None),
        "parameters": ex.parameters, "duration_s": round(time.monotonic() - started, 2),
        "steps": [_step_row(r) for r in ex.results.values()],
    }


def _step_row(r: StepResult) -> dict[str, Any]:
    return {"name": r.name, "type": r.type, "status": r.status, "duration_s": round(r.duration_s, 2),
            "message": r.message, "log": r.log}


def run_execution(definition: dict[str, Any], root: Path, params: dict[str, str], *, trigger: str = "manual",
                  from_step: str | None = None, resume: str | None = None, use_cache: bool = True,
                  stream=None, execution_id: str | None = None,
                  containers: bool = False) -> tuple[Execution, dict[str, Any]]:
    """Run one execution; returns it and its summary (written to the run folder)."""
    root = root.resolve()
    declared = {p["Name"] for p in definition.get("Parameters", [])}
    if "Trigger" in declared and "Trigger" not in params:
        params = {**params, "Trigger": trigger}
    values = parameter_values(definition, params)
    resume_from = None
    if from_step or resume:
        resume_from = (root / resume) if resume else (root / "latest")
        if not (resume_from / "steps").is_dir():
            raise DataError(f"{resume_from}: no earlier execution to resume from (run once without --from-step)")
        resume_from = resume_from.resolve()
        for msg in check_stale(resume_from):  # a step left running by a killed runner
            (stream or sys.stderr).write(msg + "\n")
    ex_id = execution_id or new_execution_id()
    run_dir = root / ex_id
    ex = Execution(definition=definition, run_dir=run_dir, execution_id=ex_id, parameters=values, root=root,
                   pipeline_name=os.environ.get("PIPELINE_NAME", "clinical-ml"), resume_from=resume_from,
                   use_cache=use_cache)
    if containers:  # every Processing/Training job in its image (pipelines/local/containers.py)
        from clinical_ml.version import code_version
        from pipelines.local.containers import runtime_for
        ex.containers = runtime_for(root, run_dir, ex_id, code_version())
    if from_step:
        steps, branch = flatten_steps(definition)
        if from_step not in steps:
            raise DataError(f"--from-step {from_step!r}: no such step; steps are {sorted(steps)}")
        ex.rerun = {from_step} | descendants(from_step, dependencies(steps, branch))
    ex.progress = Progress(stream, total=len(flatten_steps(definition)[0]))
    started = time.monotonic()
    (stream or sys.stderr).write(f"execution {ex_id} (trigger={trigger}) -> {run_dir}\n")
    ledger = _ledger(root)
    arn = execution_arn(ex.pipeline_name, ex_id)
    if ledger is not None:  # the storm guard's view of executions in flight
        ledger.record(arn, str(values.get("Trigger", trigger)))
    try:
        ex.run()
    finally:
        if ledger is not None:
            ledger.finish(arn, "Failed" if (ex.failure or sys.exc_info()[0]) else "Succeeded")
        summary = execution_summary(ex, trigger, started)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / "execution.json", summary)
        point_latest(root, run_dir)
    return ex, summary


def execution_arn(pipeline: str, execution_id: str) -> str:
    return f"arn:aws:sagemaker:local:000000000000:pipeline/{pipeline}/execution/{execution_id}"


def _ledger(root: Path):
    """runs/guard/executions.json (clinical_ml.monitor.guard), shared with the DriftGuard step."""
    try:
        from clinical_ml.monitor.guard import LocalLedger
        from clinical_ml.monitor.loop import default_ledger
    except ImportError:
        return None
    return LocalLedger(default_ledger(root))


def parse_params(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise DataError(f"--param {item!r}: use Name=Value")
        out[name] = value
    return out


def corpora_value(arg: str) -> str:
    """``--corpora`` as the AnnotatedCorporaUri value: "" for none, a folder made absolute."""
    if arg.strip().lower() in ("", "none"):
        return ""
    if arg.startswith("s3://"):
        return arg
    p = Path(arg).expanduser()
    if not p.is_dir():
        raise DataError(f"--corpora {arg}: no such folder; pass a folder of brat / PubTator / JSONL "
                        "corpora (e.g. ../shared/data), an s3:// prefix, or none")
    return str(p.resolve())
