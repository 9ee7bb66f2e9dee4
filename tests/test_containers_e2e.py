"""Steps in their real images (podman): `make test-containers` (docs/containers.md).

- BuildTasks + EvaluateOutcomes of the real definition run on a tiny synthetic MIMIC-III on the
  host and inside the processing image: the task Parquet and evaluation.json are byte-equal;
- a step that reaches the network fails inside a network-isolated container, and the same
  step reaches it when the definition does not isolate it.

Skipped, with the reason, where podman or the processing image built from this checkout is
absent (so `make test` passes on a machine without them).
"""
from __future__ import annotations

import http.server
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from clinical_ml import containers
from clinical_ml.io import make_model_tarball
from pipelines.local.compare import compare
from pipelines.local.engine import flatten_steps, source_hash
from pipelines.local.entrypoints import REPO_ROOT
from pipelines.local.runner import build_definition, run_execution
from pipelines.parameters import image_uri

PROCESSING = image_uri("processing", "000000000000", "us-east-1")


def _skip_reason() -> str:
    return containers.why_unavailable() or containers.image_problem(PROCESSING, source_hash(REPO_ROOT))


REASON = _skip_reason()
pytestmark = pytest.mark.skipif(bool(REASON), reason=f"no container engine/image: {REASON}")


def _definition(steps: list[dict], extra_params: list[dict] = ()) -> dict:
    full = build_definition()
    return {**full, "Steps": steps, "Parameters": full["Parameters"] + list(extra_params)}


def _mini(model_uri: str | None) -> dict:
    """BuildTasks (+ EvaluateOutcomes on a given model, without note features or TrainBaselines'
    model: the given one has its baselines) of the real definition."""
    steps, _ = flatten_steps(build_definition())
    build = json.loads(json.dumps(steps["BuildTasks"]))
    build.pop("DependsOn", None)
    spec = build["Arguments"]["AppSpecification"]["ContainerArguments"]
    for flag in ("--data-window-start", "--data-window-end"):  # DriftGuard's window (JsonGet): not run here
        spec[spec.index(flag) + 1] = "none"
    out = [build]
    if model_uri:
        ev = json.loads(json.dumps(steps["EvaluateOutcomes"]))
        args = ev["Arguments"]
        args["ProcessingInputs"] = [i for i in args["ProcessingInputs"]
                                    if i["InputName"] not in ("note_features", "baselines")]
        for i in args["ProcessingInputs"]:
            if i["InputName"] == "model":
                i["S3Input"]["S3Uri"] = model_uri
        spec = args["AppSpecification"]["ContainerArguments"]
        for flag in ("--note-features", "--baselines"):
            k = spec.index(flag)
            del spec[k:k + 2]
        ev.pop("DependsOn", None)
        out.append(ev)
    return _definition(out)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("containers")
    data = root / "mimic"
    subprocess.run([sys.executable, "-m", "clinical_ml.cli", "synth", "--out", str(data), "--patients", "120",
                    "--seed", "7"], check=True, capture_output=True)
    # a model to evaluate (trained once on the host, from the host's task tree)
    ex, _ = run_execution(_mini(None), root / "runs-model", {"InputDataUri": str(data)}, use_cache=False)
    assert ex.failure is None, ex.failure and ex.failure.message
    out = ex.run_dir / "steps" / "BuildTasks" / "output"
    model = root / "model"
    subprocess.run([sys.executable, str(REPO_ROOT / "training" / "train_outcomes.py"), "--train", str(out / "train"),
                    "--validation", str(out / "val"), "--model-dir", str(model), "--models", "xgboost",
                    "--max-rounds", "5"], check=True, capture_output=True)
    tarball = make_model_tarball(model, root / "model-tar" / "model.tar.gz")
    return root, data, tarball


def test_build_tasks_and_evaluation_equal_on_host_and_in_container(tiny):
    root, data, tarball = tiny
    params = {"InputDataUri": str(data)}
    host, _ = run_execution(_mini(str(tarball)), root / "runs-host", params, use_cache=False)
    assert host.failure is None, host.failure and host.failure.message
    box, _ = run_execution(_mini(str(tarball)), root / "runs-box", params, use_cache=False, containers=True)
    assert box.failure is None, box.failure and box.failure.message
    log = (box.run_dir / "steps" / "BuildTasks" / "logs" / "step.log").read_text()
    assert "podman" in log.splitlines()[0] and "--network none" in log.splitlines()[0]
    report = compare(host.run_dir, box.run_dir)
    for step, r in report.items():
        assert r["equal"], (step, r["differ"])
    assert any(k.endswith(".parquet") for k in report["BuildTasks"]["sha256"])
    assert "evaluation/evaluation.json" in report["EvaluateOutcomes"]["sha256"]
    # the audit records the jobs wrote inside (data_ingested) reached the execution's trail
    events = [json.loads(ln)["event"] for ln in (box.run_dir / "audit.jsonl").read_text().splitlines()]
    assert "data_ingested" in events


class _Hello(http.server.BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *a):
        pass


@pytest.fixture()
def local_server():
    srv = http.server.HTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/"
    srv.shutdown()


def _network_step(url: str, isolated: bool) -> dict:
    code = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return {"Name": "ReachOut", "Type": "Processing", "Arguments": {
        "ProcessingResources": {"ClusterConfig": {"InstanceType": "ml.t3.medium", "InstanceCount": 1,
                                                  "VolumeSizeInGB": 1}},
        "AppSpecification": {"ImageUri": PROCESSING, "ContainerEntrypoint": ["python3", "-c", code]},
        "NetworkConfig": {"EnableNetworkIsolation": isolated}, "Environment": {}}}


@pytest.mark.parametrize("isolated", [True, False])
def test_network_is_cut_for_isolated_steps(tmp_path, local_server, isolated):
    ex, summary = run_execution(_definition([_network_step(local_server, isolated)]), tmp_path / "runs", {},
                                use_cache=False, containers=True)
    log = (ex.run_dir / "steps" / "ReachOut" / "logs" / "step.log").read_text()
    if isolated:
        assert ex.failure is not None and "exit code" in ex.failure.message
        assert "URLError" in log or "unreachable" in log.lower() or "refused" in log.lower(), log[-800:]
    else:
        assert ex.failure is None, log[-800:]
        assert "hello" in log
