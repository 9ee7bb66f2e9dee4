"""Tamper-evident audit trail: append-only JSONL, each record hash-chained to the previous one.

Record (one JSON object a line)::

    {"seq": 0, "time": "2026-11-28T12:00:00.123456+00:00", "actor": "arn:...:role/X",
     "event": "step_started", "outcome": "ok", "details": {...},
     "prev": "<hash of record seq-1, or 64 zeros>", "hash": "<sha256 of this record>"}

``hash`` is the SHA-256 of the canonical JSON (sorted keys, no spaces) of the record without
``hash``. Changing a record breaks its hash; deleting or reordering records breaks ``seq`` and
``prev``. Truncating the tail leaves a valid shorter chain, so every append also writes a
``<file>.head`` sidecar (count and last hash) and ``verify`` checks it when present; keep a
copy of the head elsewhere (the run summary does) when the file itself may be replaced.

Where it goes: locally ``$CLINICAL_ML_AUDIT_FILE`` (the runner sets ``runs/<id>/audit.jsonl``);
on AWS ``$CLINICAL_ML_AUDIT_URI=s3://bucket/prefix``, one object per record
(``<prefix>/<seq:08d>.json``, SSE-KMS with ``$CLINICAL_ML_KMS_KEY_ID``), since S3 objects
cannot be appended to. Details never hold PHI: sources, hashes, counts, versions, parameters.

Events used across the project: data_ingested, step_started, step_finished, model_registered,
model_approved, models_compared, endpoint_deployed, endpoint_updated, drift_alarm, retrain_triggered.
"""
from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import fcntl
import getpass
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any, Iterator

GENESIS = "0" * 64


def _canonical(obj: dict[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str).encode()


def record_hash(record: dict[str, Any]) -> str:
    return hashlib.sha256(_canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def default_actor() -> str:
    """Who acts: an explicit actor, the SageMaker execution role, or the OS user."""
    return (os.environ.get("CLINICAL_ML_ACTOR") or os.environ.get("ROLE_ARN")
            or os.environ.get("SM_EXECUTION_ROLE") or f"user:{getpass.getuser()}")


def make_record(seq: int, prev: str, event: str, details: dict[str, Any], outcome: str,
                actor: str | None = None, time: str | None = None) -> dict[str, Any]:
    rec = {"seq": seq, "time": time or dt.datetime.now(dt.timezone.utc).isoformat(),
           "actor": actor or default_actor(), "event": event, "outcome": outcome,
           "details": details, "prev": prev}
    rec["hash"] = record_hash(rec)
    return rec


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _last_line(path: Path) -> str | None:
    if not path.exists() or path.stat().st_size == 0:
        return None
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        pos, buf = f.tell(), b""
        while pos > 0 and buf.count(b"\n") < 2:
            step = min(4096, pos)
            pos -= step
            f.seek(pos)
            buf = f.read(step) + buf
    lines = [ln for ln in buf.splitlines() if ln.strip()]
    return lines[-1].decode() if lines else None


class AuditTrail:
    """Append-only local trail; safe for several processes appending to one file."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.head_path = self.path.with_name(self.path.name + ".head")

    def append(self, event: str, outcome: str = "ok", actor: str | None = None,
               **details: Any) -> dict[str, Any]:
        with _locked(self.path):
            last = _last_line(self.path)
            if last is None:
                seq, prev = 0, GENESIS
            else:
                tail = json.loads(last)
                seq, prev = tail["seq"] + 1, tail["hash"]
            rec = make_record(seq, prev, event, details, outcome, actor)
            line = json.dumps(rec, sort_keys=True, default=str) + "\n"
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            tmp = self.head_path.with_suffix(".head.tmp")
            tmp.write_text(json.dumps({"count": seq + 1, "head": rec["hash"]}) + "\n")
            os.replace(tmp, self.head_path)
        return rec

    def head(self) -> dict[str, Any] | None:
        if not self.head_path.exists():
            return None
        return json.loads(self.head_path.read_text())


class S3AuditTrail:
    """The same chain on S3: one object per record, encrypted with the project's KMS key."""

    def __init__(self, uri: str, kms_key_id: str | None = None, client: Any = None):
        import boto3

        bucket, _, prefix = uri[len("s3://"):].partition("/")
        self.bucket, self.prefix = bucket, prefix.rstrip("/")
        self.kms_key_id = kms_key_id
        self.s3 = client or boto3.client("s3")

    def _keys(self) -> list[str]:
        keys: list[str] = []
        for page in self.s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=f"{self.prefix}/"):
            keys += [o["Key"] for o in page.get("Contents", []) if o["Key"].endswith(".json")]
        return sorted(keys)

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(self.s3.get_object(Bucket=self.bucket, Key=k)["Body"].read())
                for k in self._keys()]

    def append(self, event: str, outcome: str = "ok", actor: str | None = None,
               **details: Any) -> dict[str, Any]:
        keys = self._keys()
        if keys:
            tail = json.loads(self.s3.get_object(Bucket=self.bucket, Key=keys[-1])["Body"].read())
            seq, prev = tail["seq"] + 1, tail["hash"]
        else:
            seq, prev = 0, GENESIS
        rec = make_record(seq, prev, event, details, outcome, actor)
        extra = ({"ServerSideEncryption": "aws:kms", "SSEKMSKeyId": self.kms_key_id}
                 if self.kms_key_id else {})
        # IfNoneMatch makes a concurrent writer of the same seq fail instead of overwriting.
        self.s3.put_object(Bucket=self.bucket, Key=f"{self.prefix}/{seq:08d}.json",
                           Body=json.dumps(rec, sort_keys=True).encode(), IfNoneMatch="*", **extra)
        return rec


