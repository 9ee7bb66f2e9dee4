"""Infrastructure as code and container images: cfn-lint clean, secure defaults, alarms/rule
identical to the ones ``make upsert-pipeline`` puts, Dockerfiles that put the code where the
pipeline's entrypoints look for it."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "pipelines" / "infra" / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation short tags (!Sub, !Ref, ...) as {"Fn": value} dicts."""


_CfnLoader.add_multi_constructor("!", lambda loader, tag, node: {tag: (
    loader.construct_scalar(node) if isinstance(node, yaml.ScalarNode)
    else loader.construct_sequence(node) if isinstance(node, yaml.SequenceNode)
    else loader.construct_mapping(node))})


@pytest.fixture(scope="module")
def template() -> dict:
    return yaml.load(TEMPLATE.read_text(), Loader=_CfnLoader)  # nosec B506 - _CfnLoader is a SafeLoader


def test_cfn_lint_passes():
    code = "import sys; from cfnlint.runner import main; sys.argv[1:] = [sys.argv[1]]; sys.exit(main())"
    r = subprocess.run([sys.executable, "-c", code, str(TEMPLATE)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_bucket_is_encrypted_versioned_and_private(template):
    bucket = template["Resources"]["ArtifactBucket"]["Properties"]
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "aws:kms"
    assert rule["ServerSideEncryptionByDefault"]["KMSMasterKeyID"] == {"GetAtt": "KmsKey.Arn"}
    assert bucket["VersioningConfiguration"]["Status"] == "Enabled"
    assert set(bucket["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(bucket["PublicAccessBlockConfiguration"]) == 4
    policy = template["Resources"]["ArtifactBucketPolicy"]["Properties"]["PolicyDocument"]
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    assert template["Resources"]["KmsKey"]["Properties"]["EnableKeyRotation"] is True


def _statements(role: dict) -> list[dict]:
    return [s for p in role["Properties"]["Policies"] for s in p["PolicyDocument"]["Statement"]]


def test_roles_are_least_privilege(template):
    res = template["Resources"]
    # actions that AWS only grants on "*" (or that we condition): nothing else may use "*"
    star_ok = {"ecr:GetAuthorizationToken", "cloudwatch:PutMetricData", "sts:GetCallerIdentity",
               "sagemaker:ListModelPackageGroups"}
    operator = res["OperatorPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    for name, statements in [(n, _statements(res[n])) for n in ("SageMakerExecutionRole", "EventsRole", "SchedulerRole")
                             ] + [("OperatorPolicy", operator)]:
        for st in statements:
            actions = st["Action"] if isinstance(st["Action"], list) else [st["Action"]]
            assert all(a != "*" and not a.endswith(":*") for a in actions), (name, actions)
            if st.get("Resource") == "*":
                assert all(a in star_ok or a.startswith("ec2:") for a in actions), (name, actions)
    put_metric = next(s for s in _statements(res["SageMakerExecutionRole"]) if s["Action"] == "cloudwatch:PutMetricData")
    assert "cloudwatch:namespace" in put_metric["Condition"]["StringLike"]
    trust = {name: res[name]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"]
             for name in ("SageMakerExecutionRole", "EventsRole", "SchedulerRole")}
    assert trust == {"SageMakerExecutionRole": "sagemaker.amazonaws.com", "EventsRole": "events.amazonaws.com",
                     "SchedulerRole": "scheduler.amazonaws.com"}
    # the operator may pass exactly our two roles, nothing else
    (pass_role,) = [s for s in operator if s["Action"] == "iam:PassRole"]
    assert pass_role["Resource"] == [{"GetAtt": "SageMakerExecutionRole.Arn"}, {"GetAtt": "EventsRole.Arn"}]
    (events_stmt,) = _statements(res["EventsRole"])
    assert events_stmt["Action"] == "sagemaker:StartPipelineExecution"


def test_execution_role_writes_and_passes_only_what_it_must(template):
    res = template["Resources"]
    statements = _statements(res["SageMakerExecutionRole"])
    # S3 writes: the pipeline's prefix and audit/ of the stack's bucket, nothing else
    writes = [s for s in statements if any(a in ("s3:PutObject", "s3:DeleteObject") for a in
                                           (s["Action"] if isinstance(s["Action"], list) else [s["Action"]]))]
    assert [s["Resource"] for s in writes] == [[{"Sub": "${ArtifactBucket.Arn}/${PipelineName}/*"},
                                                {"Sub": "${ArtifactBucket.Arn}/audit/*"}]]
    assert not any(s["Action"] == "iam:PassRole" for s in statements)  # only in ExecutionRolePassRoles
    # ENI writes: this account's ENIs/subnets/security groups, never "*"
    (eni,) = [s for s in statements if "ec2:CreateNetworkInterface" in s["Action"]]
    assert all(":${AWS::AccountId}:" in r["Sub"] for r in eni["Resource"]) and eni["Condition"]
    logs = next(s for s in statements if s["Sid"] == "Logs")
    assert all("log-group:/aws/sagemaker/" in r["Sub"] and not r["Sub"].endswith("sagemaker/*")
               for r in logs["Resource"])
    pass_policy = res["ExecutionRolePassRoles"]["Properties"]
    assert pass_policy["Roles"] == [{"Ref": "SageMakerExecutionRole"}]
    passes = {(s["Resource"]["GetAtt"], s["Condition"]["StringEquals"]["iam:PassedToService"])
              for s in pass_policy["PolicyDocument"]["Statement"]}
    assert passes == {("SageMakerExecutionRole.Arn", "sagemaker.amazonaws.com"),
                      ("SchedulerRole.Arn", "scheduler.amazonaws.com")}
    assert all(s["Action"] == "iam:PassRole" for s in pass_policy["PolicyDocument"]["Statement"])


def test_artifact_bucket_access_is_logged_to_a_private_log_bucket(template):
    res = template["Resources"]
    logging = res["ArtifactBucket"]["Properties"]["LoggingConfiguration"]
    assert logging == {"DestinationBucketName": {"Ref": "AccessLogBucket"}, "LogFilePrefix": "artifact-bucket/"}
    log_bucket = res["AccessLogBucket"]
    props = log_bucket["Properties"]
    (rule,) = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"  # all S3 log delivery supports
    assert props["VersioningConfiguration"]["Status"] == "Enabled"
    assert set(props["PublicAccessBlockConfiguration"].values()) == {True}
    assert len(props["PublicAccessBlockConfiguration"]) == 4
    (retention,) = props["LifecycleConfiguration"]["Rules"]
    assert retention["ExpirationInDays"] == {"Ref": "AccessLogRetentionDays"}
    assert log_bucket["DeletionPolicy"] == "Retain"
    # every checkov skip in the template carries a written reason
    for name, r in res.items():
        for skip in r.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert skip["id"].startswith("CKV_") and len(skip.get("comment", "")) > 20, name
    policy = res["AccessLogBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    allow, deny = policy
    assert allow["Principal"] == {"Service": "logging.s3.amazonaws.com"} and allow["Action"] == "s3:PutObject"
    assert "aws:SourceArn" in allow["Condition"]["ArnLike"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_alarms_and_rule_match_what_upsert_puts(template):
    from clinical_ml.monitor import alarms

    res = template["Resources"]
    specs = alarms.alarm_specs("clinical-ml", "clinical-ml-drift", 1.0)
    by_metric = {s["MetricName"]: s for s in specs if "MetricName" in s}
    fields = ("Namespace", "MetricName", "Statistic", "Period", "EvaluationPeriods", "DatapointsToAlarm",
              "ComparisonOperator", "TreatMissingData")
    for logical, metric in (("DriftScoreAlarm", "drift_score"), ("AurocDropAlarm", "auroc_drop")):
        props = res[logical]["Properties"]
        for f in fields:
            assert props[f] == by_metric[metric][f], (logical, f)
        want_name = by_metric[metric]["AlarmName"].replace("clinical-ml-clinical-ml-", "clinical-ml-${EndpointName}-")
        assert props["AlarmName"] == {"Sub": want_name}
        dims = {d["Name"]: d["Value"] for d in props["Dimensions"]}
        assert dims == {"Endpoint": {"Ref": "EndpointName"}, "MonitoringSchedule": {"Sub": "${EndpointName}-drift"}}
    composite = alarms.composite_name("clinical-ml").replace("clinical-ml-clinical-ml", "clinical-ml-${EndpointName}")
    assert res["RetrainAlarm"]["Properties"]["AlarmName"] == {"Sub": composite}

    rule = res["RetrainRule"]["Properties"]
    spec = alarms.retrain_rule_spec("X", "arn:pipeline", "arn:role")
    want_pattern = json.loads(spec["put_rule"]["EventPattern"])
    assert rule["EventPattern"]["source"] == want_pattern["source"]
    assert rule["EventPattern"]["detail-type"] == want_pattern["detail-type"]
    assert rule["EventPattern"]["detail"]["state"] == want_pattern["detail"]["state"]
    assert rule["EventPattern"]["detail"]["alarmName"] == [{"Ref": "RetrainAlarm"}]
    (target,) = rule["Targets"]
    assert target["SageMakerPipelineParameters"] == spec["put_targets"]["Targets"][0]["SageMakerPipelineParameters"]
    assert target["RoleArn"] == {"GetAtt": "EventsRole.Arn"}
    assert "pipeline/${PipelineName}" in target["Arn"]["Sub"]


def test_dockerfiles_put_the_code_where_the_entrypoints_look():
    from pipelines.images import BASE_IMAGES, DLC_ACCOUNT, build_commands, dockerfile
    from pipelines.parameters import IMAGE_REPOSITORIES
    from pipelines.steps import CODE_DIR

    assert set(BASE_IMAGES) == set(IMAGE_REPOSITORIES)
    text = dockerfile().read_text()
    assert all(dockerfile(f) == dockerfile() for f in IMAGE_REPOSITORIES)   # one Dockerfile, a target each
    base = re.search(r"^ARG BASE_IMAGE=(\S+)$", text, re.M).group(1)
    assert base.startswith(f"{DLC_ACCOUNT}.dkr.ecr.") and base.endswith(BASE_IMAGES["processing"])
    assert re.search(r"^FROM \$\{BASE_IMAGE\} AS runtime$", text, re.M)
    for family in IMAGE_REPOSITORIES:
        assert re.search(rf"^FROM \S+ AS {family}$", text, re.M), family
        (cmd,) = build_commands(family, "eu-west-1", "1", "t", "ctx", False)
        assert cmd[cmd.index("--target") + 1] == family
        arg = cmd[cmd.index("--build-arg") + 1]
        assert arg.endswith(BASE_IMAGES[family]) and ("gpu" in arg) == (family == "training-gpu")
    assert f"COPY . {CODE_DIR}\n" in text and f"pip install --no-cache-dir --no-deps --no-build-isolation -e {CODE_DIR}" in text
    serve = (REPO / "pipelines/images/serve").read_text()
    assert "--host 0.0.0.0" in serve and "clinical_ml.cli serve" in serve
    inference = text[text.index("AS inference"):]
    assert 'ENTRYPOINT ["/usr/local/bin/serve"]' in inference and "pipelines/images/train" in text


def test_image_command_prints_plan_and_explains_without_docker(capsys, monkeypatch, tmp_path):
    from pipelines.images import __main__ as images
    from pipelines.images import build_context
    from pipelines.parameters import IMAGE_REPOSITORIES

    assert images.main(["--print", "--region", "eu-west-1", "--account", "123456789012", "--push"]) == 0
    lines = capsys.readouterr().out.splitlines()
    builds = [line for line in lines if line.startswith("docker build")]
    pushes = [line for line in lines if line.startswith("docker push")]
    assert len(builds) == len(pushes) == len(IMAGE_REPOSITORIES)
    for repo in IMAGE_REPOSITORIES.values():
        assert any(f"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{repo}:latest" in b for b in builds)
    assert all("BASE_IMAGE=763104351884.dkr.ecr.eu-west-1.amazonaws.com/" in b for b in builds)

    monkeypatch.setenv("PATH", str(tmp_path))  # no docker on PATH
    assert images.main(["--family", "processing"]) == 2
    assert "No Docker engine" in capsys.readouterr().err

    ctx = build_context(tmp_path / "ctx")
    assert (ctx / "processing" / "build_tasks.py").is_file() and (ctx / "setup.py").is_file()
    assert not (ctx / ".venv").exists() and not list(ctx.rglob("__pycache__"))


def test_dashboard_is_json_and_names_only_published_metrics(template):
    """The dashboard body parses (parameters substituted) and every metric it shows is one the
    code publishes: the drift job's (clinical-ml/DataDrift) or SageMaker's endpoint metrics
    (AWS/SageMaker, written locally by inference/serving_metrics.py)."""
    from clinical_ml.monitor import metrics as M
    from inference import serving_metrics as SM

    dash = template["Resources"]["MonitoringDashboard"]
    assert dash["Type"] == "AWS::CloudWatch::Dashboard"
    values = {"AWS::Region": "eu-west-1", "EndpointName": "ep", "DriftScoreThreshold": "1"}
    sub = dash["Properties"]["DashboardBody"]
    body = re.sub(r"\$\{([^}]+)\}", lambda m: values[m.group(1)], sub.get("Sub", sub) if isinstance(sub, dict) else sub)
    doc = json.loads(body)
    published = {(M.NAMESPACE, n) for n in M.QUALITY_METRICS + M.DRIFT_METRICS} | {
        (SM.NAMESPACE, n) for n in SM.METRICS}
    shown, dims = set(), set()
    for w in doc["widgets"]:
        for m in w["properties"]["metrics"]:
            names = [x for x in m if isinstance(x, str)]
            shown.add((names[0], names[1]))
            dims.add((names[0], tuple(names[2::2])))
    assert shown <= published, shown - published
    assert {("clinical-ml/DataDrift", "drift_score"), ("clinical-ml/DataDrift", "model_auroc"),
            ("clinical-ml/DataDrift", "model_brier"), ("AWS/SageMaker", "ModelLatency"),
            ("AWS/SageMaker", "OverheadLatency"), ("AWS/SageMaker", "Invocation4XXErrors"),
            ("AWS/SageMaker", "Invocation5XXErrors")} <= shown
    assert dims == {(M.NAMESPACE, tuple(d["Name"] for d in M.dimensions("e", "s"))),
                    (SM.NAMESPACE, tuple(d["Name"] for d in SM.dimensions("e", "v")))}
