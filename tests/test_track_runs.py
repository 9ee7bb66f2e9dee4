"""TrackRuns (processing/track_runs.py): one execution as MLflow runs, read back with MLflow's client.

A local tuning record with 3 trials (one failed) whose model tarballs hold metadata.json, fake
evaluation files and an extractor model dir; the tracking store is a sqlite file in tmp.
"""
from __future__ import annotations

import datetime as dt
import io
import json
import os
import tarfile
from pathlib import Path

import pytest

# before mlflow is imported anywhere in this process: no telemetry, no default server
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"

import mlflow  # noqa: E402  (slow import: once per module)
from botocore.stub import Stubber  # noqa: E402

from clinical_ml import tracking  # noqa: E402
from clinical_ml.io import DataError, write_json  # noqa: E402
from processing import track_runs  # noqa: E402

TUNING = "TuneOutcomes-exec123"
ARN = "arn:aws:sagemaker:local:000000000000:pipeline/clinical-ml/execution/exec123"
JOBS = [f"TuneOutcomes-exec123-00{i}-ab12cd3{i}" for i in (1, 2, 3)]
OBJ = {JOBS[0]: 0.81, JOBS[1]: 0.86}
CURVE = [0.60, 0.52, 0.47, 0.45]


def _tarball(path: Path, metadata: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(metadata).encode()
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return path


def _metadata(lr: float, curve: list[float]) -> dict:
    return {"model_type": "outcomes", "hyperparameters": {"learning_rate": lr, "max_depth": 4, "seed": 0},
            "training": {"ihm": {"n_train": 371, "n_val": 86,
                                 "xgboost": {"rounds": len(curve), "best_iteration": len(curve) - 1,
                                             "val_auroc": 0.84, "curve": {"metric": "logloss", "values": curve}}},
                         "los": {"n_train": 900, "n_val": 100, "xgboost": {"rounds": 3, "val_mae": 85.2}}}}


def _build(root: Path) -> dict:
    """The inputs of one execution under ``root``; returns the main() arguments and paths."""
    s3 = root / "s3"
    t0 = dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.timezone.utc)
    summaries = []
    for i, job in enumerate(JOBS):
        s = {"TrainingJobName": job, "TrainingJobArn": f"arn:aws:sagemaker:local:000000000000:training-job/{job}",
             "TunedHyperParameters": {"learning_rate": f"{0.05 * (i + 1):g}"},
             "TrainingStartTime": (t0 + dt.timedelta(minutes=i)).isoformat(),
             "TrainingEndTime": (t0 + dt.timedelta(minutes=i, seconds=40)).isoformat(),
             "HyperParameters": {"learning_rate": f"{0.05 * (i + 1):g}", "max_depth": "4", "max_rounds": "500"}}
        if job in OBJ:
            s["TrainingJobStatus"] = "Completed"
            s["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "validation:ihm_auroc", "Value": OBJ[job]}
            if i == 0:  # a plain local path
                uri = str(_tarball(root / "models" / job / "model.tar.gz", _metadata(0.05, CURVE)))
            else:  # an s3:// URI under $CLINICAL_ML_S3_ROOT
                _tarball(s3 / "bucket" / "tune" / job / "output" / "model.tar.gz", _metadata(0.1, CURVE[:3]))
                uri = f"s3://bucket/tune/{job}/output/model.tar.gz"
            s["ModelArtifacts"] = {"S3ModelArtifacts": uri}
        else:
            s["TrainingJobStatus"] = "Failed"
            s["FailureReason"] = "AlgorithmError: out of memory"
            s["ModelArtifacts"] = {}
        summaries.append(s)
    record = {"HyperParameterTuningJobName": TUNING, "HyperParameterTuningJobStatus": "Completed",
              "HyperParameterTuningJobConfig": {
                  "Strategy": "Bayesian",
                  "HyperParameterTuningJobObjective": {"Type": "Maximize", "MetricName": "validation:ihm_auroc"},
                  "ResourceLimits": {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1},
                  "ParameterRanges": {"ContinuousParameterRanges": [
                      {"Name": "learning_rate", "MinValue": "0.01", "MaxValue": "0.3"}]}},
              "BestTrainingJob": summaries[1], "TrainingJobSummaries": summaries}
    write_json(root / "tuning" / f"{TUNING}.json", record)
    write_json(root / "eval" / "evaluation.json",
               {"gate": {"ihm_auroc": 0.91, "decomp_auroc": 0.93, "los_kappa": 0.28}, "tasks": {}})
    write_json(root / "xeval" / "extraction_evaluation.json",
               {"gate": {"entity_f1": 0.71, "json_validity": 1.0, "source": "real", "corpora": ["bc5cdr"],
                         "per_corpus": {"bc5cdr": {"n_docs": 200, "entity_f1": 0.67}}}})
    xtraining = {"hyperparameters": {"kind": "encoder", "epochs": 2.0, "lora_r": 16, "lr": None},
                 "steps": 159, "loss_last": 0.59, "loss_curve": [2.1, 1.4, 0.9],
                 "validation": {"bc5cdr": {"entity_f1": 0.66}}}
    write_json(root / "xmodel" / "metadata.json",
               {"model_type": "extractor", "kind": "encoder", "base_model": "minilm", "code_version": "git:abc",
                "config": {"lora_r": 16, "labels": ["MEDICATION"]}, "training": xtraining})
    write_json(root / "xval" / "validation.json", {"training": xtraining, "validation": {}})
    from clinical_ml.io import make_model_tarball
    make_model_tarball(root / "xmodel", root / "xmodel.tar.gz")
    (root / "xmodel.tar.gz").rename(root / "xmodel" / "model.tar.gz")  # the folder holds its tarball
    db = root / "mlruns" / "mlflow.db"
    uri = f"sqlite:///{db}"
    argv = ["--tracking-uri", uri, "--tuning-job-name", TUNING, "--execution-arn", ARN, "--trigger", "drift",
            "--data-window-start", "2026-11-01", "--data-window-end", "2026-11-30",
            "--outcomes-evaluation", str(root / "eval"), "--extractor-evaluation", str(root / "xeval"),
            "--extractor-model", str(root / "xmodel"), "--extractor-validation", str(root / "xval"),
            "--output", str(root / "out")]
    return {"argv": argv, "uri": uri, "s3": s3, "out": root / "out" / "mlflow_runs.json"}


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    root = tmp_path_factory.mktemp("track")
    setup = _build(root)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CLINICAL_ML_BACKEND", "local")
        mp.setenv("CLINICAL_ML_TUNING_DIR", str(root / "tuning"))
        mp.setenv("CLINICAL_ML_S3_ROOT", str(setup["s3"]))
        mp.setenv("MLFLOW_TRACKING_URI", setup["uri"])  # never a default server
        assert track_runs.main(setup["argv"]) == 0
        setup["doc"] = json.loads(setup["out"].read_text())
        setup["client"] = mlflow.MlflowClient(setup["uri"])
        yield setup


def _runs(client, doc):
    return client.search_runs([doc["experiment_id"]], max_results=100)


def test_parent_and_children(tracked):
    client, doc = tracked["client"], tracked["doc"]
    runs = _runs(client, doc)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1
    parent = parents[0]
    assert parent.info.run_id == doc["parent_run_id"] and parent.info.run_name == "exec123"
    assert parent.data.tags["pipeline_execution_arn"] == ARN and parent.data.tags["trigger"] == "drift"
    assert parent.data.tags["data_window_start"] == "2026-11-01" and parent.data.tags["code_version"]
    assert parent.data.metrics["outcomes.ihm_auroc"] == 0.91
    assert parent.data.metrics["extractor.per_corpus.bc5cdr.entity_f1"] == 0.67
    assert "extractor.source" not in parent.data.metrics and parent.data.params["tuning.strategy"] == "Bayesian"
    assert parent.info.status == "FINISHED"
    assert client.get_experiment(doc["experiment_id"]).name == "clinical-ml"

    children = {r.data.tags["training_job_name"]: r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert set(children) == {*JOBS, "TrainExtractor"}
    assert [t["training_job_name"] for t in doc["trials"]] == JOBS
    for t in doc["trials"]:
        assert children[t["training_job_name"]].info.run_id == t["run_id"]
    ok, best, failed = (children[j] for j in JOBS)
    assert ok.data.params["learning_rate"] == "0.05" and ok.data.params["max_rounds"] == "500"
    assert ok.data.params["seed"] == "0"  # from the model's metadata
    assert ok.data.metrics["objective"] == 0.81 and ok.data.metrics["validation:ihm_auroc"] == 0.81
    assert ok.data.metrics["ihm.xgboost.val_auroc"] == 0.84 and ok.info.status == "FINISHED"
    hist = client.get_metric_history(ok.info.run_id, "ihm.xgboost.curve.logloss")
    assert [(m.step, m.value) for m in sorted(hist, key=lambda m: m.step)] == list(enumerate(CURVE))
    assert [a.path for a in client.list_artifacts(ok.info.run_id, "model")] == ["model/model.tar.gz"]
    assert ok.info.start_time == int(dt.datetime(2026, 12, 1, 11, 0, tzinfo=dt.timezone.utc).timestamp() * 1000)

    assert best.data.tags["best"] == "true" and ok.data.tags["best"] == "false"
    assert best.data.metrics["test.ihm_auroc"] == 0.91 and "test.ihm_auroc" not in ok.data.metrics
    assert len(client.get_metric_history(best.info.run_id, "ihm.xgboost.curve.logloss")) == 3
    assert doc["outcomes_run_id"] == best.info.run_id

    assert failed.info.status == "FAILED" and failed.data.tags["failure_reason"].startswith("AlgorithmError")
    assert "objective" not in failed.data.metrics and failed.data.params["learning_rate"] == "0.15"

    ext = children["TrainExtractor"]
    assert doc["extractor_run_id"] == ext.info.run_id
    assert ext.data.params["lora_r"] == "16" and ext.data.params["kind"] == "encoder"
    assert ext.data.metrics["validation.bc5cdr.entity_f1"] == 0.66 and ext.data.metrics["test.entity_f1"] == 0.71
    assert [m.value for m in client.get_metric_history(ext.info.run_id, "train.loss")] == [2.1, 1.4, 0.9]
    assert [a.path for a in client.list_artifacts(ext.info.run_id)] == ["model"]
    assert doc["enabled"] is True and doc["tracking_uri"] == tracked["uri"]


def test_retry_reuses_runs(tracked, monkeypatch):
    client, doc = tracked["client"], tracked["doc"]
    before = {r.info.run_id for r in _runs(client, doc)}
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_TUNING_DIR", str(tracked["out"].parents[1] / "tuning"))
    monkeypatch.setenv("CLINICAL_ML_S3_ROOT", str(tracked["s3"]))
    assert track_runs.main(tracked["argv"]) == 0
    again = json.loads(tracked["out"].read_text())
    assert {r.info.run_id for r in _runs(client, doc)} == before
    assert again == doc
    # nothing logged twice
    assert len(client.get_metric_history(doc["trials"][0]["run_id"], "ihm.xgboost.curve.logloss")) == len(CURVE)


def test_tracking_off(tmp_path):
    for off in ("", "none"):
        assert track_runs.main(["--tracking-uri", off, "--output", str(tmp_path)]) == 0
        doc = json.loads((tmp_path / "mlflow_runs.json").read_text())
        assert doc["enabled"] is False and doc["outcomes_run_id"] == ""


def test_bad_inputs_are_one_line_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_TUNING_DIR", str(tmp_path / "tuning"))
    base = ["--execution-arn", ARN, "--output", str(tmp_path / "out")]
    with pytest.raises(DataError) as e:
        track_runs.main(["--tracking-uri", f"sqlite:///{tmp_path}/m.db", "--tuning-job-name", "Nope", *base])
    assert "Nope.json" in str(e.value) and "--tuning-job-name" in str(e.value) and "\n" not in str(e.value)
    write_json(tmp_path / "tuning" / "T.json", {"TrainingJobSummaries": []})
    with pytest.raises(DataError) as e:
        track_runs.main(["--tracking-uri", "nosuchscheme://x", "--tuning-job-name", "T", *base])
    assert "--tracking-uri 'nosuchscheme://x'" in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "out" / "mlflow_runs.json").exists()


def test_sagemaker_backend_list_trials(monkeypatch):
    import boto3

    sm = boto3.client("sagemaker", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    now = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)

    def summary(name, status, value=None):
        s = {"TrainingJobName": name, "TrainingJobArn": f"arn:aws:sagemaker:us-east-1:1:training-job/{name}",
             "CreationTime": now, "TrainingStartTime": now, "TrainingEndTime": now, "TrainingJobStatus": status,
             "TunedHyperParameters": {"max_depth": "5"}}
        if value is not None:
            s["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": "validation:ihm_auroc", "Value": value}
        return s

    with Stubber(sm) as stub:
        stub.add_response("describe_hyper_parameter_tuning_job", {
            "HyperParameterTuningJobName": "T", "HyperParameterTuningJobArn": "arn:aws:sagemaker:us-east-1:1:hyper-parameter-tuning-job/t",
            "HyperParameterTuningJobConfig": {"Strategy": "Bayesian", "ResourceLimits": {"MaxParallelTrainingJobs": 2},
                                              "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": "validation:ihm_auroc"}},
            "HyperParameterTuningJobStatus": "Completed", "CreationTime": now,
            "TrainingJobStatusCounters": {}, "ObjectiveStatusCounters": {}}, {"HyperParameterTuningJobName": "T"})
        pages = [[summary("T-001", "Completed", 0.7), summary("T-002", "Failed")], [summary("T-003", "Completed", 0.6)]]
        for i, page in enumerate(pages):
            resp = {"TrainingJobSummaries": page, **({"NextToken": "p2"} if i == 0 else {})}
            stub.add_response("list_training_jobs_for_hyper_parameter_tuning_job", resp,
                              {"HyperParameterTuningJobName": "T", **({"NextToken": "p2"} if i else {})})
            for s in page:
                stub.add_response("describe_training_job", {
                    "TrainingJobName": s["TrainingJobName"], "TrainingJobArn": s["TrainingJobArn"],
                    "ModelArtifacts": {"S3ModelArtifacts": f"s3://b/{s['TrainingJobName']}/model.tar.gz"},
                    "TrainingJobStatus": s["TrainingJobStatus"], "SecondaryStatus": "Completed",
                    "AlgorithmSpecification": {"TrainingInputMode": "File"}, "ResourceConfig": {"VolumeSizeInGB": 30},
                    "StoppingCondition": {}, "CreationTime": now,
                    "HyperParameters": {"max_depth": '"5"', "max_rounds": "500", "_tuning_objective_metric": "x"},
                    **({"FailureReason": "boom"} if s["TrainingJobStatus"] == "Failed" else {})},
                    {"TrainingJobName": s["TrainingJobName"]})
        monkeypatch.delenv("CLINICAL_ML_BACKEND", raising=False)
        trials = tracking.list_trials("T", sm=sm)
        stub.assert_no_pending_responses()
    assert [t.training_job_name for t in trials] == ["T-001", "T-002", "T-003"]
    assert trials[1].status == "Failed" and trials[1].failure_reason == "boom" and trials[1].mlflow_status == "FAILED"
    assert trials[0].hyperparameters == {"max_depth": "5", "max_rounds": "500"}
    assert trials[0].model_uri == "s3://b/T-001/model.tar.gz" and trials[0].start_ms == int(now.timestamp() * 1000)
    assert [t.best for t in trials] == [False, False, True]  # Minimize, no BestTrainingJob: lowest objective


def test_fetch_model_from_s3(tmp_path, monkeypatch):
    import boto3

    s3 = boto3.client("s3", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    calls = []
    s3.download_file = lambda b, k, f: (calls.append((b, k)), Path(f).write_bytes(b"tgz"))
    monkeypatch.delenv("CLINICAL_ML_BACKEND", raising=False)
    got = tracking.fetch_model("s3://bucket/a/model.tar.gz", tmp_path / "d", s3=s3)
    assert calls == [("bucket", "a/model.tar.gz")] and got.read_bytes() == b"tgz"
    assert tracking.fetch_model(None, tmp_path) is None
