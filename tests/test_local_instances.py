"""The local runner plays a multi-instance Processing job as its instances, one after another."""
from __future__ import annotations

import json

from pipelines.local import jobs


def test_hosts_follow_the_instance_count():
    assert jobs.processing_hosts({}) == ["algo-1"]
    assert jobs.processing_hosts({"ProcessingResources": {"ClusterConfig": {"InstanceCount": 3}}}) == [
        "algo-1", "algo-2", "algo-3"]


def test_each_instance_sees_its_own_resourceconfig(tmp_path, monkeypatch):
    from clinical_ml.io import sagemaker_shard

    paths = jobs.StepPaths(final=tmp_path / "final", work=tmp_path / "work")
    hosts = jobs.processing_hosts({"ProcessingResources": {"ClusterConfig": {"InstanceCount": 2}}})
    seen = []
    for host in hosts:
        env = jobs.host_env(paths, hosts, host)
        assert json.loads(open(env["CLINICAL_ML_RESOURCE_CONFIG"]).read()) == {"current_host": host, "hosts": hosts}
        monkeypatch.setenv("CLINICAL_ML_RESOURCE_CONFIG", env["CLINICAL_ML_RESOURCE_CONFIG"])
        seen.append(sagemaker_shard())
    assert seen == [(2, 0), (2, 1)]
    monkeypatch.delenv("CLINICAL_ML_RESOURCE_CONFIG")
    assert sagemaker_shard() == (1, 0)  # outside SageMaker and the runner


def test_inputs_sit_where_the_container_would_see_them(tmp_path):
    """input/tasks/train and input/tasks/test: a script may be given input/tasks (the tree)."""
    src = tmp_path / "s3"
    for split in ("train", "test"):
        (src / split).mkdir(parents=True)
        (src / split / "x.txt").write_text(split)
    args = {"AppSpecification": {"ImageUri": "x/clinical-ml-processing:latest",
                                 "ContainerEntrypoint": ["python3", "/opt/ml/code/processing/build_notes.py"],
                                 "ContainerArguments": ["--admissions", "/opt/ml/processing/input/tasks"]},
            "ProcessingInputs": [{"InputName": f"tasks-{s}", "S3Input": {"S3Uri": str(src / s),
                                  "LocalPath": f"/opt/ml/processing/input/tasks/{s}"}} for s in ("train", "test")],
            "ProcessingOutputConfig": {"Outputs": []}}
    paths = jobs.StepPaths(final=tmp_path / "final", work=tmp_path / "work")
    cmd, env, _ = jobs.prepare_processing(args, paths, str)
    tree = paths.work / "input" / "tasks"
    assert (tree / "train" / "x.txt").read_text() == "train" and (tree / "test" / "x.txt").read_text() == "test"
    assert cmd[-1] == str(tree)
    assert env["SM_PROCESSING_INPUT_TASKS_TRAIN"] == str(tree / "train")
