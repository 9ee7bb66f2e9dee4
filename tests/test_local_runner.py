"""Local runner on small definitions built with the real SageMaker SDK v3.

The definitions here are produced by ``Pipeline.definition()`` (the same serializer that
``make definition`` uses), with tiny step scripts in tests/fixtures/local_runner, so the
runner is tested on the JSON SageMaker would receive, not on a hand-made imitation.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIX = "tests/fixtures/local_runner"
IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-ml-processing:latest"
TRAIN_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/clinical-ml-training-cpu:latest"


def build_definition(with_register: bool = True) -> dict:
    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    os.environ.setdefault("SAGEMAKER_USER_CONFIG_OVERRIDE", str(REPO / "pipelines" / "sagemaker_config.yaml"))
    import boto3
    from sagemaker.core.processing import Processor
    from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
    from sagemaker.core.training.configs import Compute
    from sagemaker.core.workflow.conditions import ConditionGreaterThanOrEqualTo
    from sagemaker.core.workflow.execution_variables import ExecutionVariables
    from sagemaker.core.workflow.functions import Join, JsonGet
    from sagemaker.core.workflow.parameters import ParameterFloat, ParameterString
    from sagemaker.core.workflow.pipeline_context import PipelineSession
    from sagemaker.core.workflow.properties import PropertyFile
    from sagemaker.mlops.workflow.condition_step import ConditionStep
    from sagemaker.mlops.workflow.fail_step import FailStep
    from sagemaker.mlops.workflow.pipeline import Pipeline
    from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
    from sagemaker.train import ModelTrainer

    sess = PipelineSession(boto_session=boto3.Session(region_name="us-east-1", aws_access_key_id="x",
                                                      aws_secret_access_key="x"), default_bucket="bkt")
    sess._default_bucket = "bkt"
    role = "arn:aws:iam::123456789012:role/x"
    data = ParameterString("InputDataUri", default_value="s3://bkt/data")
    scale = ParameterFloat("Scale", default_value=1.0)
    threshold = ParameterFloat("MinScore", default_value=0.0)
    fail = ParameterString("FailPrep", default_value="no", enum_values=["yes", "no"])
    cache = CacheConfig(enable_caching=True, expire_after="P30D")

    def pin(name, uri, local):
        return ProcessingInput(input_name=name, s3_input=ProcessingS3Input(
            s3_uri=uri, local_path=f"/opt/ml/processing/input/{local}", s3_data_type="S3Prefix", s3_input_mode="File"))

    def pout(name, step):
        return ProcessingOutput(output_name=name, s3_output=ProcessingS3Output(
            s3_uri=Join(on="/", values=["s3://bkt/p", ExecutionVariables.PIPELINE_EXECUTION_ID, step, name]),
            local_path=f"/opt/ml/processing/output/{name}", s3_upload_mode="EndOfJob"))

    def proc(script):
        return Processor(role=role, image_uri=IMAGE, instance_type="ml.m5.large", instance_count=1,
                         entrypoint=["python3", f"/opt/ml/code/{FIX}/{script}"], sagemaker_session=sess)

    prep = ProcessingStep("Prep", cache_config=cache, step_args=proc("prep.py").run(
        inputs=[pin("data", data, "data")], outputs=[pout("train", "Prep")],
        arguments=["--scale", Join(on="", values=[scale]), "--fail", fail]))

    class ScriptTraining(TrainingStep):  # explicit entrypoint, as pipelines/steps.py does
        @property
        def arguments(self):
            req = super().arguments
            req["AlgorithmSpecification"]["ContainerEntrypoint"] = ["python3", f"/opt/ml/code/{FIX}/train.py"]
            req["AlgorithmSpecification"]["ContainerArguments"] = ["--offset", "0.5"]
            return req

    trainer = ModelTrainer(training_image=TRAIN_IMAGE, role=role, sagemaker_session=sess, base_job_name="t",
                           compute=Compute(instance_type="ml.m5.large", instance_count=1),
                           environment={"SM_MODEL_DIR": "/opt/ml/model", "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train"})
    from sagemaker.core.training.configs import InputData
    train = ScriptTraining("Train", cache_config=cache, step_args=trainer.train(input_data_config=[
        InputData(channel_name="train", data_source=prep.properties.ProcessingOutputConfig.Outputs["train"].S3Output.S3Uri)]))
    report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    evaluate = ProcessingStep("Evaluate", property_files=[report], step_args=proc("evaluate.py").run(
        inputs=[pin("model", train.properties.ModelArtifacts.S3ModelArtifacts, "model")],
        outputs=[pout("evaluation", "Evaluate")]))
    score = JsonGet(step_name="Evaluate", property_file=report, json_path="gate.score")
    deploy = ProcessingStep("Deploy", step_args=proc("deploy.py").run(
        inputs=[], outputs=[pout("deploy", "Deploy")],
        arguments=["--model-package-arn", "PLACEHOLDER"]))
    failstep = FailStep("ScoreTooLow", error_message=Join(on=" ", values=["score", score, "is below MinScore", threshold]))
    check = ConditionStep("CheckScore", conditions=[ConditionGreaterThanOrEqualTo(left=score, right=threshold)],
                          if_steps=[deploy], else_steps=[failstep])
    pipe = Pipeline(name="t", parameters=[data, scale, threshold, fail], steps=[prep, train, evaluate, check],
                    sagemaker_session=sess)
    definition = json.loads(pipe.definition())
    if with_register:
        # ModelStep(register) needs a serve.Model; its JSON is CreateModelPackage's request, as here
        cond = next(s for s in definition["Steps"] if s["Name"] == "CheckScore")
        cond["Arguments"]["IfSteps"].insert(0, {
            "Name": "Register", "Type": "RegisterModel", "Arguments": {
                "ModelPackageGroupName": "tiny-models", "ModelApprovalStatus": "Approved",
                "InferenceSpecification": {"Containers": [{"Image": IMAGE, "ModelDataUrl": {
                    "Get": "Steps.Train.ModelArtifacts.S3ModelArtifacts"}}],
                    "SupportedContentTypes": ["application/json"], "SupportedResponseMIMETypes": ["application/json"]},
                "ModelMetrics": {"ModelQuality": {"Statistics": {"ContentType": "application/json", "S3Uri": {
                    "Std:Join": {"On": "/", "Values": [{"Get": "Steps.Evaluate.ProcessingOutputConfig.Outputs['evaluation'].S3Output.S3Uri"}, "model_metrics.json"]}}}}},
                "CustomerMetadataProperties": {"score": {"Std:JsonGet": {"PropertyFile": {"Get": "Steps.Evaluate.PropertyFiles.EvaluationReport"}, "Path": "gate.score"}}}}})
        dep = next(s for s in cond["Arguments"]["IfSteps"] if s["Name"] == "Deploy")
        dep["Arguments"]["AppSpecification"]["ContainerArguments"] = ["--model-package-arn", {"Get": "Steps.Register.ModelPackageArn"}]
    return definition


@pytest.fixture(scope="module")
def definition():
    return build_definition()


@pytest.fixture
def root(tmp_path, monkeypatch):
    root = tmp_path / "runs"
    data = root / "s3" / "bkt" / "data"
    data.mkdir(parents=True)
    (data / "a.txt").write_text("1 2 3\n")
    monkeypatch.setenv("LOCAL_TEST_COUNTER", str(tmp_path / "counter.txt"))
    return root


def _run(definition, root, **kw):
    from pipelines.local.runner import run_execution
    import io
    kw.setdefault("stream", io.StringIO())
    return run_execution(definition, root, kw.pop("params", {}), **kw)


def _status(summary):
    return {s["name"]: s["status"] for s in summary["steps"]}


def _counts(root):
    f = root.parent / "counter.txt"
    return f.read_text().split() if f.exists() else []


def test_condition_true_registers_and_deploys(definition, root):
    ex, summary = _run(definition, root)
    st = _status(summary)
    assert ex.failure is None, ex.failure and ex.failure.message
    assert st == {"Prep": "Succeeded", "Train": "Succeeded", "Evaluate": "Succeeded", "CheckScore": "Succeeded",
                  "Register": "Succeeded", "Deploy": "Succeeded", "ScoreTooLow": "NotExecuted"}
    run = ex.run_dir
    assert (run / "steps/Prep/output/train/values.txt").read_text().split() == ["1.0", "2.0", "3.0"]
    # training contract: model.tar.gz from SM_MODEL_DIR, ContainerArguments passed through
    assert (run / "steps/Train/output/model.tar.gz").is_file()
    ev = json.loads((run / "steps/Evaluate/output/evaluation/evaluation.json").read_text())
    assert ev["gate"]["score"] == pytest.approx(2.5)
    # register: local registry version with metrics pointing at the evaluation output
    from clinical_ml.registry import LocalRegistry
    reg = LocalRegistry(root / "registry")
    [pkg] = reg.list_model_packages("tiny-models")
    d = reg.describe_model_package(pkg["ModelPackageArn"])
    assert d["ModelApprovalStatus"] == "Approved" and d["CustomerMetadataProperties"]["score"] == "2.5"
    assert Path(d["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]).is_file()
    deployed = json.loads((run / "steps/Deploy/output/deploy/endpoint.json").read_text())
    assert deployed["model_package_arn"] == pkg["ModelPackageArn"]
    # the run folder contract and the local S3 stand-in
    assert json.loads((run / "definition.json").read_text()) == definition
    assert (root / "latest").resolve() == run.resolve()
    assert (root / "s3/bkt/p" / ex.execution_id / "Prep/train/values.txt").is_file()
    assert not list((run / "steps").glob(".*"))  # no temp folders left
    assert (run / "steps/Prep/logs/step.log").read_text().count("backend=local") == 1


def test_condition_false_runs_fail_step_with_message(definition, root):
    ex, summary = _run(definition, root, params={"MinScore": "10"})
    st = _status(summary)
    assert st["ScoreTooLow"] == "Failed" and st["Register"] == "NotExecuted" and st["Deploy"] == "NotExecuted"
    assert ex.failure.step == "ScoreTooLow"
    assert ex.failure.message == "score 2.5 is below MinScore 10.0"
    assert Path(ex.failure.log).is_file()


def test_failing_step_stops_dependents_and_cli_exits_nonzero(definition, root, tmp_path, capsys):
    from pipelines.local.cli import main
    dfile = tmp_path / "def.json"
    dfile.write_text(json.dumps(definition))
    rc = main(["--definition", str(dfile), "--run-dir", str(root), "--param", "FailPrep=yes"])
    assert rc == 1
    err = capsys.readouterr().err
    assert "step Prep failed" in err and "column 'x' is missing" in err and "log:" in err
    summary = json.loads((root / "latest" / "summary.json").read_text())
    st = _status(summary["executions"][0])
    assert st["Prep"] == "Failed" and all(st[s] == "NotStarted" for s in ("Train", "Evaluate", "CheckScore"))
    # a failed step keeps its log, never its half-written outputs
    prep = root / "latest" / "steps" / "Prep"
    assert (prep / "logs/step.log").is_file() and not (prep / "output").exists()
    assert (root / "latest" / "report.html").read_text().count("column") >= 1


def test_cache_hit_and_miss(definition, root):
    _run(definition, root)
    assert _counts(root) == ["prep", "train", "evaluate"]
    ex2, s2 = _run(definition, root)
    st = _status(s2)
    assert st["Prep"] == "Cached" and st["Train"] == "Cached"
    assert st["Evaluate"] == "Succeeded"  # no CacheConfig on Evaluate: always runs, as in SageMaker
    assert _counts(root) == ["prep", "train", "evaluate", "evaluate"]
    assert (ex2.run_dir / "steps/Train/output/model.tar.gz").is_file()
    # a changed parameter changes Prep's arguments: miss, and Train's input changes too
    _, s3 = _run(definition, root, params={"Scale": "2"})
    assert _status(s3)["Prep"] == "Succeeded" and _status(s3)["Train"] == "Succeeded"
    # changed input data: miss
    (root / "s3/bkt/data/a.txt").write_text("4 5 6\n")
    _, s4 = _run(definition, root)
    assert _status(s4)["Prep"] == "Succeeded"
    _, s5 = _run(definition, root, use_cache=False)
    assert _status(s5)["Prep"] == "Succeeded"


def test_resume_after_killed_run(definition, root, tmp_path):
    """Kill the runner (SIGKILL) during Train; the rerun with --from-step reuses Prep only."""
    dfile = tmp_path / "def.json"
    dfile.write_text(json.dumps(definition))
    code = ("import os,sys; os.environ['LOCAL_TEST_RUNNER_PID']=str(os.getpid()); "
            "from pipelines.local.cli import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "LOCAL_TEST_KILL_RUNNER": "train"}
    proc = subprocess.run([sys.executable, "-c", code, "--definition", str(dfile), "--run-dir", str(root),
                           "--no-cache"], env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == -9, proc.stderr
    [killed] = [p for p in root.iterdir() if p.is_dir() and p.name[0].isdigit()]
    assert (killed / "steps/Prep/status.json").is_file()
    assert not (killed / "steps/Train").exists()  # nothing half-written under the step's name
    from pipelines.local.cli import main
    rc = main(["--definition", str(dfile), "--run-dir", str(root), "--resume", killed.name,
               "--from-step", "Train", "--no-cache"])
    assert rc == 0
    summary = json.loads((root / "latest" / "summary.json").read_text())
    st = _status(summary["executions"][0])
    assert st["Prep"] == "Reused" and st["Train"] == "Succeeded" and st["Deploy"] == "Succeeded"
    assert _counts(root).count("prep") == 1 and _counts(root).count("train") == 2


def test_unknown_parameter_and_image_fail_loudly(definition, root):
    from clinical_ml.io import DataError
    with pytest.raises(DataError, match="unknown parameter"):
        _run(definition, root, params={"Nope": "1"})
    bad = json.loads(json.dumps(definition))
    bad["Steps"][0]["Arguments"]["AppSpecification"]["ImageUri"] = "example.com/mystery:1"
    ex, summary = _run(bad, root)
    assert ex.failure.step == "Prep" and "no local entry point" in ex.failure.message
