"""The container contract of `run-local --containers` (pipelines/local/containers.py), checked on
the `podman run` command lines and the files the runner writes: no engine needed."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from clinical_ml import containers as engine
from clinical_ml.io import DataError
from pipelines.local import jobs
from pipelines.local.containers import AUDIT_DIR, ContainerRuntime

IMAGE = "000000000000.dkr.ecr.us-east-1.amazonaws.com/clinical-ml-processing:latest"


@pytest.fixture()
def runtime(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "podman", lambda *a: ["podman", *a])
    rt = ContainerRuntime(root=tmp_path / "runs", run_dir=tmp_path / "runs" / "ex", execution_id="ex",
                          source_hash="abc", code_version="c0ffee", socket="/x/docker.sock")
    rt._images[IMAGE] = "sha256:img"
    return rt


def _mounts(cmd):
    return {cmd[i + 1].split(":")[1]: cmd[i + 1] for i, c in enumerate(cmd) if c == "-v"}


def _env(cmd):
    return dict(cmd[i + 1].split("=", 1) for i, c in enumerate(cmd) if c == "-e")


def processing_args(isolated=True):
    return {"AppSpecification": {"ImageUri": IMAGE, "ContainerEntrypoint": ["python3", "/opt/ml/code/processing/x.py"],
                                 "ContainerArguments": ["--in", "/opt/ml/processing/input/data", "--out",
                                                        "/opt/ml/processing/output/result"]},
            "ProcessingInputs": [{"InputName": "data", "S3Input": {"S3Uri": "s3://b/k",
                                                                    "LocalPath": "/opt/ml/processing/input/data"}}],
            "ProcessingOutputConfig": {"Outputs": [{"OutputName": "result", "S3Output": {
                "S3Uri": "s3://b/o", "LocalPath": "/opt/ml/processing/output/result"}}]},
            "NetworkConfig": {"EnableNetworkIsolation": isolated}, "Environment": {"A": "/opt/ml/processing/x"}}


def test_processing_job_gets_sagemakers_mounts_entrypoint_and_no_network(runtime, tmp_path):
    paths = jobs.StepPaths(final=tmp_path / "S", work=tmp_path / "w")
    cmd = runtime.processing(processing_args(), paths, "S-ex", "algo-2", ["algo-1", "algo-2"])
    assert cmd[:2] == ["podman", "run"] and cmd[cmd.index("--network") + 1] == "none"
    i = cmd.index(IMAGE)
    assert json.loads(cmd[cmd.index("--entrypoint") + 1]) == ["python3", "/opt/ml/code/processing/x.py"]
    assert cmd[i + 1:] == ["--in", "/opt/ml/processing/input/data", "--out", "/opt/ml/processing/output/result"]
    m = _mounts(cmd)
    assert m["/opt/ml/processing/input/data"] == f"{paths.work}/input/data:/opt/ml/processing/input/data"
    assert m["/opt/ml/processing/output/result"] == f"{paths.work}/output/result:/opt/ml/processing/output/result"
    assert m["/opt/ml/config"].endswith(":ro") and AUDIT_DIR in m
    assert not any(str(runtime.root) == k for k in m)           # isolated: no runs folder, no API socket
    env = _env(cmd)
    assert env["A"] == "/opt/ml/processing/x"                    # the definition's values, not rewritten
    assert env["CLINICAL_ML_BACKEND"] == "local" and "DOCKER_HOST" not in env and "CLINICAL_ML_S3_ROOT" not in env
    conf = json.loads((paths.work / "config" / "algo-2" / "resourceconfig.json").read_text())
    assert conf == {"current_host": "algo-2", "hosts": ["algo-1", "algo-2"]}
    job = json.loads((paths.work / "config" / "algo-2" / "processingjobconfig.json").read_text())
    assert job["ProcessingJobName"] == "S-ex"


def test_jobs_get_the_hosts_numeric_library_settings(runtime, tmp_path, monkeypatch):
    """OPENBLAS_CORETYPE=Haswell on an AVX-512 host, absent in the container, made EvaluateOutcomes'
    figures differ in their last digits between host and container runs."""
    monkeypatch.setenv("OPENBLAS_CORETYPE", "Haswell")
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    monkeypatch.setenv("UNRELATED_SETTING", "x")
    args = processing_args()
    args["Environment"] = {"OMP_NUM_THREADS": "1"}  # the definition's own value wins
    cmd = runtime.processing(args, jobs.StepPaths(final=tmp_path / "S", work=tmp_path / "w"), "S-ex", "algo-1",
                             ["algo-1"])
    env = _env(cmd)
    assert env["OPENBLAS_CORETYPE"] == "Haswell" and env["OMP_NUM_THREADS"] == "1"
    assert "UNRELATED_SETTING" not in env


def test_jobs_with_network_get_the_local_aws_stand_ins(runtime, tmp_path):
    paths = jobs.StepPaths(final=tmp_path / "S", work=tmp_path / "w")
    cmd = runtime.processing(processing_args(isolated=False), paths, "S-ex", "algo-1", ["algo-1"])
    assert cmd[cmd.index("--network") + 1] == "host"
    m, env = _mounts(cmd), _env(cmd)
    assert m[str(runtime.root)] == f"{runtime.root}:{runtime.root}"
    assert env["CLINICAL_ML_REGISTRY"] == str(runtime.root / "registry")
    assert env["DOCKER_HOST"].startswith("unix://") and env["CLINICAL_ML_ENDPOINT_RUNTIME"] == "container"


def test_training_job_contract(runtime, tmp_path):
    paths = jobs.StepPaths(final=tmp_path / "T", work=tmp_path / "w")
    args = {"AlgorithmSpecification": {"TrainingImage": IMAGE, "TrainingInputMode": "File"},
            "HyperParameters": {"max_depth": 4, "eta": "0.1"},
            "InputDataConfig": [{"ChannelName": "train", "DataSource": {"S3DataSource": {"S3Uri": "s3://b/t"}}}],
            "ResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
            "Environment": {"SAGEMAKER_PROGRAM": "training/train_outcomes.py"}, "EnableNetworkIsolation": True}
    cmd = runtime.training(args, paths, "T-ex", {"SM_NUM_CPUS": "1"})
    assert cmd[-2:] == [IMAGE, "train"] and "--entrypoint" not in cmd       # no entrypoint: SageMaker runs `train`
    assert cmd[cmd.index("--network") + 1] == "none"
    m, env = _mounts(cmd), _env(cmd)
    for path in ("/opt/ml/input/data/train", "/opt/ml/model", "/opt/ml/output"):
        assert path in m
    assert m["/opt/ml/input/config"].endswith(":ro")
    assert env["TRAINING_JOB_NAME"] == "T-ex" and env["SM_NUM_CPUS"] == "1"
    assert env["SAGEMAKER_PROGRAM"] == "training/train_outcomes.py"
    config = paths.work / "input" / "config"
    assert json.loads((config / "hyperparameters.json").read_text()) == {"max_depth": "4", "eta": "0.1"}
    rc = json.loads((config / "resourceconfig.json").read_text())
    assert rc["current_host"] == "algo-1" and rc["hosts"] == ["algo-1"] and rc["current_instance_type"] == "ml.m5.xlarge"
    assert json.loads((config / "inputdataconfig.json").read_text())["train"]["TrainingInputMode"] == "File"

    args["AlgorithmSpecification"].update(ContainerEntrypoint=["python3", "/opt/ml/code/t.py"], ContainerArguments=["--x", "1"])
    cmd = runtime.training(args, paths, "T-ex")
    assert json.loads(cmd[cmd.index("--entrypoint") + 1]) == ["python3", "/opt/ml/code/t.py"]
    assert cmd[-3:] == [IMAGE, "--x", "1"]


def test_missing_or_stale_image_is_a_clear_error(runtime, monkeypatch):
    monkeypatch.setattr(engine, "image_exists", lambda image: image == "built")
    monkeypatch.setattr(engine, "image_labels", lambda image: {engine.SOURCE_LABEL: "old"})
    with pytest.raises(DataError, match="not built here; run `make images`"):
        runtime.image_id("missing")
    with pytest.raises(DataError, match="built from other sources"):
        runtime.image_id("built")


def test_audit_records_written_inside_join_the_executions_chain(runtime, tmp_path, monkeypatch):
    from clinical_ml.audit import AuditTrail

    monkeypatch.setattr(engine, "run", lambda *a, **k: None)
    paths = jobs.StepPaths(final=tmp_path / "S", work=tmp_path / "w")
    AuditTrail(paths.work / "audit" / "audit.jsonl").append("data_ingested", source="x", step="build-tasks")
    runtime.run_dir.mkdir(parents=True)
    AuditTrail(runtime.run_dir / "audit.jsonl").append("step_started", step="S")
    runtime.finish(["podman", "run", "--name", "c"], paths)
    recs = [json.loads(ln) for ln in (runtime.run_dir / "audit.jsonl").read_text().splitlines()]
    assert [r["event"] for r in recs] == ["step_started", "data_ingested"]
    assert recs[1]["prev"] == recs[0]["hash"] and recs[1]["details"]["step"] == "build-tasks"
    assert not (paths.work / "audit" / "audit.jsonl").exists()


def test_local_build_carries_this_machines_pip_settings(tmp_path, monkeypatch):
    from pipelines import images

    (tmp_path / "wheels").mkdir()
    (tmp_path / "idx" / "simple").mkdir(parents=True)
    monkeypatch.setattr(images, "_pip_settings", lambda env=None: {
        "find-links": str(tmp_path / "wheels"), "extra-index-url": f"file://{tmp_path}/idx/simple https://x/simple"})
    conf, vols = images.local_pip_config(tmp_path / "pip.conf")
    assert f"find-links = {tmp_path / 'wheels'}" in conf.read_text()
    assert f"{conf}:/etc/pip.conf:ro" in vols
    assert f"{tmp_path / 'wheels'}:{tmp_path / 'wheels'}:ro" in vols and f"{tmp_path / 'idx'}:{tmp_path / 'idx'}:ro" in vols


def test_endpoint_container_serves_both_variants_as_sagemaker_runs_it():
    from inference.deploy_container import serve_command

    variants = [{"name": "champion", "model_dir": "/a", "weight": 0.9}, {"name": "challenger", "model_dir": "/b",
                                                                         "weight": 0.1}]
    cmd = serve_command(variants, "ep", capture=True, capture_percent=50)
    assert cmd[0] == "serve" and cmd[cmd.index("--model-b") + 1] == "/opt/ml/model-b"
    assert cmd[cmd.index("--weight-b") + 1] == "0.1" and cmd[cmd.index("--capture-dir") + 1] == "/opt/ml/capture"
    assert Path("pipelines/images/serve").read_text().count("--model /opt/ml/model") == 1


def test_model_tarballs_unpack_safely_on_pythons_without_the_data_filter(tmp_path, monkeypatch):
    """Debian bookworm's Python 3.11.2 (the local image base) has no tarfile filter: the first
    container run of EvaluateOutcomes failed on it; the fallback keeps the same checks."""
    import io
    import tarfile

    from clinical_ml.io import safe_extract

    monkeypatch.delattr(tarfile, "data_filter", raising=False)
    good = tmp_path / "good.tar.gz"
    with tarfile.open(good, "w:gz") as tar:
        data = b"{}"
        info = tarfile.TarInfo("metadata.json")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    with tarfile.open(good) as tar:
        safe_extract(tar, tmp_path / "out")
    assert (tmp_path / "out" / "metadata.json").read_text() == "{}"
    bad = tmp_path / "bad.tar.gz"
    with tarfile.open(bad, "w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 0
        tar.addfile(info, io.BytesIO(b""))
    with tarfile.open(bad) as tar, pytest.raises(DataError, match="outside"):
        safe_extract(tar, tmp_path / "out2")
    assert not (tmp_path / "escape.txt").exists()
    # a hard link's name is relative to the archive root: "../x" from a/b points outside
    hard = tmp_path / "hard.tar.gz"
    with tarfile.open(hard, "w:gz") as tar:
        info = tarfile.TarInfo("a/b")
        info.type, info.linkname = tarfile.LNKTYPE, "../x"
        tar.addfile(info)
    with tarfile.open(hard) as tar, pytest.raises(DataError, match="outside"):
        safe_extract(tar, tmp_path / "out3")
