"""The local endpoint speaks the SageMaker runtime API: a real boto3 ``sagemaker-runtime``
client, pointed at ``clinical-ml serve`` with ``endpoint_url``, works unchanged."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import orjson
import pytest
from starlette.testclient import TestClient

from inference import handlers
from inference.app import ServingApp, Variant
from inference.demo_model import write_demo_outcome_model

boto3 = pytest.importorskip("boto3")
from botocore.config import Config  # noqa: E402
from botocore.exceptions import ClientError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ENDPOINT = "clinical-ml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ping(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=2) as r:  # noqa: S310 (loopback test server)
            return r.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("runtime-api")
    a = write_demo_outcome_model(root / "a", n_features=4, n_pheno=2, n_rows=80, n_trees=2, seed=0)
    b = write_demo_outcome_model(root / "b", n_features=4, n_pheno=2, n_rows=80, n_trees=2, seed=1)
    port = _free_port()
    capture = root / "capture"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    log = (root / "server.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "inference.serve", "--model", str(a), "--name-a", "champion",
         "--model-b", str(b), "--name-b", "challenger", "--weight-b", "0.5", "--port", str(port),
         "--endpoint-name", ENDPOINT, "--capture-dir", str(capture)],
        cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while not _ping(url):
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            pytest.fail(f"server did not start: {(root / 'server.log').read_text()[-2000:]}")
        time.sleep(0.1)
    try:
        yield {"url": url, "capture": capture, "models": (a, b)}
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


@pytest.fixture(scope="module")
def runtime(server):
    return boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=server["url"],
                        aws_access_key_id="testing", aws_secret_access_key="testing",
                        config=Config(retries={"max_attempts": 1}))


BODY = orjson.dumps({"instances": [[0.1, 0.2, None, 0.4]]})


def _direct(url: str, body: bytes, headers: dict) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback test server)
        return r.status, dict(r.headers), r.read()


def test_invoke_endpoint_matches_direct_invocations(server, runtime):
    for variant in ("champion", "challenger"):
        r = runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, ContentType="application/json",
                                    Accept="application/json", TargetVariant=variant)
        assert r["ResponseMetadata"]["HTTPStatusCode"] == 200
        assert r["InvokedProductionVariant"] == variant and r["ContentType"] == "application/json"
        assert r["ResponseMetadata"]["RequestId"]
        body = r["Body"].read()
        status, headers, direct = _direct(server["url"], BODY,
                                          {"X-Amzn-SageMaker-Target-Variant": variant})
        assert status == 200 and headers["x-amzn-invoked-production-variant"] == variant
        assert body == direct
    # CSV in, CSV out; no TargetVariant: a weighted draw, named in the response
    r = runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"0.1,0.2,,0.4\n", ContentType="text/csv",
                                Accept="text/csv")
    assert r["InvokedProductionVariant"] in ("champion", "challenger")
    assert r["ContentType"] == "text/csv" and len(r["Body"].read().splitlines()) == 1


def test_custom_attributes_are_echoed_and_inference_id_reaches_capture(server, runtime):
    r = runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, ContentType="application/json",
                                TargetVariant="challenger", InferenceId="inf-runtime-7",
                                CustomAttributes="trace=abc;ward=7")
    assert r["CustomAttributes"] == "trace=abc;ward=7"
    out = r["Body"].read()
    deadline = time.time() + 10  # the capture writer flushes every 0.25 s
    rec = None
    while rec is None:
        for f in (server["capture"] / ENDPOINT / "challenger").rglob("*.jsonl"):
            for line in f.read_text().splitlines():
                doc = json.loads(line)
                if doc["eventMetadata"].get("inferenceId") == "inf-runtime-7":
                    rec = doc
        assert rec is not None or time.time() < deadline
        time.sleep(0.05)
    assert rec["captureData"]["endpointInput"]["data"].encode() == BODY
    assert rec["captureData"]["endpointOutput"]["data"].encode() == out
    assert "trace=abc" not in json.dumps(rec)  # custom attributes are never captured


def test_errors_raise_the_sagemaker_exceptions(runtime):
    with pytest.raises(runtime.exceptions.ModelError) as e:  # the model's 400
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"{", ContentType="application/json")
    err = e.value.response
    assert err["Error"]["Code"] == "ModelError" and err["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert err["OriginalStatusCode"] == 400 and "malformed JSON" in err["OriginalMessage"]
    assert "Received client error (400) from primary" in err["Error"]["Message"]
    with pytest.raises(runtime.exceptions.ModelError) as e:  # the model's 415
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=b"<x/>", ContentType="application/xml")
    assert e.value.response["OriginalStatusCode"] == 415
    with pytest.raises(runtime.exceptions.ValidationError) as e:  # SageMaker's own checks
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, ContentType="application/json",
                                TargetVariant="nope")
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert "not a production variant" in e.value.response["Error"]["Message"]
    with pytest.raises(runtime.exceptions.ValidationError) as e:
        runtime.invoke_endpoint(EndpointName="other-endpoint", Body=BODY, ContentType="application/json")
    assert "Endpoint other-endpoint of account local not found" in str(e.value)
    with pytest.raises(runtime.exceptions.ValidationError):
        runtime.invoke_endpoint(EndpointName=ENDPOINT, Body=BODY, ContentType="application/json",
                                CustomAttributes="x" * 1025)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    d = write_demo_outcome_model(tmp_path_factory.mktemp("rt-app") / "m", n_features=4, n_pheno=2,
                                 n_rows=80, n_trees=2, seed=0)
    return handlers.model_fn(d)


def test_runtime_route_in_process_limits_and_server_errors(model, monkeypatch):
    app = ServingApp([Variant("A", model)], endpoint="ep", max_payload=1024)
    c = TestClient(app)
    url = "/endpoints/ep/invocations"
    r = c.post(url, content=b"1," * 1000, headers={"content-type": "text/csv"})
    assert r.status_code == 413 and "x-amzn-errortype" not in r.headers  # as SageMaker: bare 413
    assert c.get(url).status_code == 405
    assert c.post("/endpoints/ep/other", content=BODY).status_code == 404
    r = c.post(url, content=BODY, headers={"content-type": "application/json",
                                           "X-Amzn-SageMaker-Inference-Id": " leading-space"})
    assert r.status_code == 400 and r.headers["x-amzn-errortype"] == "ValidationError"

    def boom(*a, **k):
        raise RuntimeError("boom")

    monkeypatch.setattr(handlers, "transform", boom)
    r = c.post(url, content=BODY, headers={"content-type": "application/json"})
    assert r.status_code == 424 and r.headers["x-amzn-errortype"] == "ModelError"
    assert r.json()["OriginalStatusCode"] == 500 and "boom" not in r.text
    assert app.errors == {"4xx": 4, "5xx": 1}
    # the container route keeps its own error shape
    r = c.post("/invocations", content=BODY, headers={"content-type": "application/json"})
    assert r.status_code == 500
    assert r.json() == {"status": 500, "message": "internal error while predicting"}
