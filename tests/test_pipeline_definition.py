"""The SageMaker pipeline definition: stable structure, resolvable references, API-valid step
arguments, security defaults, and step scripts that accept the arguments we pass them.

The definition is built once per module, through ``clinical-ml definition``, with the network
switched off: building must need no network and no credentials.
"""
from __future__ import annotations

import argparse
import importlib
import json
import os
import socket
from pathlib import Path

import botocore.session
import pytest
from botocore.validate import ParamValidator

from pipeline_expr import (
    EXECUTION_VARIABLES,
    all_steps,
    iter_expressions,
    iter_steps,
    parameter_defaults,
    property_path,
    referenced_steps,
    substitute,
)

REPO = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).with_name("golden") / "pipeline_structure.json"
ROLE = "arn:aws:iam::123456789012:role/clinical-ml-sagemaker-execution"
CREATE_API = {"Processing": "CreateProcessingJob", "Training": "CreateTrainingJob",
              "RegisterModel": "CreateModelPackage", "Tuning": "CreateHyperParameterTuningJob"}
# a step's properties: the Describe* response (a TuningStep also has ListTrainingJobsFor... )
DESCRIBE_SHAPE = {"Processing": ["DescribeProcessingJobResponse"], "Training": ["DescribeTrainingJobResponse"],
                  "RegisterModel": ["DescribeModelPackageOutput"],
                  "Tuning": ["DescribeHyperParameterTuningJobResponse",
                             "ListTrainingJobsForHyperParameterTuningJobResponse"]}
NAME_FIELD = {"Processing": "ProcessingJobName", "Training": "TrainingJobName",
              "Tuning": "HyperParameterTuningJobName"}


