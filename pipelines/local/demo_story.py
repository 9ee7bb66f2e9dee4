"""The retraining story of ``make demo``: two periods, labelled traffic, a timeline for the report.

The synthetic MIMIC-III has a CareVue era and a later MetaVision era (``synth --later-fraction``,
docs/retraining.md). Execution 1 trains on the early era only (``DataWindowEnd`` = the era
boundary). The traffic then comes from real held-out stays of either era, each request with an
InferenceId, and each window's labels are written as Model Monitor ground-truth records, so the
drift job reports AUROC per window (``--ground-truth``) beside the drift score:

- ``normal``: early-era stays execution 1 did not train on (its val and test splits);
- ``new-period``: the later era's test stays (the champion never saw that era); the alarm fires;
- ``after-promotion``: the same stays again, now answered by the retrained model, which did not
  see them either (the split is by subject hash, so its BuildTasks test split is the same set):
  the two windows' AUROCs compare the two models on the same patients.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import orjson
import pandas as pd

from clinical_ml.io import DataError, atomic_path, read_json
from clinical_ml.tasks.io import read_split

ERA_START = "2200-01-01T00:00:00Z"  # clinical_ml.synth.cohort.T2200: where the later period starts


def later_period_tasks(cli: Callable[[list[str], Path], None], data: Path, out: Path, log: Path) -> Path:
    """The later era's ihm task splits: the new period's traffic (what its hospital would send)."""
    if not (out / "test").is_dir():
        cli(["build-tasks", "--mimic", str(data), "--out", str(out), "--tasks", "ihm",
             "--data-window-start", ERA_START], log)
    return out


def held_out_rows(task_root: Path, splits: tuple[str, ...], limit: int) -> pd.DataFrame:
    """The ihm rows of ``splits`` (sorted by stay, so every run sends the same ones)."""
    frames = [read_split(task_root / s, "ihm") for s in splits if (task_root / s).is_dir()]
    if not frames:
        raise DataError(f"{task_root}: no ihm split among {splits}")
    rows = pd.concat(frames, ignore_index=True).sort_values("icustay_id", kind="stable")
    return rows.head(limit).reset_index(drop=True)


def write_traffic(rows: pd.DataFrame, out: Path, window: str) -> tuple[Path, Path]:
    """(payloads file, ground-truth folder): one request per stay, InferenceId ``<window>-<n>``,
    and its label as a Model Monitor ground-truth record keyed by that id."""
    from monitoring.scenarios import request_columns

    cols = request_columns(rows)
    features = rows[cols].astype(object).where(rows[cols].notna(), None).to_dict("records")
    payloads, truth = out / "payloads.jsonl", out / "ground-truth" / f"{window}.jsonl"
    truth.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(payloads) as tmp:
        tmp.write_bytes(b"".join(orjson.dumps({"instances": [r]}) + b"\n" for r in features))
    with atomic_path(truth) as tmp:
        tmp.write_bytes(b"".join(
            orjson.dumps({"groundTruthData": {"data": str(int(y)), "encoding": "CSV"},
                          "eventMetadata": {"eventId": f"{window}-{i}"}, "eventVersion": "0"}) + b"\n"
            for i, y in enumerate(rows["y"])))
    return payloads, truth.parent


def timeline_entry(window: str, label: str, phase: str, model: str, drift: dict[str, Any],
                   threshold: float) -> dict[str, Any]:
    """One point of the report's timeline from a drift summary (drift score and AUROC)."""
    q = drift.get("model_quality") or {}
    auroc = q.get("model_auroc")
    ci = q.get("model_auroc_ci")
    return {"window": window, "label": label, "phase": phase, "model": model,
            "drift_score": drift.get("drift_score"), "drift_status": drift.get("status"),
            "drift_threshold": threshold, "violations": drift.get("violations"),
            "auroc": auroc if isinstance(auroc, (int, float)) else None, "auroc_ci": ci,
            "rows": drift.get("rows_analyzed"), "labelled": q.get("labelled_rows"),
            "quality_status": q.get("status")}


def promotion(run_dir: Path) -> dict[str, Any] | None:
    """What CompareModels decided in an execution (comparison.json), for the summary and report."""
    f = run_dir / "steps" / "CompareModels" / "output" / "comparison" / "comparison.json"
    if not f.is_file():
        return None
    c = read_json(f)
    t = (c.get("tasks") or {}).get("ihm") or {}
    val = lambda d: (d or {}).get("value")  # noqa: E731
    diff = (t.get("difference") or {}).get("auroc") or {}
    return {"promoted": bool(c["decision"]["promote"]), "reason": c["decision"]["reason"], "test_rows": t.get("n"),
            "champion_auroc": val((t.get("champion") or {}).get("auroc")),
            "challenger_auroc": val((t.get("challenger") or {}).get("auroc")),
            "difference": diff.get("value"), "ci_low": diff.get("ci_low"), "ci_high": diff.get("ci_high"),
            "champion_package": (c.get("champion_package") or {}).get("model_package_arn")}


def step_statuses(execution_summary: dict[str, Any], names: tuple[str, ...]) -> dict[str, str]:
    """``{step: status}`` of the data-dependent steps (the bar: not Cached in a retraining)."""
    steps = {s["name"]: s["status"] for s in execution_summary.get("steps", [])}
    return {n: steps.get(n, "absent") for n in names}