def log_event(event: str, outcome: str = "ok", **details: Any) -> dict[str, Any] | None:
    """Append to the trail configured by the environment; a no-op when none is configured."""
    if os.environ.get("CLINICAL_ML_AUDIT_FILE"):
        return AuditTrail(os.environ["CLINICAL_ML_AUDIT_FILE"]).append(event, outcome, **details)
    if os.environ.get("CLINICAL_ML_AUDIT_URI"):
        return S3AuditTrail(os.environ["CLINICAL_ML_AUDIT_URI"],
                            os.environ.get("CLINICAL_ML_KMS_KEY_ID")).append(event, outcome, **details)
    return None


def ingest_event(src: str, tables: list[str] | tuple[str, ...], step: str) -> dict[str, Any] | None:
    """Record which input files a step read: source, and per table file sha256 (S3: ETag).

    Only logged when a trail is configured (hashing the full CHARTEVENTS takes minutes, so it
    is skipped otherwise). Absent optional tables are listed as such, never an error here.
    """
    if not (os.environ.get("CLINICAL_ML_AUDIT_FILE") or os.environ.get("CLINICAL_ML_AUDIT_URI")):
        return None
    from clinical_ml.io import DataError, sha256_file
    from clinical_ml.mimic.files import locate_table

    files: dict[str, Any] = {}
    for name in tables:
        try:
            tf = locate_table(src, name)
        except DataError:
            files[name] = None
            continue
        if tf.uri.startswith("s3://"):
            import boto3

            bucket, _, key = tf.uri[5:].partition("/")
            etag = boto3.client("s3").head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
            files[name] = {"file": Path(key).name, "s3_etag": etag}
        else:
            files[name] = {"file": Path(tf.uri).name, "sha256": sha256_file(tf.uri),
                           "bytes": Path(tf.uri).stat().st_size}
    return log_event("data_ingested", step=step, source=src, files=files)


def verify_records(records: list[dict[str, Any]], head: dict[str, Any] | None = None) -> list[str]:
    """Problems in a chain, first problem first; empty when intact."""
    problems: list[str] = []
    prev = GENESIS
    for i, rec in enumerate(records):
        where = f"record {i + 1} (seq {rec.get('seq')!r})"
        if rec.get("seq") != i:
            problems.append(f"{where}: expected seq {i}: a record was removed or reordered")
        if rec.get("prev") != prev:
            problems.append(f"{where}: prev does not match the hash of the record before it")
        if rec.get("hash") != record_hash(rec):
            problems.append(f"{where}: content changed (hash mismatch)")
        if problems:
            return problems
        prev = rec["hash"]
    if head is not None:
        if head.get("count") != len(records) or (records and head.get("head") != prev):
            problems.append(f"chain ends at record {len(records)} but the head says "
                            f"{head.get('count')} records: records were removed from the end")
    return problems


def read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            records.append({"seq": None, "hash": None, "prev": None, "_line": n})
    return records


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="clinical-ml audit", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="verify the hash chain; exit 1 naming the first bad record")
    v.add_argument("file", help="audit.jsonl or s3://bucket/prefix")
    v.add_argument("--head", help="expected last hash (default: the .head sidecar, if present)")
    s = sub.add_parser("show", help="print the trail as a table (no PHI is ever in it)")
    s.add_argument("file")
    args = p.parse_args(argv)

    if args.file.startswith("s3://"):
        records, head = S3AuditTrail(args.file).records(), None
    else:
        path = Path(args.file)
        if not path.is_file():
            print(f"audit: {path}: no such file", file=sys.stderr)
            return 2
        records, head = read_records(path), AuditTrail(path).head()
    if args.cmd == "show":
        for r in records:
            print(f"{r.get('seq'):>5} {r.get('time', '')[:19]} {r.get('event', ''):<18} "
                  f"{r.get('outcome', ''):<7} {r.get('actor', '')}")
        return 0
    if args.head:
        head = {"count": len(records), "head": args.head}
    problems = verify_records(records, head)
    if problems:
        print(f"audit: {args.file}: TAMPERED: {problems[0]}", file=sys.stderr)
        return 1
    print(f"audit: {args.file}: OK, {len(records)} records, head {records[-1]['hash'] if records else GENESIS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
