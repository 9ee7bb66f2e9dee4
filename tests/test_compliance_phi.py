"""PHI never reaches logs: the real step scripts and the server run on synthetic MIMIC-III seeded
with marker strings in notes and patient fields; no log line, audit record or capture metadata
may contain a marker or a date of birth."""
from __future__ import annotations

import gzip
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

NOTE_MARKER = "ZZNOTEMARKERQQ"
DIAG_MARKER = "ZZDIAGMARKERQQ"
REQUEST_MARKER = "ZZREQUESTMARKERQQ"
MARKERS = (NOTE_MARKER, DIAG_MARKER, REQUEST_MARKER)


def _rewrite(path: Path, edit) -> None:
    df = pd.read_csv(path, dtype=str, keep_default_na=False)
    edit(df)
    with gzip.GzipFile(path, "wb", mtime=0) as f:
        f.write(df.to_csv(index=False).encode())


def _run(args: list[str], log: Path, env: dict) -> None:
    with open(log, "ab") as f:
        rc = subprocess.run([sys.executable, "-m", "clinical_ml.cli", *args], stdout=f,
                            stderr=subprocess.STDOUT, env=env).returncode
    assert rc == 0, f"clinical-ml {args[0]} failed: {log.read_text()[-2000:]}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: bytes, ctype: str = "application/json") -> int:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": ctype})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("phi")
    env = {**os.environ, "CLINICAL_ML_AUDIT_FILE": str(root / "audit.jsonl"), "HF_HUB_OFFLINE": "1",
           "OMP_NUM_THREADS": "1"}
    logs = root / "logs"
    logs.mkdir()
    mimic = root / "mimic"
    _run(["synth", "--out", str(mimic), "--patients", "150", "--seed", "5"], logs / "synth.log", env)
    _rewrite(mimic / "NOTEEVENTS.csv.gz", lambda d: d.__setitem__("TEXT", d["TEXT"] + f"\n{NOTE_MARKER}\n"))
    _rewrite(mimic / "ADMISSIONS.csv.gz", lambda d: d.__setitem__("DIAGNOSIS", DIAG_MARKER + " " + d["DIAGNOSIS"]))
    dobs = sorted({d[:10] for d in pd.read_csv(mimic / "PATIENTS.csv.gz", dtype=str)["DOB"]})
    return root, env, logs, mimic, dobs


@pytest.mark.slow
def test_no_phi_in_logs_audit_or_capture_metadata(world):
    root, env, logs, mimic, dobs = world
    tasks, notes, model, ev, ext = (root / n for n in ("tasks", "notes", "model", "eval", "extractor"))
    _run(["build-tasks", "--mimic", str(mimic), "--out", str(tasks)], logs / "build_tasks.log", env)
    _run(["build-notes", "--input", str(mimic), "--output", str(notes)], logs / "build_notes.log", env)
    _run(["train-outcomes", "--train", str(tasks / "train"), "--validation", str(tasks / "val"),
          "--model-dir", str(model), "--tasks", "ihm,los", "--models", "xgboost",
          "--max-rounds", "10", "--nthread", "1"], logs / "train_outcomes.log", env)
    _run(["evaluate", "--model", str(model), "--test", str(tasks / "test"), "--output", str(ev),
          "--bootstrap", "20"], logs / "evaluate.log", env)
    _run(["train-extractor", "--kind", "rules", "--train", str(notes / "notes" / "train.jsonl"),
          "--validation", str(notes / "notes" / "val.jsonl"), "--model-dir", str(ext)],
         logs / "train_extractor.log", env)
    _run(["extract", "--model", str(ext), "--input", str(notes / "notes" / "test.jsonl"),
          "--output", str(root / "extracted.jsonl")], logs / "extract.log", env)
    _run(["baseline", "--train", str(tasks / "train"), "--task", "ihm", "--output",
          str(root / "baseline")], logs / "baseline.log", env)

    # the server, with capture on, fed requests that carry the marker
    port, capture = _free_port(), root / "capture"
    with open(logs / "serve.log", "wb") as f:
        server = subprocess.Popen([sys.executable, "-m", "clinical_ml.cli", "serve", "--model", str(model),
                                   "--port", str(port), "--capture-dir", str(capture),
                                   "--endpoint-name", "phi-test"], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                urllib.request.urlopen(f"{url}/ping", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        feats = json.loads((model / "feature_spec.json").read_text())["features"]
        row = {f: 1.0 for f in feats}
        assert _post(f"{url}/invocations", json.dumps({"instances": [row]}).encode()) == 200
        assert _post(f"{url}/invocations", json.dumps(
            {"instances": [{**row, "id": REQUEST_MARKER}]}).encode()) in (200, 400)
        assert _post(f"{url}/invocations", json.dumps(
            {"instances": [{**row, feats[0]: REQUEST_MARKER}]}).encode()) == 400
        assert _post(f"{url}/invocations", f"{{{REQUEST_MARKER}".encode()) == 400
        time.sleep(1.5)  # capture is written by a background thread
    finally:
        server.terminate()
        server.wait(timeout=30)
    _run(["drift", "--capture", str(capture), "--baseline", str(root / "baseline"), "--output",
          str(root / "drift"), "--no-metrics"], logs / "drift.log", env)

    texts = {p.name: p.read_text(errors="replace") for p in logs.glob("*.log")}
    texts["audit.jsonl"] = (root / "audit.jsonl").read_text() if (root / "audit.jsonl").exists() else ""
    metadata = [json.loads(line)["eventMetadata"] for p in capture.rglob("*.jsonl")
                for line in p.read_text().splitlines() if line.strip()]
    assert metadata, "the server captured nothing"
    texts["capture eventMetadata"] = json.dumps(metadata)
    assert sum(len(t) for t in texts.values()) > 1000, "too little log output to mean anything"
    for name, text in texts.items():
        for marker in MARKERS:
            assert marker not in text, f"{marker} leaked into {name}"
        leaked = [d for d in dobs if d in text]
        assert not leaked, f"dates of birth {leaked[:3]} leaked into {name}"
    # the markers did go through the pipeline (so the test could have failed)
    assert NOTE_MARKER in (notes / "notes" / "train.jsonl").read_text()
    captured = "".join(p.read_text() for p in capture.rglob("*.jsonl"))
    assert REQUEST_MARKER in captured


def test_data_ingest_is_audited_with_hashes(world):
    root, env, logs, mimic, _ = world
    from clinical_ml.audit import read_records, verify_records
    from clinical_ml.io import sha256_file

    _run(["build-tasks", "--mimic", str(mimic), "--out", str(root / "tasks2"), "--tasks", "ihm"],
         logs / "build_tasks2.log", env)
    recs = read_records(root / "audit.jsonl")
    assert verify_records(recs) == []
    ingest = [r for r in recs if r["event"] == "data_ingested" and r["details"]["step"] == "build-tasks"]
    assert ingest, "build-tasks wrote no data_ingested record"
    files = ingest[-1]["details"]["files"]
    assert files["ADMISSIONS"]["sha256"] == sha256_file(mimic / "ADMISSIONS.csv.gz")
    assert files["CHARTEVENTS"]["bytes"] > 0
