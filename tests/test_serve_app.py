"""The serving app: routing by weight and by header, payload limit, data capture."""
from __future__ import annotations

import datetime as dt
import json
import threading
import time

import orjson
import pytest
from starlette.testclient import TestClient

from inference import handlers
from inference.app import ServingApp, Variant
from inference.capture import CaptureWriter, Event
from inference.demo_model import write_demo_outcome_model


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve-app")
    a = write_demo_outcome_model(root / "a", n_features=6, n_pheno=2, n_rows=120, n_trees=3, seed=0)
    b = write_demo_outcome_model(root / "b", n_features=6, n_pheno=2, n_rows=120, n_trees=3, seed=1)
    return handlers.model_fn(a), handlers.model_fn(b)


def _row(model, v=0.5):
    return {f: v for f in model.features}


def _client(app):
    return TestClient(app, raise_server_exceptions=True)


def test_ping_and_unknown_routes(models):
    app = ServingApp([Variant("A", models[0])])
    c = _client(app)
    r = c.get("/ping")
    assert r.status_code == 200 and r.json()["variants"]["A"]["model_version"] == models[0].version
    assert c.get("/nope").status_code == 404
    assert c.get("/invocations").status_code == 405


def test_weighted_routing_proportions(models):
    app = ServingApp([Variant("champion", models[0], 0.8), Variant("challenger", models[1], 0.2)], seed=7)
    c = _client(app)
    body = orjson.dumps({"instances": [_row(models[0])]})
    seen = {"champion": 0, "challenger": 0}
    versions = {}
    n = 1000
    for _ in range(n):
        r = c.post("/invocations", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 200
        name = r.headers["x-amzn-invoked-production-variant"]
        seen[name] += 1
        versions[name] = r.json()["model_version"]
    # binomial(1000, 0.2): sd ~ 12.6; 5 sd either side
    assert abs(seen["challenger"] - 200) < 63, seen
    assert versions == {"champion": models[0].version, "challenger": models[1].version}
    assert app.counts == seen


def test_target_variant_header(models):
    app = ServingApp([Variant("A", models[0], 1.0), Variant("B", models[1], 0.0)])
    c = _client(app)
    body = orjson.dumps({"instances": [_row(models[0])]})
    for _ in range(20):
        r = c.post("/invocations", content=body, headers={"content-type": "application/json",
                                                          "X-Amzn-SageMaker-Target-Variant": "B"})
        assert r.headers["x-amzn-invoked-production-variant"] == "B"
        assert r.json()["model_version"] == models[1].version
    r = c.post("/invocations", content=body, headers={"content-type": "application/json",
                                                      "X-Amzn-SageMaker-Target-Variant": "C"})
    assert r.status_code == 400 and "not a production variant" in r.json()["message"]


def test_payload_limit_is_413(models):
    app = ServingApp([Variant("A", models[0])], max_payload=6 * 1024 * 1024)
    c = _client(app)
    big = b"1," * (3 * 1024 * 1024 + 1)  # just over 6 MB
    r = c.post("/invocations", content=big, headers={"content-type": "text/csv"})
    assert r.status_code == 413 and "limit" in r.json()["message"]

    def chunks():  # no Content-Length: the limit is enforced while reading
        for _ in range(7):
            yield b"x" * (1024 * 1024)

    r = c.post("/invocations", content=chunks(), headers={"content-type": "text/csv"})
    assert r.status_code == 413
    ok = orjson.dumps({"instances": [_row(models[0])]})
    assert c.post("/invocations", content=ok, headers={"content-type": "application/json"}).status_code == 200


def test_errors_are_json_4xx(models):
    c = _client(ServingApp([Variant("A", models[0])]))
    for body, ctype, status in ((b"", "application/json", 400), (b"{", "application/json", 400),
                                (b"{}", "application/xml", 415)):
        r = c.post("/invocations", content=body, headers={"content-type": ctype})
        assert r.status_code == status and r.json()["message"]


def _read_capture(root):
    files = sorted(root.rglob("*.jsonl"))
    return files, [json.loads(line) for f in files for line in f.read_text().splitlines()]


def test_capture_files_parse_and_match_requests(models, tmp_path):
    cap = CaptureWriter(tmp_path / "capture", "ep1", percent=100)
    app = ServingApp([Variant("A", models[0], 0.5), Variant("B", models[1], 0.5)], endpoint="ep1",
                     capture=cap, seed=1)
    c = _client(app)
    sent = {}
    for i in range(40):
        if i % 2:
            body, ctype = orjson.dumps({"instances": [_row(models[0], i / 10)]}), "application/json"
        else:
            body, ctype = ",".join([str(i / 10)] * len(models[0].features)).encode(), "text/csv"
        r = c.post("/invocations", content=body, headers={
            "content-type": ctype, "X-Amzn-SageMaker-Inference-Id": f"inf-{i}"})
        assert r.status_code == 200
        sent[f"inf-{i}"] = (body, ctype, r.content, r.headers["x-amzn-invoked-production-variant"])
    c.post("/invocations", content=b"{", headers={"content-type": "application/json"})  # 400: not captured
    deadline = time.time() + 10  # visible while the server runs (the drift job reads live files)
    while sum(len(f.read_bytes().splitlines()) for f in (tmp_path / "capture").rglob("*.jsonl")) < 40:
        assert time.time() < deadline
        time.sleep(0.05)
    app.close()
    files, recs = _read_capture(tmp_path / "capture")
    assert len(recs) == 40 and cap.stats()["dropped"] == 0
    now = dt.datetime.now(dt.timezone.utc)
    for f in files:
        rel = f.relative_to(tmp_path / "capture").parts
        assert rel[0] == "ep1" and rel[1] in ("A", "B")
        assert rel[2:6] == (f"{now:%Y}", f"{now:%m}", f"{now:%d}", f"{now:%H}") or now.minute == 0
    for rec in recs:
        assert rec["eventVersion"] == "0"
        meta = rec["eventMetadata"]
        body, ctype, out, variant = sent[meta["inferenceId"]]
        assert meta["eventId"] and meta["inferenceTime"].endswith("Z")
        inp, outp = rec["captureData"]["endpointInput"], rec["captureData"]["endpointOutput"]
        assert inp["mode"] == "INPUT" and outp["mode"] == "OUTPUT"
        assert inp["data"].encode() == body and inp["observedContentType"] == ctype
        assert inp["encoding"] == ("CSV" if ctype == "text/csv" else "JSON")
        assert outp["data"].encode() == out
    by_variant = {}
    for f in files:
        by_variant.setdefault(f.relative_to(tmp_path / "capture").parts[1], 0)
    assert set(by_variant) == {"A", "B"}


def test_capture_sampling_percentage(tmp_path):
    cap = CaptureWriter(tmp_path, "ep", percent=25, seed=3)
    hits = sum(cap.sample() for _ in range(4000))
    cap.close()
    assert abs(hits - 1000) < 5 * (4000 * 0.25 * 0.75) ** 0.5


def _event(i=0):
    return Event("A", dt.datetime.now(dt.timezone.utc), f"id-{i}", "text/csv", b"1,2", "text/csv", b"0.5\n")


def test_capture_never_blocks_and_counts_drops(tmp_path, monkeypatch):
    cap = CaptureWriter(tmp_path, "ep", percent=100, max_queue=5)
    gate = threading.Event()
    real = cap._write
    monkeypatch.setattr(cap, "_write", lambda evs: (gate.wait(5), real(evs)))
    t0 = time.perf_counter()
    accepted = sum(cap.submit(_event(i)) for i in range(100))
    assert time.perf_counter() - t0 < 0.5  # a stuck disk does not stall requests
    assert cap.stats()["dropped"] == 100 - accepted and accepted <= 6
    gate.set()
    cap.close()
    _, recs = _read_capture(tmp_path)
    assert len(recs) == accepted


def test_capture_rolls_files_by_age(tmp_path):
    cap = CaptureWriter(tmp_path, "ep", percent=100, roll_seconds=0.0)
    cap.submit(_event(1))
    deadline = time.time() + 5
    while not list(tmp_path.rglob("*.jsonl")) and time.time() < deadline:
        time.sleep(0.05)
    cap.submit(_event(2))
    cap.close()
    files, recs = _read_capture(tmp_path)
    assert len(files) == 2 and len(recs) == 2  # one file per roll


def test_serve_config_builds_the_same_app_in_every_worker(models, tmp_path, monkeypatch):
    import orjson as _orjson

    from inference import app as app_mod
    from inference import serve

    args = serve.parse_args(["--model", str(models[0].dir), "--model-b", str(models[1].dir),
                             "--weight-b", "0.3", "--name-a", "champion", "--name-b", "challenger",
                             "--capture-dir", str(tmp_path), "--capture-percent", "10"])
    assert args.host == "127.0.0.1"
    monkeypatch.setenv(app_mod.ENV_CONFIG, _orjson.dumps(serve.config(args)).decode())
    app = app_mod.app_from_env()
    try:
        assert {n: v.weight for n, v in app.variants.items()} == {"champion": 0.7, "challenger": 0.3}
        assert app.capture is not None and app.capture.percent == 10
    finally:
        app.close()
    for bad in (["--weight-b", "1.5"], ["--capture-percent", "-1"],
                ["--model-b", "x", "--name-a", "A", "--name-b", "A"]):
        with pytest.raises(SystemExit):
            serve.parse_args(["--model", "m", *bad])


def test_worker_cpu_slots_are_exclusive_and_freed_with_the_process(tmp_path):
    import subprocess
    import sys

    from inference.affinity import claim_slot, should_pin

    assert should_pin("auto", 2, 2) and not should_pin("auto", 1, 2) and not should_pin("auto", 3, 2)
    assert should_pin("on", 1, 2) and not should_pin("off", 2, 2)
    # another process holds slot 0 while it lives; this one gets slot 1, then none is left
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; sys.path.insert(0, '.'); from inference.affinity import claim_slot; "
        f"print(claim_slot({str(tmp_path)!r}, 2), flush=True); time.sleep(30)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_slot(tmp_path, 2) == 1
        assert claim_slot(tmp_path, 2) is None
    finally:
        holder.kill()
        holder.wait()
    # the dead holder's lock is gone: a replacement worker takes its slot
    assert claim_slot(tmp_path, 2) == 0


def test_latency_and_error_metrics_in_sagemakers_names(models, tmp_path):
    """ModelLatency/OverheadLatency (us, p50/p99 per window) and 4XX/5XX counts, per variant,
    in the local metrics file, as SageMaker names them (AWS/SageMaker, EndpointName/VariantName)."""
    from clinical_ml.monitor import metrics as M
    from inference.serving_metrics import METRICS, ServingMetrics

    sm = ServingMetrics(tmp_path / "m.jsonl", "ep1", start_thread=False)
    app = ServingApp([Variant("A", models[0], 1.0), Variant("B", models[1], 0.0)], endpoint="ep1",
                     metrics=sm)
    c = _client(app)
    row = _row(models[0])
    for _ in range(20):
        assert c.post("/invocations", json={"instances": [row]}).status_code == 200
    assert c.post("/invocations", json={"instances": [row]},
                  headers={"X-Amzn-SageMaker-Target-Variant": "B"}).status_code == 200
    assert c.post("/invocations", content=b"{", headers={"content-type": "application/json"}).status_code == 400
    assert c.post("/endpoints/ep1/invocations", content=b"{}",
                  headers={"content-type": "application/xml"}).status_code == 424   # ModelError(415)
    assert c.post("/endpoints/nope/invocations", json={}).status_code == 400      # front end
    c.get("/ping")                                                                 # not counted
    points = sm.flush()
    assert sm.flush() == []                                                        # window drained
    assert {p["MetricName"] for p in points} == set(METRICS)
    got = {(p["MetricName"], {d["Name"]: d["Value"] for d in p["Dimensions"]}.get("VariantName")): p
           for p in M.read_local(tmp_path / "m.jsonl")}
    assert all(p["Namespace"] == "AWS/SageMaker" for p in got.values())
    assert got[("Invocations", "A")]["Value"] == 22 and got[("Invocation4XXErrors", "A")]["Value"] == 2
    assert got[("Invocations", "B")]["Value"] == 1 and got[("Invocation5XXErrors", "A")]["Value"] == 0
    assert got[("Invocation4XXErrors", "AllTraffic")]["Value"] == 1    # refused before routing
    lat = got[("ModelLatency", "A")]
    assert lat["Unit"] == "Microseconds" and lat["StatisticValues"]["SampleCount"] == 20   # answered ones
    ext = lat["ExtendedStatistics"]
    assert 0 < ext["p50"] <= ext["p99"] <= lat["StatisticValues"]["Maximum"] and lat["Value"] == ext["p50"]
    assert got[("OverheadLatency", "A")]["StatisticValues"]["Minimum"] >= 0


def test_window_percentiles_are_numpys():
    import numpy as np

    from inference.serving_metrics import window_points

    rng = np.random.default_rng(0)
    model = rng.integers(100_000, 900_000, 1000)
    samples = [("A", 200, int(m), int(m) + 50_000) for m in model]
    pts = {p["MetricName"]: p for p in window_points(samples, "ep", dt.datetime(2026, 1, 1))}
    want = np.percentile(model / 1000.0, [50, 99], method="nearest")
    assert [pts["ModelLatency"]["ExtendedStatistics"][k] for k in ("p50", "p99")] == list(want)
    assert pts["OverheadLatency"]["ExtendedStatistics"]["p99"] == pytest.approx(50.0)


def test_serving_metrics_thread_writes_windows_and_restarts(tmp_path):
    from inference.serving_metrics import ServingMetrics

    sm = ServingMetrics(tmp_path / "m.jsonl", "ep", window_seconds=0.05)
    sm.observe("A", 200, 1_000_000, 1_200_000)
    time.sleep(0.5)
    assert sm.written >= 5 and (tmp_path / "m.jsonl").is_file()
    sm.close()
    sm.start()
    sm.observe("A", 500, None, 10_000)
    sm.close()                                   # the last window is written on close
    lines = [json.loads(x) for x in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert sum(p["MetricName"] == "Invocation5XXErrors" and p["Value"] == 1 for p in lines) == 1
