"""The training half of ``make demo``: the tuning job's trials and the MLflow runs of execution 1.

The trial table comes from the TuneOutcomes step's record (DescribeHyperParameterTuningJob
shaped); the MLflow check reads the runs back with MLflow's own client, so the demo proves the
store holds what TrackRuns says it logged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from clinical_ml.io import read_json

# 4 trials, 2 at a time (6 took 105 s of the demo's 15 minutes; the extractor's training time
# buys more: its real-text F1 rises steeply with steps on a CPU)
DEMO_TUNING = {"TuningMaxJobs": "4", "TuningMaxParallelJobs": "2"}


def tracking_uri(root: Path) -> str:
    """The demo's MLflow store: SQLite under runs/ (``mlflow ui --backend-store-uri`` opens it)."""
    return f"sqlite:///{(root / 'mlflow.db').resolve()}"


def tuning_summary(run_dir: Path) -> dict[str, Any]:
    record = run_dir / "steps" / "TuneOutcomes" / "output" / "tuning.json"
    if not record.is_file():
        return {}
    rec = read_json(record)
    trials = [{"name": s["TrainingJobName"], "status": s["TrainingJobStatus"],
               "objective": (s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value"),
               "tuned": s["TunedHyperParameters"]} for s in rec["TrainingJobSummaries"]]
    return {"tuning_job": rec["HyperParameterTuningJobName"],
            "strategy": rec["HyperParameterTuningJobConfig"].get("Strategy"),
            "objective": rec["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"],
            "best": rec.get("BestTrainingJob", {}).get("TrainingJobName"), "trials": trials}


def mlflow_summary(run_dir: Path, uri: str) -> dict[str, Any]:
    """The execution's runs as MLflow's client lists them (params and metrics counted)."""
    out_file = run_dir / "steps" / "TrackRuns" / "output" / "tracking" / "mlflow_runs.json"
    if not out_file.is_file():
        return {}
    logged = read_json(out_file)
    if not logged.get("enabled"):
        return {"enabled": False}
    import mlflow  # noqa: PLC0415 (slow import; only when the demo tracked)

    client = mlflow.MlflowClient(tracking_uri=uri)
    parent = logged["parent_run_id"]
    children = client.search_runs([logged["experiment_id"]], f"tags.mlflow.parentRunId = '{parent}'")
    runs = [{"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
             "params": len(r.data.params), "metrics": len(r.data.metrics)} for r in children]
    return {"enabled": True, "tracking_uri": uri, "experiment": logged.get("experiment_name"),
            "parent_run_id": parent, "outcomes_run_id": logged.get("outcomes_run_id"),
            "extractor_run_id": logged.get("extractor_run_id"), "child_runs": runs,
            "open_with": f"mlflow ui --backend-store-uri {uri}"}


def summary_lines(training: dict[str, Any]) -> list[str]:
    lines = []
    tune = training.get("tuning") or {}
    if tune:
        done = [t for t in tune["trials"] if t["objective"] is not None]
        lines.append(f"  tuning {tune['tuning_job']} ({tune['strategy']}): {len(done)}/{len(tune['trials'])} "
                     f"trials, best {tune['best']} {tune['objective']}="
                     + (f"{done[0]['objective']:.4f}" if done else "-"))
    ml = training.get("mlflow") or {}
    if ml.get("enabled"):
        lines.append(f"  mlflow: {len(ml['child_runs'])} child runs under {ml['parent_run_id']}; "
                     f"open with: {ml['open_with']}")
    return lines
