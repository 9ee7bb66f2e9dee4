"""The local runner's Tuning step (pipelines/local/tuning.py) on a definition the real SDK built."""
from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path
from types import SimpleNamespace

import pytest

REPO = Path(__file__).resolve().parents[1]
FIX = "tests/fixtures/local_runner"


def build_definition(max_jobs: int = 6, parallel: int = 2, strategy: str = "Bayesian") -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    os.environ.setdefault("SAGEMAKER_USER_CONFIG_OVERRIDE", str(REPO / "pipelines" / "sagemaker_config.yaml"))
    import boto3
    from sagemaker.core.parameter import ContinuousParameter, IntegerParameter
    from sagemaker.core.workflow.parameters import ParameterInteger, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.mlops.workflow.pipeline import Pipeline

    from pipelines.steps import StepFactory, s3_input, s3_output

    sess = PipelineSession(boto_session=boto3.Session(region_name="us-east-1", aws_access_key_id="x",
                                                      aws_secret_access_key="x"), default_bucket="bkt")
    jobs = ParameterInteger("MaxJobs", default_value=max_jobs)
    par = ParameterInteger("MaxParallel", default_value=parallel)
    strat = ParameterString("Strategy", default_value=strategy)
    params = SimpleNamespace(kms_key_id=ParameterString("KmsKeyId", default_value="alias/k"),
                             processing_image_uri="123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-ml-processing:latest",
                             processing_instance_type="ml.m5.large")
    f = StepFactory(session=sess, role="arn:aws:iam::123456789012:role/x", bucket="bkt", pipeline_name="t",
                    params=params)
    tune = f.tuning("Tune", f"{FIX}/tune_train.py", display_name="Tune", description="tiny tuning job",
                    channels={"train": "s3://bkt/data"},
                    image="123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-ml-training-cpu:latest",
                    instance_type="ml.m5.large", objective="validation:score",
                    metric_definitions=[{"Name": "validation:score", "Regex": r"validation:score=([-0-9.]+)"}],
                    ranges={"x": ContinuousParameter(0.01, 1.0, scaling_type="Logarithmic"),
                            "depth": IntegerParameter(1, 8)},
                    static={"seed": "0", "sleep": "1"}, strategy=strat, max_jobs=jobs, max_parallel_jobs=par)
    top = tune.get_top_model_s3_uri(top_k=0, s3_bucket="bkt", prefix=f.tuning_prefix("Tune"))
    use = f.processing("UseBest", f"{FIX}/evaluate.py", display_name="Use best", description="reads the top model",
                       inputs=[s3_input("model", top, "model")], outputs=[s3_output("evaluation", "s3://bkt/t/ev", "evaluation")])
    pipe = Pipeline(name="t", parameters=[jobs, par, strat, params.kms_key_id], steps=[tune, use], sagemaker_session=sess)
    return json.loads(pipe.definition())


@pytest.fixture(scope="module")
def definition():
    return build_definition()


@pytest.fixture
def root(tmp_path):
    root = tmp_path / "runs"
    data = root / "s3" / "bkt" / "data"
    data.mkdir(parents=True)
    (data / "values.txt").write_text("1 2 3\n")
    return root


def _run(definition, root, params=None):
    from pipelines.local.runner import run_execution
    return run_execution(definition, root, params or {}, stream=io.StringIO(), use_cache=False)[1]


def _model(uri_or_path: str, root: Path) -> dict:
    path = Path(uri_or_path.replace("s3://", str(root / "s3") + "/"))
    with tarfile.open(path) as tar:
        return json.loads(tar.extractfile("model.json").read())


