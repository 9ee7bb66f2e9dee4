"""Deploy step, local backend: registry -> detached `clinical-ml serve`, replaced on update."""
from __future__ import annotations

import json
import os
import urllib.request

import orjson
import pytest

from clinical_ml.io import make_model_tarball
from clinical_ml.registry import LocalRegistry
from inference import deploy, deploy_local
from inference.demo_model import write_demo_outcome_model


def _post(url, body, headers):
    req = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                 headers={"Content-Type": "application/json", **headers})
    with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 (loopback test server)
        return r.status, dict(r.headers), json.loads(r.read())


@pytest.fixture
def registry(tmp_path, monkeypatch):
    root = tmp_path / "runs" / "registry"
    monkeypatch.setenv("CLINICAL_ML_REGISTRY", str(root))
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_S3_ROOT", str(tmp_path / "runs" / "s3"))
    reg = LocalRegistry(root)
    reg.create_model_package_group("outcomes")
    return reg


def test_local_deploy_create_update_delete(registry, tmp_path):
    a = write_demo_outcome_model(tmp_path / "a", n_features=4, n_pheno=2, n_rows=80, n_trees=2, seed=0)
    b = write_demo_outcome_model(tmp_path / "b", n_features=4, n_pheno=2, n_rows=80, n_trees=2, seed=1)
    first = registry.create_model_package("outcomes", make_model_tarball(a, tmp_path / "a.tar.gz"),
                                          approval_status="Approved")
    out = tmp_path / "out"
    common = ["--endpoint-name", "ep", "--output-dir", str(out), "--capture-uri",
              "s3://bucket/capture", "--challenger-weight", "0.3"]
    state = tmp_path / "runs" / "endpoints" / "ep"
    try:
        assert deploy.main(["--model-package-arn", first, *common]) == 0
        info = json.loads((out / "endpoint.json").read_text())
        assert info["backend"] == "local" and info["action"] == "create"
        assert [v["name"] for v in info["variants"]] == ["champion"]
        assert os.path.isfile(state / "server.pid") and info["url"].startswith("http://127.0.0.1:")
        body = orjson.dumps({"instances": [[0.1, 0.2, None, 0.4]]})
        status, headers, doc = _post(info["url"], body, {})
        assert status == 200 and headers["x-amzn-invoked-production-variant"] == "champion"
        # application code written for SageMaker: boto3's runtime client at the endpoint's url
        import boto3  # noqa: PLC0415

        rt = boto3.client("sagemaker-runtime", region_name="us-east-1", endpoint_url=info["url"],
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        r = rt.invoke_endpoint(EndpointName="ep", Body=body, ContentType="application/json")
        assert r["InvokedProductionVariant"] == "champion" and json.loads(r["Body"].read()) == doc
        first_pid, port = info["pid"], info["port"]

        second = registry.create_model_package("outcomes", b, approval_status="Approved")
        assert deploy.main(["--model-package-arn", second, *common, "--traffic", "canary"]) == 0
        info = json.loads((out / "endpoint.json").read_text())
        assert info["action"] == "update" and info["port"] == port and info["pid"] != first_pid
        assert not deploy_local._alive(first_pid)
        weights = {v["name"]: (v["model_package_arn"], v["weight"]) for v in info["variants"]}
        assert weights == {"champion": (first, 0.7), "challenger": (second, 0.3)}
        _, headers, doc_b = _post(info["url"], body, {"X-Amzn-SageMaker-Target-Variant": "challenger"})
        assert headers["x-amzn-invoked-production-variant"] == "challenger"
        _, _, doc_a = _post(info["url"], body, {"X-Amzn-SageMaker-Target-Variant": "champion"})
        assert doc_a["model_version"] == doc["model_version"] != doc_b["model_version"]
    finally:
        deploy.main(["--delete", "--endpoint-name", "ep", "--backend", "local"])
    assert not (state / "server.pid").exists()
    # capture went to the localized s3:// URI, in SageMaker's layout, published on shutdown
    cap = tmp_path / "runs" / "s3" / "bucket" / "capture" / "ep"
    files = list(cap.rglob("*.jsonl"))
    assert {f.relative_to(cap).parts[0] for f in files} == {"champion", "challenger"}
    assert sum(len(f.read_text().splitlines()) for f in files) == 4  # 3 /invocations + 1 InvokeEndpoint


def _routed(url, body, n=200):
    """Invoked variant (response header) and model version per variant over n untargeted requests."""
    seen: dict[str, list] = {}
    for _ in range(n):
        _, headers, doc = _post(url, body, {})
        seen.setdefault(headers["x-amzn-invoked-production-variant"], []).append(doc["model_version"])
    return {name: (len(versions), set(versions)) for name, versions in seen.items()}


def test_local_promotion_shifts_all_traffic_and_canary_weights_move(registry, tmp_path):
    """Promotion (--traffic all): the new model serves every request as the champion, the old one
    stays reachable as 'previous' at weight 0; a canary's weights then move with the models kept."""
    a = write_demo_outcome_model(tmp_path / "a", n_features=4, n_pheno=2, n_rows=80, n_trees=2, seed=0)
    b = write_demo_outcome_model(tmp_path / "b", n_features=4, n_pheno=2, n_rows=80, n_trees=2, seed=1)
    first = registry.create_model_package("outcomes", a, approval_status="Approved")
    out = tmp_path / "out"
    common = ["--endpoint-name", "ep3", "--output-dir", str(out), "--capture-percent", "0"]
    body = orjson.dumps({"instances": [[0.1, 0.2, None, 0.4]]})

    def run(arn, *extra):
        assert deploy.main(["--model-package-arn", arn, *common, *extra]) == 0
        return json.loads((out / "endpoint.json").read_text())

    try:
        info = run(first)
        (v_a,) = _routed(info["url"], body, n=5)["champion"][1]
        second = registry.create_model_package("outcomes", b, approval_status="Approved")
        info = run(second)  # promoted: all traffic
        assert (info["action"], info["change"], info["traffic"]) == ("update", "variants", "all")
        assert [(v["name"], v["model_package_arn"], v["weight"]) for v in info["variants"]] == [
            ("champion", second, 1.0), ("previous", first, 0.0)]
        routed = _routed(info["url"], body)
        assert list(routed) == ["champion"] and routed["champion"][0] == 200
        (v_b,) = routed["champion"][1]
        assert v_b != v_a
        _, headers, doc = _post(info["url"], body, {"X-Amzn-SageMaker-Target-Variant": "previous"})
        assert headers["x-amzn-invoked-production-variant"] == "previous" and doc["model_version"] == v_a

        info = run(second, "--traffic", "canary", "--challenger-weight", "0.2")
        assert info["change"] == "variants"
        info = run(second, "--traffic", "canary", "--challenger-weight", "0.6")  # same models
        assert info["change"] == "weights"
        routed = _routed(info["url"], body)
        assert routed["champion"][1] == {v_a} and routed["challenger"][1] == {v_b}
        assert 90 <= routed["challenger"][0] <= 150  # binomial(200, 0.6): mean 120, sd 6.9
    finally:
        deploy.main(["--delete", "--endpoint-name", "ep3", "--backend", "local"])


def test_local_deploy_of_missing_model_data_fails_clearly(registry, tmp_path):
    from clinical_ml.io import DataError

    arn = registry.create_model_package("outcomes", "s3://bucket/none/model.tar.gz",
                                        approval_status="Approved")
    with pytest.raises(DataError, match="not found"):
        deploy.main(["--model-package-arn", arn, "--endpoint-name", "ep2", "--output-dir",
                     str(tmp_path / "out")])


def test_stale_pid_file_never_kills_another_process(tmp_path):
    import subprocess
    import sys

    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], start_new_session=True)
    try:
        (tmp_path / "server.pid").write_text(f"{other.pid}\n")
        assert deploy_local.stop(tmp_path) is False
        assert other.poll() is None  # still running
        assert not (tmp_path / "server.pid").exists()
    finally:
        other.kill()
        other.wait()
