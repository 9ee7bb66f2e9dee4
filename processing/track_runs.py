"""Log one pipeline execution to MLflow (processing step TrackRuns, after the evaluations).

    python processing/track_runs.py \
        --tracking-uri arn:aws:sagemaker:us-east-1:123456789012:mlflow-tracking-server/clinical-ml \
        --tuning-job-name TuneOutcomes-abc123 --execution-arn <this execution> --trigger manual
    clinical-ml track-runs --tracking-uri sqlite:////abs/runs/mlflow.db --tuning-job-name TuneOutcomes-<id> \
        --execution-arn arn:aws:sagemaker:local:000000000000:pipeline/clinical-ml/execution/<id> \
        --outcomes-evaluation eval/ --extractor-evaluation xeval/ --extractor-model xmodel/ --output track/

One parent run per execution (run name = execution id; tags: execution ARN, trigger, code
version, data window; metrics: the ``gate`` blocks of evaluation.json as ``outcomes.*`` and of
extraction_evaluation.json as ``extractor.*``), a child run per tuning trial (params: its
hyperparameters; metrics: the objective, per-task training numbers, the XGBoost validation
curve per task with ``step`` = round; the trial's model.tar.gz as artifact ``model/``; status
FAILED for a failed trial; tag ``best=true`` and the test metrics ``test.*`` on the best one) and
one for the extractor training job. The trials come from ``clinical_ml.tracking.list_trials``
(SageMaker, or the local runner's tuning record under ``CLINICAL_ML_BACKEND=local``).

Writes ``mlflow_runs.json`` (``parent_run_id``, ``outcomes_run_id`` = the best trial's run,
``extractor_run_id``, ``trials``; layout in docs/contracts.md). A retry of the same execution
reuses its runs (parent by tag ``pipeline_execution_arn``, children by ``training_job_name``).
``--tracking-uri ''`` (or ``none``): tracking off, the file says ``"enabled": false``.
An absent evaluation/extractor folder means no such metrics (one log line says so).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

# MLflow 3 sends usage telemetry unless told not to; set before it is imported.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")

from clinical_ml import tracking as tr
from clinical_ml.io import DataError, processing_dir, read_json, write_json
from clinical_ml.logs import get_logger
from clinical_ml.version import code_version

log = get_logger("track_runs")
BASE = processing_dir()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tracking-uri", default=os.environ.get("MLFLOW_TRACKING_URI", ""),
                   help="MLflow tracking server ARN, sqlite:////abs/path/mlflow.db, http(s)://...; '' or none: off")
    p.add_argument("--pipeline-name", default=os.environ.get("PIPELINE_NAME", "clinical-ml"))
    p.add_argument("--experiment-name", default="", help="default: the pipeline name")
    p.add_argument("--artifact-location", default="",
                   help="artifact root of a new experiment (default: beside a sqlite file; the server's otherwise)")
    p.add_argument("--execution-arn", default=os.environ.get("PIPELINE_EXECUTION_ARN", ""),
                   help="this execution (ExecutionVariables.PIPELINE_EXECUTION_ARN)")
    p.add_argument("--trigger", default="manual", help="the execution's Trigger parameter")
    p.add_argument("--data-window-start", default="none")
    p.add_argument("--data-window-end", default="none")
    p.add_argument("--tuning-job-name", default="", help="the outcome tuning job (HyperParameterTuningJobName)")
    p.add_argument("--outcomes-evaluation", default=f"{BASE}/input/outcomes_evaluation",
                   help="EvaluateOutcomes output folder (evaluation.json) or the file")
    p.add_argument("--extractor-evaluation", default=f"{BASE}/input/extractor_evaluation",
                   help="EvaluateExtractor output folder (extraction_evaluation.json) or the file")
    p.add_argument("--extractor-model", default=f"{BASE}/input/extractor_model",
                   help="extractor model.tar.gz, or a folder holding it or the model files")
    p.add_argument("--extractor-validation", default=f"{BASE}/input/extractor_validation",
                   help="TrainExtractor's validation.json, a folder holding it, or its output.tar.gz")
    p.add_argument("--extractor-job-name", default="TrainExtractor",
                   help="the extractor training job's name (the child run's training_job_name)")
    p.add_argument("--log-models", action=argparse.BooleanOptionalAction, default=True,
                   help="log each trial's model.tar.gz as an artifact")
    p.add_argument("--output", default=f"{BASE}/output/tracking", help="output folder (mlflow_runs.json)")
    return p.parse_args(argv)


def _gate(path: str, name: str) -> tuple[Path | None, dict]:
    """(file, numeric leaves of its ``gate``); (None, {}) when the folder/file is absent."""
    p = Path(path)
    f = p / name if p.is_dir() else p
    if not f.is_file():
        log.info("no %s at %s: no such metrics", name, path)
        return None, {}
    gate = read_json(f).get("gate")
    if not isinstance(gate, dict):
        raise DataError(f"{f}: no 'gate' object; pass the evaluation step's output folder")
    return f, tr.flatten_numeric(gate)


def _optional(path: str, name: str) -> dict | None:
    if not Path(path).exists():
        log.info("no %s at %s", name, path)
        return None
    return tr.read_member_json(path, name)


def _execution_id(arn: str) -> str:
    if "/execution/" in arn:
        return arn.rsplit("/", 1)[-1]
    return os.environ.get("CLINICAL_ML_EXECUTION_ID") or arn


def _log_trial(client, exp_id: str, parent_id: str, t: tr.Trial, existing, tuning_job: str,
               test_metrics: dict, scratch: Path, log_models: bool) -> str:
    tags = {tr.JOB_TAG: t.training_job_name, "role": "trial", "tuning_job_name": tuning_job,
            "training_job_status": t.status, "best": str(t.best).lower()}
    run_id, done = tr.open_run(client, exp_id, t.training_job_name, tags, existing, parent_id, t.start_ms)
    if done:
        return run_id
    if t.arn:
        tags["training_job_arn"] = t.arn
    if t.failure_reason:
        tags["failure_reason"] = t.failure_reason
    metrics: dict[str, float] = {}
    if t.objective is not None:
        metrics["objective"] = t.objective
        if t.objective_metric:
            metrics[tr.metric_key(t.objective_metric)] = t.objective
            tags["objective_metric"] = t.objective_metric
    model = tr.fetch_model(t.model_uri, scratch / t.training_job_name) if t.status != "Failed" else None
    if t.model_uri and t.status != "Failed" and model is None:
        log.warning("trial %s: model %s not found; no model metrics or artifact", t.training_job_name, t.model_uri)
    meta = tr.read_member_json(model, "metadata.json") if model else None
    params = {k: str(v) for k, v in ((meta or {}).get("hyperparameters") or {}).items()}
    params.update(t.hyperparameters)
    scalars, curves = tr.trial_metrics(meta or {})
    metrics.update(scalars)
    if t.best:
        metrics.update({f"test.{k}": v for k, v in test_metrics.items()})
    tr.log(client, run_id, {tr.metric_key(k): v for k, v in params.items()}, metrics, tags, curves)
    if model is not None and log_models:
        client.log_artifact(run_id, str(model), "model")
    client.set_terminated(run_id, t.mlflow_status, end_time=t.end_ms)
    return run_id


def _log_extractor(client, exp_id: str, parent_id: str, name: str, meta: dict | None, val: dict | None,
                   test_metrics: dict, existing, model: Path | None = None) -> str:
    """The extractor training job's child run; ``model``: its model.tar.gz, logged as the artifact."""
    run_id, done = tr.open_run(client, exp_id, name, {tr.JOB_TAG: name, "role": "extractor"}, existing, parent_id)
    if done:
        return run_id
    training = (val or {}).get("training") or (meta or {}).get("training") or {}
    params = tr.extractor_params(meta or {"training": training})
    metrics = tr.flatten_numeric({k: v for k, v in training.items() if k != "hyperparameters"})
    metrics.update({f"test.{k}": v for k, v in test_metrics.items()})
    curve = training.get("loss_curve")  # per optimizer step (train_extractor.py)
    curves = {"train.loss": [float(v) for v in curve]} if isinstance(curve, list) else None
    tr.log(client, run_id, params, metrics, {"code_version": (meta or {}).get("code_version", "unknown")}, curves)
    if model is not None:
        client.log_artifact(run_id, str(model), "model")
    client.set_terminated(run_id, "FINISHED")
    return run_id


