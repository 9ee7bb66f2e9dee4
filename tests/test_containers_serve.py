"""The inference image as SageMaker hosting runs it: `podman run IMAGE serve` on :8080 with the
model at /opt/ml/model answers /ping 200, and a request captured by `clinical-ml serve` on the
host gets the same body from the container (docs/containers.md).

Skipped, with the reason, where podman or the inference image built from this checkout is absent.
"""
from __future__ import annotations

import base64
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from clinical_ml import containers
from inference.demo_model import write_demo_outcome_model
from pipelines.local.engine import source_hash
from pipelines.local.entrypoints import REPO_ROOT
from pipelines.parameters import image_uri

INFERENCE = image_uri("inference", "000000000000", "us-east-1")


def _skip_reason() -> str:
    return containers.why_unavailable() or containers.image_problem(INFERENCE, source_hash(REPO_ROOT))


REASON = _skip_reason()
pytestmark = pytest.mark.skipif(bool(REASON), reason=f"no container engine/image: {REASON}")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(url: str, timeout: float = 240) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:  # noqa: S310 - our own server
                return r.status
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"{url}/ping did not answer within {timeout} s")


def _post(url: str, body: bytes, ctype: str) -> bytes:
    req = urllib.request.Request(f"{url}/invocations", data=body, method="POST", headers={"Content-Type": ctype})
    with urllib.request.urlopen(req, timeout=60) as r:  # noqa: S310 - our own server
        return r.read()


def test_podman_run_image_serve_answers_like_clinical_ml_serve(tmp_path):
    model = write_demo_outcome_model(tmp_path / "model", n_features=40)
    capture = tmp_path / "capture"
    host_port, box_port = _port(), _port()
    host = subprocess.Popen([sys.executable, "-m", "clinical_ml.cli", "serve", "--model", str(model), "--port",
                             str(host_port), "--capture-dir", str(capture), "--endpoint-name", "t"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    name = f"clinical-ml-serve-test-{box_port}"
    try:
        host_url = f"http://127.0.0.1:{host_port}"
        assert _wait(host_url) == 200
        rows = [[0.1 * i + j for i in range(40)] for j in range(3)]
        first = _post(host_url, json.dumps({"instances": rows}).encode(), "application/json")
        time.sleep(3)  # the capture writer flushes in the background
        files = sorted(capture.rglob("*.jsonl"))
        assert files, "clinical-ml serve captured nothing"
        rec = json.loads(files[0].read_text().splitlines()[0])["captureData"]["endpointInput"]
        body = base64.b64decode(rec["data"]) if rec["encoding"] == "BASE64" else rec["data"].encode()

        containers.run(["run", "-d", "--rm", "--name", name, "-p", f"127.0.0.1:{box_port}:8080",
                        "-v", f"{model}:/opt/ml/model:ro", INFERENCE, "serve"])
        box_url = f"http://127.0.0.1:{box_port}"
        assert _wait(box_url) == 200
        from_box = _post(box_url, body, rec["observedContentType"])
        from_host = _post(host_url, body, rec["observedContentType"])
        assert from_box == from_host == first
    finally:
        host.terminate()
        host.wait(timeout=30)
        containers.run(["rm", "--force", "--ignore", name], check=False)
