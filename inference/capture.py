"""Data capture in SageMaker's format, written off the request path.

One JSON object per captured request (docs/contracts.md, "Endpoint")::

    {"captureData": {"endpointInput":  {"observedContentType": "text/csv", "mode": "INPUT",
                                        "data": "...", "encoding": "CSV"},
                     "endpointOutput": {"observedContentType": "text/csv", "mode": "OUTPUT",
                                        "data": "...", "encoding": "CSV"}},
     "eventMetadata": {"eventId": "<uuid>", "inferenceId": "<X-Amzn-SageMaker-Inference-Id>",
                       "inferenceTime": "2026-01-01T12:00:00.123Z"},
     "eventVersion": "0"}

Files: ``<root>/<endpoint>/<variant>/yyyy/mm/dd/hh/<uuid>.jsonl`` (UTC hour of the inference).
A request only samples and appends to an in-memory buffer (a deque append, no lock, no thread
wake-up); a daemon thread wakes every ``flush_seconds``, encodes what has accumulated and
appends it, 32 records per write. Waking the writer once per request instead cost 0.3-0.5 ms
of server CPU per request in GIL and futex hand-offs (bench-serve, docs/serving.md). The
buffer is bounded: when it is full the record is dropped and counted (``dropped``), because a
slow disk must never slow or fail a clinical request. Records become visible within ``flush_seconds`` plus the write: the writer
appends whole lines (one ``write`` and ``flush`` per batch) to the hour's file, so a reader
(the drift job) sees complete records, at worst missing the batch being written; a file is
rolled at the hour, after ``roll_seconds``, and on shutdown.
"""
from __future__ import annotations

import base64
import collections
import datetime as dt
import os
import random
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import orjson

from clinical_ml.logs import get_logger
from inference.codecs import CAPTURE_ENCODING

log = get_logger(__name__)


@dataclass(slots=True)
class Event:
    variant: str
    time: dt.datetime
    inference_id: str | None
    content_type: str
    body: bytes
    accept: str
    output: bytes


def _payload(mode: str, content_type: str, body: bytes) -> dict:
    enc = CAPTURE_ENCODING.get(content_type.split(";", 1)[0].strip().lower())
    if enc:
        try:
            data = body.decode("utf-8")
        except UnicodeDecodeError:
            enc = None
    if not enc:
        enc, data = "BASE64", base64.b64encode(body).decode("ascii")
    return {"observedContentType": content_type, "mode": mode, "data": data, "encoding": enc}


def record(ev: Event) -> dict:
    """The SageMaker capture record for one request/response pair."""
    t = ev.time.astimezone(dt.timezone.utc)
    meta = {"eventId": str(uuid.uuid4()),
            "inferenceTime": t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"}
    if ev.inference_id:
        meta["inferenceId"] = ev.inference_id
    return {"captureData": {"endpointInput": _payload("INPUT", ev.content_type, ev.body),
                            "endpointOutput": _payload("OUTPUT", ev.accept, ev.output)},
            "eventMetadata": meta, "eventVersion": "0"}


class _File:
    def __init__(self, folder: Path, hour: str):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / f"{uuid.uuid4()}.jsonl"
        self.hour = hour
        self.opened = dt.datetime.now(dt.timezone.utc)
        self.fh: IO[bytes] = open(self.path, "ab")

    def close(self) -> Path:
        self.fh.close()
        return self.path


class CaptureWriter:
    """Sampled, bounded, non-blocking capture to hourly JSONL files."""

    def __init__(self, root: str | os.PathLike, endpoint: str, percent: float = 100.0,
                 max_queue: int = 10_000, roll_seconds: float = 3600.0, seed: int | None = None,
                 flush_seconds: float = 0.25):
        if not 0 <= percent <= 100:
            raise ValueError(f"capture percent {percent} is not within 0..100")
        self.root, self.endpoint = Path(root), endpoint
        self.percent, self.roll_seconds = percent, roll_seconds
        self.max_queue, self.flush_seconds = max_queue, flush_seconds
        self._buf: collections.deque[Event] = collections.deque()
        self.captured = self.dropped = self.failed = 0
        self._rand = random.Random(seed)
        self._files: dict[str, _File] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        self._stop = threading.Event()
        t = threading.Thread(target=self._run, args=(self._stop,), name="capture-writer", daemon=True)
        t.start()
        return t

    def sample(self) -> bool:
        return self.percent >= 100 or self._rand.random() * 100 < self.percent

    def submit(self, ev: Event) -> bool:
        """Buffer without blocking; False (and counted) when the buffer is full."""
        if not self._thread.is_alive():  # closed earlier (e.g. an ASGI lifespan cycle): reopen
            with self._lock:
                if not self._thread.is_alive():
                    self._thread = self._start()
        if len(self._buf) >= self.max_queue:
            self.dropped += 1
            return False
        self._buf.append(ev)  # atomic under the GIL; the writer pops from the other end
        return True

    def _folder(self, variant: str, t: dt.datetime) -> tuple[str, Path]:
        hour = t.strftime("%Y/%m/%d/%H")
        return hour, self.root / self.endpoint / variant / hour

    def _write(self, events: list[Event]) -> None:
        lines: dict[tuple[str, str], list[bytes]] = {}
        folders: dict[tuple[str, str], Path] = {}
        for ev in events:
            hour, folder = self._folder(ev.variant, ev.time.astimezone(dt.timezone.utc))
            key = (ev.variant, hour)
            folders[key] = folder
            lines.setdefault(key, []).append(orjson.dumps(record(ev)) + b"\n")
        for (variant, hour), chunk in lines.items():
            f = self._files.get(variant)
            if f is not None and (f.hour != hour or self._expired(f, dt.datetime.now(dt.timezone.utc))):
                f.close()
                f = None
            if f is None:
                f = self._files[variant] = _File(folders[(variant, hour)], hour)
            f.fh.write(b"".join(chunk))
            f.fh.flush()
        self.captured += len(events)

    def _expired(self, f: _File, now: dt.datetime) -> bool:
        return (now - f.opened).total_seconds() >= self.roll_seconds

    def _roll_old(self) -> None:
        now = dt.datetime.now(dt.timezone.utc)
        for variant, f in list(self._files.items()):
            if self._expired(f, now) or f.hour != now.strftime("%Y/%m/%d/%H"):
                f.close()
                del self._files[variant]

    def _run(self, stop: threading.Event) -> None:
        while True:
            stopping = stop.wait(self.flush_seconds)
            while self._buf:
                batch = self._drain()
                try:
                    self._write(batch)
                except OSError as e:  # full disk, permissions: count and keep serving
                    self.failed += len(batch)
                    log.error("capture write failed (%s); %d records lost", type(e).__name__, len(batch))
            try:
                self._roll_old()
            except OSError as e:
                log.error("capture file close failed (%s)", type(e).__name__)
            if stopping:
                break
        for f in self._files.values():
            f.close()
        self._files.clear()

    def _drain(self, limit: int = 32) -> list[Event]:
        """Up to ``limit`` events: each chunk ends in a write (which releases the GIL), so the
        event loop never waits behind more than ~1 ms of encoding."""
        out = []
        try:
            while len(out) < limit:
                out.append(self._buf.popleft())
        except IndexError:
            pass
        return out

    def close(self, timeout: float = 10.0) -> None:
        """Write what is buffered and close the open files."""
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join(timeout)
        log.info("capture closed: %d captured, %d dropped, %d failed", self.captured,
                 self.dropped, self.failed)

    def stats(self) -> dict[str, int]:
        return {"captured": self.captured, "dropped": self.dropped, "failed": self.failed,
                "queued": len(self._buf)}