def _extractor_tarball(path: str) -> Path | None:
    """The extractor's model.tar.gz (given itself or its folder); a plain model folder is not
    re-packed for tracking."""
    p = Path(path)
    if p.is_file() and p.name.endswith(".tar.gz"):
        return p
    found = sorted(p.glob("*.tar.gz")) if p.is_dir() else []
    return found[0] if found else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output) / "mlflow_runs.json"
    if tr.tracking_off(args.tracking_uri):
        # every key present: the pipeline's JsonGet on outcomes_run_id must not fail
        write_json(out, {"enabled": False, "tracking_uri": "", "experiment_id": "", "parent_run_id": "",
                         "outcomes_run_id": "", "extractor_run_id": "", "trials": []})
        log.info("tracking off (--tracking-uri %r): nothing logged", args.tracking_uri)
        return 0
    uri = args.tracking_uri.strip()
    if not args.execution_arn:
        raise DataError("--execution-arn is empty; pass ExecutionVariables.PIPELINE_EXECUTION_ARN "
                        "(it keys the parent run, so a retry reuses it)")
    # every input is read before MLflow is touched: bad input fails without half-logged runs
    record = tr.load_tuning(args.tuning_job_name)
    trials = tr.trials_from_record(record)
    out_file, out_gate = _gate(args.outcomes_evaluation, "evaluation.json")
    ext_file, ext_gate = _gate(args.extractor_evaluation, "extraction_evaluation.json")
    ext_meta = _optional(args.extractor_model, "metadata.json")
    ext_val = _optional(args.extractor_validation, "validation.json")

    client = tr.connect(uri)
    exp_name = args.experiment_name or args.pipeline_name
    exp_id = tr.ensure_experiment(client, exp_name, args.artifact_location or tr.default_artifact_location(uri))
    earlier = tr.find_runs(client, exp_id, tr.EXECUTION_TAG, args.execution_arn)
    tags = {tr.EXECUTION_TAG: args.execution_arn, "pipeline_name": args.pipeline_name, "trigger": args.trigger,
            "code_version": code_version(), "data_window_start": args.data_window_start,
            "data_window_end": args.data_window_end, "tuning_job_name": args.tuning_job_name, "role": "execution"}
    best = next((t.training_job_name for t in trials if t.best), "")
    if best:
        tags["best_training_job_name"] = best
    parent_id, parent_done = tr.open_run(client, exp_id, _execution_id(args.execution_arn), tags,
                                         earlier[0] if earlier else None)
    if earlier:
        log.info("execution already has run %s: reusing it (retry)", parent_id)
    if not parent_done:
        metrics = {**{f"outcomes.{k}": v for k, v in out_gate.items()},
                   **{f"extractor.{k}": v for k, v in ext_gate.items()}}
        tr.log(client, parent_id, tr.tuning_params(record), metrics, tags)
        for f in (out_file, ext_file):
            if f is not None:
                client.log_artifact(parent_id, str(f), "evaluation")
    children = {r.data.tags.get(tr.JOB_TAG): r for r in tr.find_runs(client, exp_id, "mlflow.parentRunId", parent_id)}

    listed = []
    with tempfile.TemporaryDirectory(prefix="track-") as scratch:
        for t in trials:
            run_id = _log_trial(client, exp_id, parent_id, t, children.get(t.training_job_name),
                                args.tuning_job_name, out_gate, Path(scratch), args.log_models)
            listed.append({"training_job_name": t.training_job_name, "run_id": run_id, "objective": t.objective,
                           "status": t.status, "best": t.best})
    extractor_id = ""
    if ext_meta is not None or ext_val is not None:
        extractor_id = _log_extractor(client, exp_id, parent_id, args.extractor_job_name, ext_meta, ext_val,
                                      ext_gate, children.get(args.extractor_job_name),
                                      _extractor_tarball(args.extractor_model) if args.log_models else None)
    if not parent_done:
        client.set_terminated(parent_id, "FINISHED")
    doc = {"enabled": True, "tracking_uri": re.sub(r"//[^/@]*@", "//", uri),  # never credentials
           "experiment_id": exp_id, "experiment_name": exp_name, "parent_run_id": parent_id,
           "outcomes_run_id": next((x["run_id"] for x in listed if x["best"]), ""),
           "extractor_run_id": extractor_id, "trials": listed}
    write_json(out, doc)
    log.info("tracked execution %s: parent run %s, %d trial runs (%d failed), best %s",
             _execution_id(args.execution_arn), parent_id, len(listed),
             sum(x["status"] == "Failed" for x in listed), best or "none")
    return 0


if __name__ == "__main__":
    sys.exit(main())
