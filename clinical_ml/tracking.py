"""Experiment tracking: one pipeline execution as MLflow runs (the TrackRuns step's domain code).

A parent run per execution, a child run per tuning trial and one for the extractor training job.
The trials come from the tuning job in AWS shapes (``load_tuning``), from SageMaker or, under the
local backend, from the local runner's tuning record; both become the same ``Trial`` list, so
the logging code is written once. MLflow is imported only by the functions that talk to it.

Only aggregate numbers, hyperparameters and job names are logged: never note text or patient
identifiers (the model metadata and evaluation files hold none).
"""
from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, backend, localize, read_json

EXECUTION_TAG = "pipeline_execution_arn"
JOB_TAG = "training_job_name"
# TrainingJobStatus -> MLflow RunStatus
STATUS = {"Completed": "FINISHED", "Failed": "FAILED", "Stopped": "KILLED"}
TERMINAL = {"FINISHED", "FAILED", "KILLED"}
_BAD_KEY = re.compile(r"[^/\w.\- :]")


@dataclass
class Trial:
    """One training job of a tuning job; ``hyperparameters`` are static + tuned, as strings."""
    training_job_name: str
    status: str
    hyperparameters: dict[str, str]
    tuned: dict[str, str] = field(default_factory=dict)
    objective: float | None = None
    objective_metric: str | None = None
    failure_reason: str | None = None
    model_uri: str | None = None
    arn: str | None = None
    start_ms: int | None = None
    end_ms: int | None = None
    best: bool = False

    @property
    def mlflow_status(self) -> str:
        return STATUS.get(self.status, "KILLED")


# --- tuning record: local file or SageMaker, same layout ---------------------------------------

def tuning_record_path(name: str) -> Path:
    """``$CLINICAL_ML_TUNING_DIR/<name>.json``, else ``$CLINICAL_ML_S3_ROOT/../tuning/<name>.json``."""
    d = os.environ.get("CLINICAL_ML_TUNING_DIR")
    if not d:
        root = os.environ.get("CLINICAL_ML_S3_ROOT")
        if not root:
            raise DataError(f"tuning job {name!r}: set CLINICAL_ML_TUNING_DIR (or CLINICAL_ML_S3_ROOT) "
                            "to the local runner's tuning folder")
        d = str(Path(root).parent / "tuning")
    return Path(d) / f"{name}.json"


def sagemaker_tuning_record(name: str, sm: Any) -> dict:
    """The local record's layout built from DescribeHyperParameterTuningJob, the paginated
    ListTrainingJobsForHyperParameterTuningJob and one DescribeTrainingJob per trial."""
    desc = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    summaries = []
    pages = sm.get_paginator("list_training_jobs_for_hyper_parameter_tuning_job")
    for page in pages.paginate(HyperParameterTuningJobName=name):
        for s in page["TrainingJobSummaries"]:
            job = sm.describe_training_job(TrainingJobName=s["TrainingJobName"])
            s = dict(s, HyperParameters=job.get("HyperParameters", {}),
                     ModelArtifacts=job.get("ModelArtifacts", {}))
            if job.get("FailureReason") and not s.get("FailureReason"):
                s["FailureReason"] = job["FailureReason"]
            summaries.append(s)
    keys = ("HyperParameterTuningJobName", "HyperParameterTuningJobStatus",
            "HyperParameterTuningJobConfig", "BestTrainingJob")
    return {**{k: desc[k] for k in keys if k in desc}, "TrainingJobSummaries": summaries}


def load_tuning(name: str, sm: Any = None) -> dict:
    """The tuning record of ``name`` (layout in docs/contracts.md) for the current backend."""
    if not name:
        raise DataError("--tuning-job-name is empty; pass the tuning step's "
                        "HyperParameterTuningJobName")
    if backend() == "local":
        path = tuning_record_path(name)
        if not path.is_file():
            raise DataError(f"{path}: no tuning record for tuning job {name!r}; check --tuning-job-name "
                            "(the local runner writes it when the tuning step ends)")
        record = read_json(path)
        if not isinstance(record, dict) or not isinstance(record.get("TrainingJobSummaries"), list):
            raise DataError(f"{path}: no TrainingJobSummaries list; not a tuning record")
        return record
    if sm is None:
        import boto3
        sm = boto3.client("sagemaker")
    return sagemaker_tuning_record(name, sm)


def _ms(t: Any) -> int | None:
    if not t:
        return None
    if isinstance(t, str):
        try:
            t = dt.datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:  # an unreadable time only loses the run's start/end
            return None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return int(t.timestamp() * 1000)


def _unquote(v: Any) -> str:
    # the SageMaker Python SDK JSON-encodes hyperparameter values: '"0.05"' -> '0.05'
    v = str(v)
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] == '"' else v