def test_tuning_runs_trials_in_parallel_and_passes_on_the_best(definition, root):
    summary = _run(definition, root)
    status = {s["name"]: s["status"] for s in summary["steps"]}
    assert status == {"Tune": "Succeeded", "UseBest": "Succeeded"}, summary
    run_dir = Path(summary["run_dir"])
    record = json.loads((run_dir / "steps" / "Tune" / "output" / "tuning.json").read_text())
    trials = record["TrainingJobSummaries"]
    assert len(trials) == 6 and record["HyperParameterTuningJobStatus"] == "Completed"
    done = [t for t in trials if t["TrainingJobStatus"] == "Completed"]
    values = [t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for t in done]
    assert values == sorted(values, reverse=True)  # best first: get_top_model_s3_uri(0) is the best
    assert record["BestTrainingJob"]["TrainingJobName"] == trials[0]["TrainingJobName"]
    models = {t["TrainingJobName"]: _model(t["ModelArtifacts"]["S3ModelArtifacts"], root) for t in done}
    for t in done:  # the objective is the LAST value the trial printed, and is its real score
        m = models[t["TrainingJobName"]]
        assert t["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] == pytest.approx(m["score"], abs=1e-6)
        assert float(t["TunedHyperParameters"]["x"]) == pytest.approx(m["x"])
        assert 0.01 <= m["x"] <= 1.0 and 1 <= m["depth"] <= 8
        assert t["HyperParameters"]["seed"] == "0" and m["n"] == 3 and m["cpus"] == str(max(1, (os.cpu_count() or 1) // 2))
    # MaxParallelTrainingJobs=2: never more than 2 trials at once, and 2 at once at some point
    spans = sorted((m["start"], m["end"]) for m in models.values())
    # trials running at each trial's start (the most at once is reached at some start); counting
    # every span that meets a span's interval counted a long trial's two successive partners as 3
    running = [sum(1 for s, e in spans if s <= t_start < e) for t_start, _ in spans]
    assert max(running) == 2 or len(done) < 2
    # the downstream step got the best trial's model (through get_top_model_s3_uri)
    best = models[trials[0]["TrainingJobName"]]
    used = json.loads((run_dir / "steps" / "UseBest" / "output" / "evaluation" / "evaluation.json").read_text())
    assert used["gate"]["score"] == pytest.approx(best["score"])
    # the record other steps read (clinical_ml.tracking) sits in runs/tuning/
    assert json.loads((root / "tuning" / f"{record['HyperParameterTuningJobName']}.json").read_text()) == record


def test_a_failed_trial_does_not_fail_the_job_but_all_failing_does(definition, root, monkeypatch):
    from pipelines.local import tuning

    monkeypatch.setattr(tuning, "suggest", lambda trial, ranges: {
        "x": "0.95" if trial.number % 2 == 0 else "0.2", "depth": "4"})
    summary = _run(definition, root)
    assert {s["name"]: s["status"] for s in summary["steps"]}["Tune"] == "Succeeded"
    record = json.loads((Path(summary["run_dir"]) / "steps" / "Tune" / "output" / "tuning.json").read_text())
    failed = [t for t in record["TrainingJobSummaries"] if t["TrainingJobStatus"] == "Failed"]
    assert len(failed) == 3 and all("exit code 3" in t["FailureReason"] for t in failed)
    assert record["TrainingJobSummaries"][-1]["TrainingJobStatus"] == "Failed"  # failed ones last
    monkeypatch.setenv("TUNE_TEST_ALL_FAIL", "1")
    summary = _run(definition, root, {"MaxJobs": 2})
    tune = next(s for s in summary["steps"] if s["name"] == "Tune")
    assert tune["status"] == "Failed" and "every one of 2 trials failed" in tune["message"]


def test_strategy_unknown_is_a_clear_error(definition, root):
    summary = _run(definition, root, {"Strategy": "Hyperband"})
    tune = next(s for s in summary["steps"] if s["name"] == "Tune")
    assert tune["status"] == "Failed" and "Hyperband" in tune["message"] and "TuningStrategy" in tune["message"]


def test_read_metrics_and_suggest():
    import optuna

    from pipelines.local.tuning import read_metrics, suggest, trial_name

    defs = [{"Name": "validation:a", "Regex": r"validation:a=([0-9.]+)"}, {"Name": "b", "Regex": r"b=([0-9.]+)"}]
    assert read_metrics("validation:a=0.5\nvalidation:a=0.75\n", defs) == {"validation:a": 0.75}
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    ranges = {"ContinuousParameterRanges": [{"Name": "lr", "MinValue": "0.001", "MaxValue": "0.1", "ScalingType": "Logarithmic"}],
              "IntegerParameterRanges": [{"Name": "d", "MinValue": "2", "MaxValue": "3", "ScalingType": "Auto"}],
              "CategoricalParameterRanges": [{"Name": "m", "Values": ["a", "b"]}]}
    got = [suggest(study.ask(), ranges) for _ in range(50)]
    assert all(0.001 <= float(g["lr"]) <= 0.1 and g["d"] in ("2", "3") and g["m"] in ("a", "b") for g in got)
    lrs = sorted(float(g["lr"]) for g in got)
    assert lrs[len(lrs) // 2] < 0.03  # log scaling: the median is near 0.01, not near 0.05
    assert trial_name("tune-x", 3, {"a": "1"}).startswith("tune-x-003-")
