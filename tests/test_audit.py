"""Audit trail: appends chain, and any change, deletion, reorder or truncation is detected."""
from __future__ import annotations

import json
import multiprocessing as mp

import boto3
import pytest
from moto import mock_aws

from clinical_ml import audit
from clinical_ml.audit import AuditTrail, S3AuditTrail, read_records, verify_records


def _trail(tmp_path, n=5):
    t = AuditTrail(tmp_path / "audit.jsonl")
    for i in range(n):
        t.append("step_started", step=f"S{i}", code_version="abc", parameters={"x": i})
    return t


def _lines(t):
    return t.path.read_text().splitlines()


def _verify(path, *extra):
    return audit.main(["verify", str(path), *extra])


def test_intact_chain_verifies(tmp_path, capsys):
    t = _trail(tmp_path)
    recs = read_records(t.path)
    assert [r["seq"] for r in recs] == list(range(5))
    assert recs[0]["prev"] == audit.GENESIS and recs[1]["prev"] == recs[0]["hash"]
    assert _verify(t.path) == 0
    assert "OK, 5 records" in capsys.readouterr().out


def test_changed_record_is_named(tmp_path, capsys):
    t = _trail(tmp_path)
    lines = _lines(t)
    rec = json.loads(lines[2])
    rec["details"]["parameters"]["x"] = 99
    lines[2] = json.dumps(rec, sort_keys=True)
    t.path.write_text("\n".join(lines) + "\n")
    assert _verify(t.path) == 1
    err = capsys.readouterr().err
    assert "record 3" in err and "hash mismatch" in err


def test_deleted_record_is_named(tmp_path, capsys):
    t = _trail(tmp_path)
    lines = _lines(t)
    del lines[1]
    t.path.write_text("\n".join(lines) + "\n")
    assert _verify(t.path) == 1
    assert "record 2" in capsys.readouterr().err


def test_reordered_records_detected(tmp_path, capsys):
    t = _trail(tmp_path)
    lines = _lines(t)
    lines[1], lines[3] = lines[3], lines[1]
    t.path.write_text("\n".join(lines) + "\n")
    assert _verify(t.path) == 1
    assert "record 2" in capsys.readouterr().err


def test_truncated_tail_detected_by_head(tmp_path, capsys):
    t = _trail(tmp_path)
    t.path.write_text("\n".join(_lines(t)[:-1]) + "\n")
    assert verify_records(read_records(t.path)) == []  # the chain alone cannot see it
    assert _verify(t.path) == 1
    assert "removed from the end" in capsys.readouterr().err


def test_rehashed_forgery_still_detected(tmp_path):
    """Recomputing the changed record's own hash does not help: the next prev breaks."""
    t = _trail(tmp_path)
    recs = read_records(t.path)
    recs[1]["outcome"] = "failed"
    recs[1]["hash"] = audit.record_hash(recs[1])
    problems = verify_records(recs)
    assert problems and "record 3" in problems[0]


def _append_many(path, k):
    t = AuditTrail(path)
    for i in range(k):
        t.append("step_finished", i=i)


def test_concurrent_appends_keep_the_chain(tmp_path):
    path = tmp_path / "audit.jsonl"
    procs = [mp.Process(target=_append_many, args=(path, 20)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    recs = read_records(path)
    assert len(recs) == 60
    assert verify_records(recs, AuditTrail(path).head()) == []


def test_log_event_uses_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("CLINICAL_ML_AUDIT_URI", raising=False)
    monkeypatch.delenv("CLINICAL_ML_AUDIT_FILE", raising=False)
    assert audit.log_event("model_registered") is None
    monkeypatch.setenv("CLINICAL_ML_AUDIT_FILE", str(tmp_path / "a.jsonl"))
    monkeypatch.setenv("CLINICAL_ML_ACTOR", "role:test")
    rec = audit.log_event("model_registered", version=3)
    assert rec["actor"] == "role:test" and rec["details"] == {"version": 3}


@mock_aws
def test_s3_trail_with_kms(monkeypatch):
    s3 = boto3.client("s3", region_name="us-east-1")
    s3.create_bucket(Bucket="audit-bucket")
    key = boto3.client("kms", region_name="us-east-1").create_key()["KeyMetadata"]["KeyId"]
    t = S3AuditTrail("s3://audit-bucket/audit/run-1", kms_key_id=key, client=s3)
    for i in range(3):
        t.append("step_started", step=i)
    head = s3.head_object(Bucket="audit-bucket", Key="audit/run-1/00000002.json")
    assert head["ServerSideEncryption"] == "aws:kms"
    recs = t.records()
    assert verify_records(recs) == []
    recs[0]["details"]["step"] = 7
    assert verify_records(recs)


def test_missing_file_exits_2(tmp_path):
    assert _verify(tmp_path / "nope.jsonl") == 2


@pytest.mark.parametrize("bad", ["{not json", ""])
def test_garbage_line_is_reported(tmp_path, bad):
    t = _trail(tmp_path, 3)
    lines = _lines(t)
    lines.insert(1, bad)
    t.path.write_text("\n".join(lines) + "\n")
    expected = 0 if bad == "" else 1  # a blank line is not a record
    assert _verify(t.path) == expected