@pytest.fixture(scope="module")
def definition(tmp_path_factory) -> dict:
    def offline(*args, **kwargs):
        raise OSError("network disabled in this test: the definition must build offline")

    out = tmp_path_factory.mktemp("definition") / "definition.json"
    with pytest.MonkeyPatch.context() as mp:
        for k in list(os.environ):  # no credentials, no endpoint: nothing to reach AWS with
            if k.startswith("AWS_") and k != "AWS_DEFAULT_REGION":
                mp.delenv(k)
        mp.setenv("AWS_REGION", "eu-west-1")
        mp.setattr(socket.socket, "connect", offline)
        mp.setattr(socket, "getaddrinfo", offline)
        from pipelines import commands

        assert commands.definition(["--out", str(out), "--role-arn", ROLE, "--bucket", "my-bucket"]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def sagemaker_model():
    return botocore.session.get_session().get_service_model("sagemaker")


def structure(definition: dict) -> dict:
    """What must stay stable: parameter names/types; step names, types, places, dependencies, scripts."""
    steps = {}
    for step, parent, branch in iter_steps(definition["Steps"]):
        args = step["Arguments"]
        own = {"Conditions": args["Conditions"]} if step["Type"] == "Condition" else args
        entry = (args.get("AppSpecification") or args.get("AlgorithmSpecification") or {}).get("ContainerEntrypoint")
        steps[step["Name"]] = {
            "type": step["Type"], "in": f"{parent}.{branch}" if parent else None,
            "needs": sorted(referenced_steps(own) | set(step.get("DependsOn", []))),
            "script": entry[-1] if entry else None}
    return {"parameters": [f'{p["Name"]}:{p["Type"]}' for p in definition["Parameters"]], "steps": steps}


def test_structure_matches_golden(definition):
    got = structure(definition)
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.parent.mkdir(exist_ok=True)
        lines = ",\n  ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in got["steps"].items())
        GOLDEN.write_text('{"parameters": ' + json.dumps(got["parameters"]) + ',\n "steps": {\n  ' + lines + "}}\n")
    want = json.loads(GOLDEN.read_text())
    assert got["parameters"] == want["parameters"]
    assert list(got["steps"]) == list(want["steps"])
    for name, step in want["steps"].items():
        assert got["steps"][name] == step, name
    assert definition["Version"] == "2020-12-01"


def test_every_step_has_studio_names_and_descriptions(definition):
    for step, _, _ in iter_steps(definition["Steps"]):
        assert step.get("DisplayName"), step["Name"]
        if step["Type"] != "Fail":
            assert len(step.get("Description", "")) > 20, step["Name"]


def _resolve(shape, tokens: list, step: dict, ref: str):
    """Walk ``tokens`` through a botocore output shape; list keys must name a declared output."""
    for tok in tokens:
        if shape.type_name == "structure":
            assert isinstance(tok, str) and tok in shape.members, f"{ref}: {tok!r} not in {shape.name}"
            shape = shape.members[tok]
        elif shape.type_name == "list":
            if isinstance(tok, str):  # Outputs['name']: must be one of the step's outputs
                outputs = step["Arguments"].get("ProcessingOutputConfig", {}).get("Outputs", [])
                assert tok in {o["OutputName"] for o in outputs}, f"{ref}: no output named {tok!r}"
            shape = shape.member
        else:
            raise AssertionError(f"{ref}: cannot index {shape.type_name} with {tok!r}")
    return shape


def test_every_get_resolves(definition, sagemaker_model):
    steps = all_steps(definition)
    params = parameter_defaults(definition)
    for step in steps.values():
        own = {"Conditions": step["Arguments"]["Conditions"]} if step["Type"] == "Condition" else step["Arguments"]
        for expr in iter_expressions(own):
            ref = expr.get("Get")
            if not isinstance(ref, str):
                continue
            kind, _, rest = ref.partition(".")
            if kind == "Parameters":
                assert rest in params, f"{step['Name']}: undeclared parameter {rest}"
            elif kind == "Execution":
                assert rest in EXECUTION_VARIABLES, ref
            elif kind == "Steps":
                target_name, _, path = rest.partition(".")
                assert target_name in steps and target_name != step["Name"], ref
                target = steps[target_name]
                if path.startswith("PropertyFiles."):
                    declared = {p["PropertyFileName"] for p in target.get("PropertyFiles", [])}
                    assert path.split(".", 1)[1] in declared, ref
                    continue
                tokens = property_path(path)
                shapes = [sagemaker_model.shape_for(n) for n in DESCRIBE_SHAPE[target["Type"]]]
                shape = next((sh for sh in shapes if tokens[0] in sh.members), shapes[0])
                leaf = _resolve(shape, tokens, target, ref)
                assert leaf.type_name == "string", f"{ref} is a {leaf.type_name}, not a string"
            else:
                raise AssertionError(f"unknown reference {ref}")
    # every property file a JsonGet reads is declared on a Processing step's output
    for step in steps.values():
        for pf in step.get("PropertyFiles", []):
            outputs = {o["OutputName"] for o in step["Arguments"]["ProcessingOutputConfig"]["Outputs"]}
            assert pf["OutputName"] in outputs, (step["Name"], pf)


def _dummy_for(shape) -> object:
    return {"string": "dummy", "integer": 1, "long": 1, "float": 0.5, "double": 0.5,
            "boolean": True}.get(shape.type_name, "dummy")


def _typed_substitute(value, shape, params):
    """Like ``substitute`` but pick the dummy's type from the request shape at that position."""
    if isinstance(value, dict) and len(value) == 1 and next(iter(value)) in ("Get", "Std:Join", "Std:JsonGet"):
        plain = substitute(value, params)
        if shape.type_name == "string":
            return str(plain)
        if shape.type_name in ("integer", "long"):
            return int(float(plain)) if isinstance(plain, (int, float)) or str(plain).replace(".", "").isdigit() else 1
        if shape.type_name in ("float", "double"):
            return float(plain) if isinstance(plain, (int, float)) else 0.5
        return _dummy_for(shape)
    if shape.type_name == "structure" and isinstance(value, dict):
        return {k: (_typed_substitute(v, shape.members[k], params) if k in shape.members else v)
                for k, v in value.items()}
    if shape.type_name == "list" and isinstance(value, list):
        return [_typed_substitute(v, shape.member, params) for v in value]
    if shape.type_name == "map" and isinstance(value, dict):
        return {k: _typed_substitute(v, shape.value, params) for k, v in value.items()}
    return value


def test_step_arguments_validate_against_botocore(definition, sagemaker_model):
    params = parameter_defaults(definition)
    checked = set()
    for name, step in all_steps(definition).items():
        api = CREATE_API.get(step["Type"])
        if api is None:
            continue
        shape = sagemaker_model.operation_model(api).input_shape
        request = dict(step["Arguments"])
        if step["Type"] in NAME_FIELD:
            request[NAME_FIELD[step["Type"]]] = "pipelines-dummy-job"
        request = _typed_substitute(request, shape, params)
        report = ParamValidator().validate(request, shape)
        assert not report.has_errors(), f"{name} ({api}):\n{report.generate_report()}"
        checked.add(step["Type"])
    assert checked == set(CREATE_API)


def test_security_defaults(definition):
    steps = all_steps(definition)
    for name, step in steps.items():
        args = step["Arguments"]
        if step["Type"] == "Processing":
            assert args["ProcessingResources"]["ClusterConfig"]["VolumeKmsKeyId"] == {"Get": "Parameters.KmsKeyId"}
            assert args["ProcessingOutputConfig"]["KmsKeyId"] == {"Get": "Parameters.KmsKeyId"}
            assert args["NetworkConfig"]["EnableInterContainerTrafficEncryption"] is True
        elif step["Type"] in ("Training", "Tuning"):
            job = args["TrainingJobDefinition"] if step["Type"] == "Tuning" else args
            assert job["EnableNetworkIsolation"] is True, name
            assert job["EnableInterContainerTrafficEncryption"] is True, name
            assert job["OutputDataConfig"]["KmsKeyId"] == {"Get": "Parameters.KmsKeyId"}
    # the CPU trainer's volume is KMS-encrypted; the GPU one (local NVMe, hardware-encrypted) cannot be
    assert "VolumeKmsKeyId" in steps["TuneOutcomes"]["Arguments"]["TrainingJobDefinition"]["ResourceConfig"]
    assert "VolumeKmsKeyId" not in steps["TrainExtractor"]["Arguments"]["ResourceConfig"]
    # data steps have no network; only the steps that call AWS APIs do
    open_steps = {n for n, s in steps.items() if s["Type"] == "Processing"
                  and not s["Arguments"]["NetworkConfig"]["EnableNetworkIsolation"]}
    assert open_steps == {"DriftGuard", "Deploy", "ScheduleMonitor", "TrackRuns", "CompareModels"}


def test_vpc_is_optional_and_applied_to_every_job(definition):
    from pipelines.definition import definition_json

    d = definition_json(role=ROLE, default_bucket="b", subnets=["subnet-1", "subnet-2"],
                        security_group_ids=["sg-1"])
    for name, step in all_steps(d).items():
        if step["Type"] == "Processing":
            vpc = step["Arguments"]["NetworkConfig"]["VpcConfig"]
        elif step["Type"] == "Training":
            vpc = step["Arguments"]["VpcConfig"]
        elif step["Type"] == "Tuning":
            vpc = step["Arguments"]["TrainingJobDefinition"]["VpcConfig"]
        else:
            continue
        assert vpc == {"Subnets": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}, name
    for step in all_steps(definition).values():  # built without subnets: no VPC anywhere
        args = step["Arguments"]
        assert "VpcConfig" not in args and "VpcConfig" not in args.get("NetworkConfig", {})
        assert "VpcConfig" not in args.get("TrainingJobDefinition", {})


def test_retry_and_cache_policies(definition):
    for name, step in all_steps(definition).items():
        if step["Type"] in ("Processing", "Training", "Tuning"):
            kinds = {e for p in step["RetryPolicies"] for e in p["ExceptionType"]}
            assert {"SageMaker.CAPACITY_ERROR", "Step.THROTTLING"} <= kinds, name
            cached = step.get("CacheConfig", {}).get("Enabled", False)
            # steps with side effects (or that must look at "now") are never served from cache
            assert cached == (name not in {"DriftGuard", "Deploy", "ScheduleMonitor", "TrackRuns", "CompareModels"}), name
        if step["Type"] == "RegisterModel":
            assert step["RetryPolicies"][0]["ExceptionType"] == ["Step.SERVICE_FAULT", "Step.THROTTLING"]


def test_registration_records_metrics_approval_and_trigger(definition):
    steps = all_steps(definition)
    for name in ("RegisterOutcomes", "RegisterExtractor"):
        args = steps[name]["Arguments"]
        assert args["ModelApprovalStatus"] == {"Get": "Parameters.ModelApprovalStatus"}
        stats = args["ModelMetrics"]["ModelQuality"]["Statistics"]["S3Uri"]["Std:Join"]["Values"]
        assert stats[-1] == "model_metrics.json"
        assert args["CustomerMetadataProperties"]["trigger"] == {"Get": "Parameters.Trigger"}
        assert args["ModelPackageGroupName"] == f"clinical-ml-{name[len('Register'):].lower()}"
    baselines = steps["RegisterOutcomes"]["Arguments"]["DriftCheckBaselines"]["ModelDataQuality"]
    assert baselines["Constraints"]["S3Uri"]["Std:Join"]["Values"][-1] == "constraints.json"


def _condition_true(cond: dict, values: dict[str, float], params: dict) -> bool:
    def value(v):
        if isinstance(v, dict) and "Std:JsonGet" in v:
            return values[v["Std:JsonGet"]["Path"]]
        return substitute(v, params)
    left, right = value(cond["LeftValue"]), value(cond["RightValue"])
    return {"GreaterThanOrEqualTo": lambda: left >= right, "Equals": lambda: left == right}[cond["Type"]]()


def _run_gate(definition: dict, values: dict[str, float]) -> str:
    """Follow the conditions from CheckMetrics for these metric values: the step reached."""
    params = parameter_defaults(definition)
    step = all_steps(definition)["CheckMetrics"]
    while step["Type"] == "Condition":
        ok = all(_condition_true(c, values, params) for c in step["Arguments"]["Conditions"])
        branch = step["Arguments"]["IfSteps" if ok else "ElseSteps"]
        if ok and step["Name"] == "CheckMetrics":
            return "pass"
        step = branch[0]
    return step["Name"] + ": " + substitute(step["Arguments"]["ErrorMessage"], params).replace("0.5", "?")


@pytest.mark.parametrize("ihm,f1,missed", [
    (0.9, 0.9, None), (0.5, 0.9, ["ihm_auroc"]), (0.9, 0.5, ["entity_f1"]),
    (0.5, 0.5, ["ihm_auroc", "entity_f1"])])
def test_gate_fails_naming_the_missed_metrics(definition, ihm, f1, missed):
    outcome = _run_gate(definition, {"gate.ihm_auroc": ihm, "gate.entity_f1": f1})
    if missed is None:
        assert outcome == "pass"
        return
    name, message = outcome.split(": ", 1)
    below = message.split("below minimum: ", 1)[1].split("; passed")[0]
    for metric in ("ihm_auroc", "entity_f1"):
        assert (metric in below) == (metric in missed), (metric, message)
    assert "MinIhmAuroc" in message or "MinExtractionF1" in message


def test_annotated_corpora_parameter_reaches_build_notes(definition):
    """AnnotatedCorporaUri (default "": none) is BuildNotes' --corpora; the extractor's
    evaluation gets the training notes for the per-corpus rules baseline."""
    (param,) = [p for p in definition["Parameters"] if p["Name"] == "AnnotatedCorporaUri"]
    assert param["Type"] == "String" and param.get("DefaultValue") == ""
    steps = all_steps(definition)
    args = steps["BuildNotes"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert args[args.index("--corpora") + 1] == {"Get": "Parameters.AnnotatedCorporaUri"}
    evaluate = steps["EvaluateExtractor"]["Arguments"]
    train = {i["InputName"]: i for i in evaluate["ProcessingInputs"]}["train"]
    assert train["S3Input"]["S3Uri"]["Std:Join"]["Values"][-1] == "train.jsonl"
    eargs = evaluate["AppSpecification"]["ContainerArguments"]
    assert eargs[eargs.index("--train") + 1] == train["S3Input"]["LocalPath"]
    # the gate's failure message says which figure it read (real corpora or synthetic notes)
    fail = steps["FailExtractionF1"]["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert any(isinstance(v, dict) and v.get("Std:JsonGet", {}).get("Path") == "gate.metric" for v in fail)


def test_guard_runs_first_and_can_end_the_execution(definition):
    first, check = definition["Steps"]
    assert first["Name"] == "DriftGuard" and check["Name"] == "CheckGuard"
    cond = check["Arguments"]["Conditions"][0]
    assert cond["LeftValue"]["Std:JsonGet"]["Path"] == "proceed" and cond["RightValue"] is True
    assert check["Arguments"]["ElseSteps"] == []
    inside = {s["Name"] for s, _, _ in iter_steps(check["Arguments"]["IfSteps"])}
    assert inside == set(all_steps(definition)) - {"DriftGuard", "CheckGuard"}


def test_only_approved_models_are_deployed(definition):
    steps = all_steps(definition)
    (cond,) = steps["CheckApproval"]["Arguments"]["Conditions"]
    assert cond == {"Type": "Equals", "LeftValue": {"Get": "Parameters.ModelApprovalStatus"}, "RightValue": "Approved"}
    assert [s["Name"] for s in steps["CheckApproval"]["Arguments"]["IfSteps"]] == ["Deploy", "ScheduleMonitor"]
    assert steps["CheckApproval"]["Arguments"]["ElseSteps"] == []
    deploy_args = steps["Deploy"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert deploy_args[deploy_args.index("--model-package-arn") + 1] == {"Get": "Steps.RegisterOutcomes.ModelPackageArn"}


def test_deploy_shifts_traffic_to_the_promoted_model(definition):
    """Deploy (only reached through CheckPromotion) gets PromotionTraffic (default all: the promoted
    model serves all traffic) and ChallengerWeight for the canary alternative."""
    params = {p["Name"]: p for p in definition["Parameters"]}
    assert params["PromotionTraffic"]["Type"] == "String" and params["PromotionTraffic"]["DefaultValue"] == "all"
    assert params["ChallengerWeight"]["DefaultValue"] == 0.1
    args = all_steps(definition)["Deploy"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    flag = dict(zip(args[::2], args[1:][::2]))
    assert flag["--traffic"] == {"Get": "Parameters.PromotionTraffic"}
    assert flag["--challenger-weight"] == {"Std:Join": {"On": "", "Values": [{"Get": "Parameters.ChallengerWeight"}]}}
    assert flag["--model-package-group"] and flag["--require-approval"] == "true"
    from inference.deploy import parse_args  # noqa: PLC0415 (the script accepts what the step passes)

    assert parse_args(["--model-package-arn", "x", "--traffic", "all"]).traffic == "all"


def test_compare_models_scores_the_evaluated_model_against_production(definition):
    """CompareModels: the model EvaluateOutcomes scores, on the same test split, against the newest
    Approved outcomes version (looked up by the script when it runs: --champion-group)."""
    steps = all_steps(definition)
    step, evaluate = steps["CompareModels"], steps["EvaluateOutcomes"]
    assert step["DisplayName"] == "Champion vs challenger" and "paired bootstrap" in step["Description"]
    assert step["DependsOn"] == ["EvaluateOutcomes"]
    ins = {i["InputName"]: i["S3Input"] for i in step["Arguments"]["ProcessingInputs"]}
    evaluated = {i["InputName"]: i["S3Input"] for i in evaluate["Arguments"]["ProcessingInputs"]}
    assert set(ins) == {"challenger", "test"}
    assert ins["challenger"]["S3Uri"] == evaluated["model"]["S3Uri"]  # the tuned (top) model
    assert ins["test"]["S3Uri"] == evaluated["test"]["S3Uri"] == {
        "Get": "Steps.BuildTasks.ProcessingOutputConfig.Outputs['test'].S3Output.S3Uri"}
    (out,) = step["Arguments"]["ProcessingOutputConfig"]["Outputs"]
    assert out["OutputName"] == "comparison" and out["S3Output"]["LocalPath"] == "/opt/ml/processing/output/comparison"
    assert step["PropertyFiles"] == [{"PropertyFileName": "ModelComparison", "OutputName": "comparison",
                                      "FilePath": "comparison.json"}]
    args = step["Arguments"]["AppSpecification"]["ContainerArguments"]
    flag = lambda name: args[args.index(name) + 1]  # noqa: E731
    assert flag("--champion-group") == "clinical-ml-outcomes"  # the group RegisterOutcomes registers into
    assert steps["RegisterOutcomes"]["Arguments"]["ModelPackageGroupName"] == "clinical-ml-outcomes"
    assert "--champion" not in args and flag("--challenger") == ins["challenger"]["LocalPath"]
    assert flag("--test") == ins["test"]["LocalPath"] and flag("--output") == out["S3Output"]["LocalPath"]
    assert flag("--tasks") == "ihm"
    for option, parameter, default in (("--auroc-margin", "PromotionAurocMargin", 0.02),
                                       ("--ece-margin", "PromotionEceMargin", 0.03)):
        assert flag(option) == {"Std:Join": {"On": "", "Values": [{"Get": f"Parameters.{parameter}"}]}}
        assert parameter_defaults(definition)[parameter] == default


def test_outcomes_are_registered_and_deployed_only_when_promoted(definition):
    steps = all_steps(definition)
    check = steps["CheckPromotion"]
    assert check["DisplayName"] == "Challenger not worse than champion?"
    assert check["Arguments"]["Conditions"] == [{"Type": "Equals", "RightValue": True, "LeftValue": {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.CompareModels.PropertyFiles.ModelComparison"}, "Path": "decision.promote"}}}]
    assert [s["Name"] for s in check["Arguments"]["IfSteps"]] == ["DriftBaseline", "RegisterOutcomes", "CheckApproval"]
    (keep,) = check["Arguments"]["ElseSteps"]
    assert keep["Name"] == "KeepChampion" and keep["Type"] == "Fail" and keep["DisplayName"] == "Champion kept"
    message = keep["Arguments"]["ErrorMessage"]["Std:Join"]["Values"]
    assert message[0].startswith("Champion kept") and message[1] == {"Std:JsonGet": {
        "PropertyFile": {"Get": "Steps.CompareModels.PropertyFiles.ModelComparison"}, "Path": "decision.reason"}}
    # the extractor's registration does not depend on the comparison, and happens before the Fail step
    gate = steps["CheckMetrics"]["Arguments"]
    assert [s["Name"] for s in gate["IfSteps"]] == ["RegisterExtractor", "CheckPromotion"]
    assert keep["DependsOn"] == ["RegisterExtractor"]
    inside = {s["Name"] for s, _, _ in iter_steps(check["Arguments"]["IfSteps"])}
    assert {"RegisterOutcomes", "Deploy", "ScheduleMonitor"} <= inside and "RegisterExtractor" not in inside


class _Parsed(Exception):
    pass


def test_step_scripts_exist_and_accept_their_arguments(definition, monkeypatch):
    """Each step's entrypoint is a real script whose argparse accepts the arguments we pass."""
    from pipelines.steps import CODE_DIR

    params = parameter_defaults(definition)
    original = argparse.ArgumentParser.parse_args

    def parse_and_stop(self, args=None, namespace=None):
        raise _Parsed(original(self, args, namespace))

    monkeypatch.setattr(argparse.ArgumentParser, "parse_args", parse_and_stop)
    for name, step in all_steps(definition).items():
        spec = step["Arguments"].get("AppSpecification") or step["Arguments"].get("AlgorithmSpecification")
        if not spec:
            continue
        entry = spec["ContainerEntrypoint"]
        if entry[1:3] == ["-m", "clinical_ml.distributed"]:  # the torchrun launcher, then the script
            entry = [entry[0], entry[3]]
        python, script = entry
        assert python == "python3" and script.startswith(CODE_DIR + "/"), name
        rel = script[len(CODE_DIR) + 1:]
        assert (REPO / rel).is_file(), f"{name}: {rel} does not exist"
        argv = [str(a) for a in substitute(spec.get("ContainerArguments", []), params)]
        module = importlib.import_module(rel[:-3].replace("/", "."))
        with pytest.raises(_Parsed):  # SystemExit here = an argument the script does not take
            module.main(argv)


def test_processing_paths_are_explicit_arguments(definition):
    """Every input and output location is named on the command line (the local runner maps the
    paths it sees there; a script's built-in /opt/ml default would point nowhere locally)."""
    for name, step in all_steps(definition).items():
        if step["Type"] != "Processing":
            continue
        args = [a for a in step["Arguments"]["AppSpecification"].get("ContainerArguments", []) if isinstance(a, str)]
        for inp in step["Arguments"].get("ProcessingInputs", []):
            local = inp["S3Input"]["LocalPath"]  # or the folder holding it (a task tree's splits)
            assert local in args or local.rsplit("/", 1)[0] in args, (name, inp["InputName"])
        for out in step["Arguments"]["ProcessingOutputConfig"]["Outputs"]:
            local = out["S3Output"]["LocalPath"]
            assert local in args or local.rsplit("/", 1)[0] in args, (name, out["OutputName"])


def test_build_tasks_trains_on_the_window_the_guard_found(definition):
    """EventBridge passes static parameters: the guard resolves the window (DataWindowStart/End or,
    for a drift trigger, the data after the champion's window) and BuildTasks reads it from there."""
    steps = all_steps(definition)
    gargs = steps["DriftGuard"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert gargs[gargs.index("--data-window-start") + 1] == {"Get": "Parameters.DataWindowStart"}
    assert gargs[gargs.index("--champion-group") + 1].endswith("-outcomes")
    args = steps["BuildTasks"]["Arguments"]["AppSpecification"]["ContainerArguments"]
    for flag, path in (("--data-window-start", "data_window.start"), ("--data-window-end", "data_window.end")):
        got = args[args.index(flag) + 1]["Std:JsonGet"]
        assert got == {"PropertyFile": {"Get": "Steps.DriftGuard.PropertyFiles.GuardDecision"}, "Path": path}


def test_baselines_train_once_beside_the_tuning_trials(definition):
    """TrainBaselines fits LR + GRU once on the trials' splits; the trials fit XGBoost only, and
    EvaluateOutcomes scores both on the same test rows."""
    steps = all_steps(definition)
    base, tune, evaluate = steps["TrainBaselines"], steps["TuneOutcomes"], steps["EvaluateOutcomes"]
    spec = base["Arguments"]["AlgorithmSpecification"]
    args = spec["ContainerArguments"]
    assert spec["ContainerEntrypoint"][-1] == "/opt/ml/code/training/train_outcomes.py"
    assert args[args.index("--models") + 1] == "lr,gru"
    trial = tune["Arguments"]["TrainingJobDefinition"]
    assert trial["StaticHyperParameters"]["models"] == "xgboost"
    channels = lambda job: {c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3Uri"]  # noqa: E731
                            for c in job["InputDataConfig"]}
    assert channels(base["Arguments"]) == {k: v for k, v in channels(trial).items() if k != "note_features"}
    ins = {i["InputName"]: i["S3Input"] for i in evaluate["Arguments"]["ProcessingInputs"]}
    assert ins["baselines"]["S3Uri"] == {"Get": "Steps.TrainBaselines.ModelArtifacts.S3ModelArtifacts"}
    eargs = evaluate["Arguments"]["AppSpecification"]["ContainerArguments"]
    assert eargs[eargs.index("--baselines") + 1] == ins["baselines"]["LocalPath"]