def trials_from_record(record: dict) -> list[Trial]:
    """Trials in job-name order, ``best`` set on BestTrainingJob (else the best objective)."""
    cfg = record.get("HyperParameterTuningJobConfig", {}).get("HyperParameterTuningJobObjective", {})
    trials = []
    for s in sorted(record.get("TrainingJobSummaries", []), key=lambda s: s.get("TrainingJobName", "")):
        if "TrainingJobName" not in s:
            raise DataError("tuning record: a TrainingJobSummaries entry has no TrainingJobName")
        obj = s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}
        hp = {k: _unquote(v) for k, v in s.get("HyperParameters", {}).items() if not k.startswith("_")}
        tuned = {k: _unquote(v) for k, v in s.get("TunedHyperParameters", {}).items()}
        trials.append(Trial(
            s["TrainingJobName"], s.get("TrainingJobStatus", "Unknown"), {**hp, **tuned}, tuned,
            float(obj["Value"]) if "Value" in obj else None, obj.get("MetricName") or cfg.get("MetricName"),
            s.get("FailureReason"), (s.get("ModelArtifacts") or {}).get("S3ModelArtifacts"),
            s.get("TrainingJobArn"), _ms(s.get("TrainingStartTime")), _ms(s.get("TrainingEndTime"))))
    best = (record.get("BestTrainingJob") or {}).get("TrainingJobName")
    scored = [t for t in trials if t.status == "Completed" and t.objective is not None]
    if not best and scored:
        pick = min if cfg.get("Type") == "Minimize" else max
        best = pick(scored, key=lambda t: t.objective).training_job_name
    for t in trials:
        t.best = t.training_job_name == best
    return trials


def list_trials(name: str, sm: Any = None) -> list[Trial]:
    """The trials of tuning job ``name`` (SageMaker, or the local runner's record)."""
    return trials_from_record(load_tuning(name, sm))


def tuning_params(record: dict) -> dict[str, str]:
    """The tuning job's configuration as parent-run params."""
    cfg = record.get("HyperParameterTuningJobConfig", {})
    obj = cfg.get("HyperParameterTuningJobObjective", {})
    out = {"tuning.strategy": cfg.get("Strategy"), "tuning.objective_type": obj.get("Type"),
           "tuning.objective_metric": obj.get("MetricName"),
           "tuning.parameter_ranges": json.dumps(cfg["ParameterRanges"], sort_keys=True)
           if cfg.get("ParameterRanges") else None}
    out.update({f"tuning.{k}": v for k, v in (cfg.get("ResourceLimits") or {}).items()})
    return {k: str(v) for k, v in out.items() if v is not None}


def fetch_model(uri: str | None, dest: Path, s3: Any = None) -> Path | None:
    """A trial's model.tar.gz as a local file: local paths and (local backend) s3:// under
    ``$CLINICAL_ML_S3_ROOT`` as they are, else downloaded into ``dest``; None when absent."""
    if not uri:
        return None
    path = localize(uri)
    if not path.startswith("s3://"):
        p = Path(path[len("file://"):] if path.startswith("file://") else path)
        return p if p.is_file() else None
    if s3 is None:
        import boto3
        s3 = boto3.client("s3")
    bucket, _, key = path[len("s3://"):].partition("/")
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / "model.tar.gz"
    s3.download_file(bucket, key, str(out))
    return out


# --- reading model dirs / tarballs and flattening metrics ---------------------------------------

def read_member_json(path: str | os.PathLike, name: str) -> dict | None:
    """``name`` from a directory, a directory holding one ``*.tar.gz``, or a tarball (read in
    place: an extractor tarball is not unpacked for one small file). None when absent."""
    p = Path(path)
    if p.is_dir():
        if (p / name).is_file():
            return read_json(p / name)
        tarballs = sorted(p.glob("*.tar.gz"))
        if not tarballs:
            return None
        p = tarballs[0]
    if not p.is_file():
        return None
    try:
        with tarfile.open(p, "r:*") as tar:
            for m in tar:
                if m.isfile() and m.name.lstrip("./") == name:
                    return json.loads(tar.extractfile(m).read())
    except (tarfile.TarError, OSError, ValueError) as e:
        raise DataError(f"{p}: cannot read {name} from it ({e}); pass a model.tar.gz or its folder") from None
    return None


def metric_key(key: str) -> str:
    """An MLflow-valid metric/param name (letters, digits, ``_-. :/``)."""
    return re.sub(r"/+", "/", _BAD_KEY.sub("_", key)).strip("/") or "_"


def flatten_numeric(doc: Any, prefix: str = "") -> dict[str, float]:
    """Numeric leaves of nested dicts as ``a.b.c`` keys; bools, strings, lists and NaN skipped."""
    out: dict[str, float] = {}
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.update(flatten_numeric(v, f"{prefix}.{k}" if prefix else str(k)))
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool) and math.isfinite(doc):
        out[metric_key(prefix)] = float(doc)
    return out


def trial_metrics(metadata: dict) -> tuple[dict[str, float], dict[str, list[float]]]:
    """(per-task scalars, per-task XGBoost validation curves) from an outcome model's metadata."""
    training = metadata.get("training") or {}
    curves = {}
    for task, block in training.items():
        curve = (block.get("xgboost") or {}).get("curve") if isinstance(block, dict) else None
        if isinstance(curve, dict) and isinstance(curve.get("values"), list):
            name = metric_key(f"{task}.xgboost.curve.{curve.get('metric', 'value')}")
            curves[name] = [float(v) for v in curve["values"]]
    return flatten_numeric(training), curves


def extractor_params(metadata: dict) -> dict[str, str]:
    """Extractor training job params: its hyperparameters, kind, base model and config."""
    out = dict((metadata.get("training") or {}).get("hyperparameters") or {})
    # the resolved values (hyperparameters.base_model "" means the kind's default, named here)
    out.update({k: metadata[k] for k in ("kind", "base_model", "schema_version") if metadata.get(k)})
    for k, v in (metadata.get("config") or {}).items():
        out[f"config.{k}"] = json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
    return {metric_key(k): str(v) for k, v in out.items() if v is not None}


# --- MLflow ------------------------------------------------------------------------------------

def tracking_off(uri: str | None) -> bool:
    return (uri or "").strip().lower() in ("", "none", "off")


def default_artifact_location(uri: str) -> str | None:
    """``sqlite:////x/mlflow.db`` -> ``file:///x/mlartifacts`` (MLflow's default is ./mlruns in
    the current directory); servers and ARNs choose their own."""
    if uri.startswith("sqlite:///"):
        return (Path(uri[len("sqlite:///"):]).resolve().parent / "mlartifacts").as_uri()
    return None


def connect(uri: str) -> Any:
    """An ``MlflowClient`` on ``uri``, checked with one call; a bad URI is a DataError."""
    import mlflow

    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    try:
        mlflow.set_tracking_uri(uri)
        client = mlflow.MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    except Exception as e:  # noqa: BLE001 - any store failure means the same thing here
        reason = (str(e).strip().splitlines() or [""])[0][:300]
        raise DataError(f"--tracking-uri {uri!r}: cannot use this MLflow tracking store "
                        f"({type(e).__name__}: {reason}); pass a tracking server ARN (sagemaker-mlflow), "
                        "sqlite:////abs/path/mlflow.db, or '' to turn tracking off") from None
    return client


def ensure_experiment(client: Any, name: str, artifact_location: str | None = None) -> str:
    """The experiment's id, created (or restored from deleted) when needed."""
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(name)
    if exp is None:
        try:
            return client.create_experiment(name, artifact_location=artifact_location)
        except MlflowException:  # created concurrently
            exp = client.get_experiment_by_name(name)
            if exp is None:
                raise
    if exp.lifecycle_stage == "deleted":
        client.restore_experiment(exp.experiment_id)
    return exp.experiment_id


def _quote(v: str) -> str:
    return "'" + v.replace("\\", "\\\\").replace("'", "\\'") + "'"


def find_runs(client: Any, experiment_id: str, tag: str, value: str) -> list[Any]:
    return client.search_runs([experiment_id], filter_string=f"tags.`{tag}` = {_quote(value)}",
                              max_results=5000, order_by=["attributes.start_time ASC"])


def open_run(client: Any, experiment_id: str, name: str, tags: dict[str, str],
             existing: Any = None, parent_id: str | None = None, start_ms: int | None = None) -> tuple[str, bool]:
    """(run id, already complete): ``existing`` (an earlier attempt's run) is reused."""
    if existing is not None:
        return existing.info.run_id, existing.info.status in TERMINAL
    if parent_id:
        tags = {**tags, "mlflow.parentRunId": parent_id}
    run = client.create_run(experiment_id, start_time=start_ms, tags=tags, run_name=name)
    return run.info.run_id, False


def log(client: Any, run_id: str, params: dict[str, str] | None = None, metrics: dict[str, float] | None = None,
        tags: dict[str, str] | None = None, curves: dict[str, list[float]] | None = None) -> None:
    """Params, tags, metrics and step curves in batches within MLflow's per-call limits."""
    from mlflow.entities import Metric, Param, RunTag

    now = int(time.time() * 1000)
    ms = [Metric(k, float(v), now, 0) for k, v in (metrics or {}).items()]
    ms += [Metric(k, v, now, i) for k, vs in (curves or {}).items() for i, v in enumerate(vs) if math.isfinite(v)]
    ps = [Param(k, str(v)[:6000]) for k, v in (params or {}).items()]
    ts = [RunTag(k, str(v)[:8000]) for k, v in (tags or {}).items()]
    for i in range(0, max(len(ps), len(ts)), 100):
        client.log_batch(run_id, params=ps[i:i + 100], tags=ts[i:i + 100])
    for i in range(0, len(ms), 1000):
        client.log_batch(run_id, metrics=ms[i:i + 1000])
