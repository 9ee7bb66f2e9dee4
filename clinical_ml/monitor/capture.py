"""SageMaker data-capture JSONL: read a time window of captured requests as a feature frame.

Layout (docs/contracts.md, "Endpoint"): ``<capture>/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl``,
one record a line::

    {"captureData": {"endpointInput":  {"observedContentType", "mode": "INPUT",  "data", "encoding"},
                     "endpointOutput": {"observedContentType", "mode": "OUTPUT", "data", "encoding"}},
     "eventMetadata": {"eventId", "inferenceId", "inferenceTime"}, "eventVersion": "0"}

``encoding`` is ``JSON`` (data is the JSON text), ``CSV`` (data is the CSV text) or ``BASE64``
(data is the base64 of the body, decoded by ``observedContentType``). Request bodies are the
outcome model's features: ``{"instances": [{"f_...": v, ...} | [v, ...], ...]}``, JSON Lines, or
CSV rows in feature order. Lists and CSV rows are named by ``feature_names`` (the baseline's
order). Records that cannot be decoded are counted, never fatal: one bad client must not blind
the monitor.
"""
from __future__ import annotations

import base64
import io
import os
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import orjson
import pandas as pd

from clinical_ml.io import DataError, atomic_path

CHUNK = 5000  # rows decoded into a frame at a time
IGNORED_KEYS = ("id",)  # request fields that are not features (the serving contract's row id)
_HOUR_DIR = re.compile(r"(\d{4})/(\d{2})/(\d{2})/(\d{2})$")


def parse_time(value: str | datetime) -> datetime:
    """ISO-8601 (``Z`` or offset; naive means UTC) -> aware UTC datetime."""
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            raise DataError(f"time {value!r}: expected ISO 8601, e.g. 2026-01-31T13:00:00Z") from None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def format_time(dt: datetime) -> str:
    return parse_time(dt).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def capture_files(root: str | os.PathLike, start: datetime | None = None,
                  end: datetime | None = None) -> list[Path]:
    """Capture files under ``root`` whose hour folder overlaps ``[start, end)``, sorted."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: capture folder not found; pass the endpoint's data-capture "
                        "destination (…/<endpoint>/<variant>/yyyy/mm/dd/hh/*.jsonl)")
    out = []
    for p in sorted(root.rglob("*.jsonl")):
        m = _HOUR_DIR.search(p.parent.as_posix())
        if m and (start or end):
            hour = datetime(*map(int, m.groups()), tzinfo=timezone.utc)
            if (end and hour >= end) or (start and hour + timedelta(hours=1) <= start):
                continue
        out.append(p)
    return out


@dataclass
class CaptureWindow:
    """Decoded traffic of one window: one frame row per instance."""
    frame: pd.DataFrame
    predictions: np.ndarray            # one float per row (NaN where the output had none)
    event_ids: list[str]               # eventId of the record each row came from
    row_in_event: np.ndarray           # the row's position inside its request
    records: int = 0
    files: int = 0
    undecodable: int = 0
    errors: list[str] = field(default_factory=list)  # first few reasons (no payload text)
    inference_ids: list[str] = field(default_factory=list)  # the record's inferenceId ("" if none)


def _body(part: dict) -> tuple[str, Any]:
    enc = str(part.get("encoding", "JSON")).upper()
    ctype = str(part.get("observedContentType", "application/json")).split(";")[0].strip().lower()
    data = part.get("data", "")
    if enc == "BASE64":
        data = base64.b64decode(data).decode("utf-8")
    elif enc == "CSV":
        ctype = "text/csv" if "csv" not in ctype else ctype
    return ctype, data


def _json_rows(data: Any, jsonlines: bool) -> list:
    if jsonlines and isinstance(data, str):
        return [orjson.loads(line) for line in data.splitlines() if line.strip()]
    obj = orjson.loads(data) if isinstance(data, (str, bytes)) else data
    if isinstance(obj, dict):
        if "series" in obj and "instances" not in obj:
            raise ValueError("hourly-series request: features are computed inside the endpoint")
        if "instances" in obj:
            obj = obj["instances"]
        elif "features" in obj and isinstance(obj["features"], list):
            obj = [obj["features"]]
        else:
            obj = [obj]
    if not isinstance(obj, list):
        raise ValueError("request body is neither an object nor a list")
    if obj and not isinstance(obj[0], (dict, list)):
        obj = [obj]  # one flat list = one instance
    return obj


def decode_input(part: dict) -> tuple[list, list[str]]:
    """(rows, kinds): JSON rows (dict or list) or CSV lines of one captured request."""
    ctype, data = _body(part)
    if "csv" in ctype:
        lines = [ln for ln in str(data).splitlines() if ln.strip()]
        return lines, ["csv"] * len(lines)
    rows = _json_rows(data, jsonlines="jsonlines" in ctype)
    return rows, ["json"] * len(rows)


def decode_output(part: dict | None, n_rows: int, task: str = "ihm") -> np.ndarray:
    """One score per row from the endpoint's response (NaN when absent or not understood).

    JSON responses ``{"predictions": [{"ihm": 0.2, "decomp": ...}, ...]}`` give the ``task``
    output; bare numbers, ``probability``/``score`` keys and CSV's first column are also read.
    """
    out = np.full(n_rows, np.nan)
    if not part:
        return out
    try:
        ctype, data = _body(part)
        if "csv" in ctype:
            vals: list = [float(x.split(",")[0]) for x in str(data).splitlines() if x.strip()]
        else:
            obj = _json_rows(data, jsonlines="jsonlines" in ctype) if not isinstance(data, (int, float)) else [data]
            if len(obj) == 1 and isinstance(obj[0], dict) and "predictions" in obj[0]:
                obj = obj[0]["predictions"]
            vals = [_score(v[task] if isinstance(v, dict) and task in v else v) for v in obj]
        if len(vals) == n_rows:
            out[:] = vals
    except (ValueError, TypeError, KeyError, orjson.JSONDecodeError):
        pass
    return out


def _score(v: Any) -> float:
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, list) and v:
        return _score(v[-1])
    if isinstance(v, dict):
        for k in ("probability", "score", "prediction", "predicted_probability"):
            if k in v:
                return _score(v[k])
        nums = [x for x in v.values() if isinstance(x, (int, float))]
        if len(nums) == 1:
            return float(nums[0])
    raise ValueError("no score")


def read_window(root: str | os.PathLike, feature_names: Sequence[str], start: datetime | None = None,
                end: datetime | None = None, max_errors: int = 5,
                string_columns: Sequence[str] = (), task: str = "ihm") -> CaptureWindow:
    """All captured instances with ``start <= inferenceTime < end`` under ``root``.

    ``string_columns`` are read from CSV as text (so code "250.00" is not turned into 250.0).
    """
    start = parse_time(start) if start is not None else None
    end = parse_time(end) if end is not None else None
    files = capture_files(root, start, end)
    dict_rows: list[dict] = []
    dict_pos: list[int] = []
    list_rows: list[list] = []
    list_pos: list[int] = []
    csv_lines: list[str] = []
    csv_pos: list[int] = []
    preds: list[np.ndarray] = []
    event_ids: list[str] = []
    inference_ids: list[str] = []
    row_in_event: list[int] = []
    win = CaptureWindow(pd.DataFrame(), np.empty(0), [], np.empty(0, dtype=np.int64), files=len(files))
    pos = 0
    names = list(feature_names)
    frames: list[pd.DataFrame] = []

    def flush() -> None:
        # rows become columns every CHUNK rows: Python objects for a whole window would not fit
        if dict_rows:
            frames.append(pd.DataFrame.from_records(dict_rows, index=dict_pos))
        if list_rows:
            arr = [r[: len(names)] + [None] * (len(names) - len(r)) for r in list_rows]
            frames.append(pd.DataFrame(arr, columns=names, index=list_pos))
        if csv_lines:
            frames.append(_read_csv_lines(csv_lines, names, csv_pos, string_columns))
        for buf in (dict_rows, dict_pos, list_rows, list_pos, csv_lines, csv_pos):
            buf.clear()

    for path in files:
        with open(path, "rb") as fh:
            for line in fh:
                if not line.strip():
                    continue
                win.records += 1
                try:
                    rec = orjson.loads(line)
                    meta = rec.get("eventMetadata", {})
                    if start or end:
                        t = parse_time(meta["inferenceTime"])
                        if (start and t < start) or (end and t >= end):
                            win.records -= 1
                            continue
                    cap = rec["captureData"]
                    rows, kinds = decode_input(cap["endpointInput"])
                except (ValueError, KeyError, TypeError, DataError, orjson.JSONDecodeError) as e:
                    win.undecodable += 1
                    if len(win.errors) < max_errors:
                        win.errors.append(f"{path.name}: {type(e).__name__}")
                    continue
                for i, (row, kind) in enumerate(zip(rows, kinds)):
                    if kind == "csv":
                        csv_lines.append(row)
                        csv_pos.append(pos)
                    elif isinstance(row, dict):
                        dict_rows.append(row)
                        dict_pos.append(pos)
                    else:
                        list_rows.append(row)
                        list_pos.append(pos)
                    event_ids.append(str(meta.get("eventId", "")))
                    inference_ids.append(str(meta.get("inferenceId") or ""))
                    row_in_event.append(i)
                    pos += 1
                preds.append(decode_output(cap.get("endpointOutput"), len(rows), task))
                if len(dict_rows) + len(list_rows) + len(csv_lines) >= CHUNK:
                    flush()
    flush()
    frame = pd.concat(frames).sort_index() if len(frames) > 1 else (frames[0] if frames else pd.DataFrame(columns=names))
    win.frame = frame.reset_index(drop=True).drop(columns=[k for k in IGNORED_KEYS if k in frame.columns
                                                           and k not in names])
    win.predictions = np.concatenate(preds) if preds else np.empty(0)
    win.event_ids = event_ids
    win.inference_ids = inference_ids
    win.row_in_event = np.asarray(row_in_event, dtype=np.int64)
    return win


def _read_csv_lines(lines: list[str], names: list[str], index: list[int],
                    string_columns: Sequence[str] = ()) -> pd.DataFrame:
    """CSV rows in feature order (no header, as SageMaker clients send); extra fields dropped."""
    k = len(names)
    lines = [ln if ln.count(",") < k else ",".join(ln.split(",")[:k]) for ln in lines]
    df = pd.read_csv(io.StringIO("\n".join(lines)), header=None, names=names, index_col=False,
                     skip_blank_lines=False, engine="c",
                     dtype={c: str for c in string_columns if c in names} or None)
    df.index = index
    return df


# ---- writing (the serving side writes the real thing; scenarios and tests use this) ----

def capture_record(instances: list, outputs: list | None = None, inference_time: datetime | None = None,
                   content_type: str = "application/json", event_id: str | None = None,
                   inference_id: str | None = None, feature_names: Sequence[str] | None = None) -> dict:
    """One capture record for a request of ``instances`` (dicts) as JSON or CSV."""
    if content_type == "text/csv":
        names = list(feature_names or (instances[0].keys() if instances else []))
        body = "\n".join(",".join("" if _missing(r.get(n)) else str(r.get(n)) for n in names)
                         for r in instances)
        inp = {"observedContentType": "text/csv", "mode": "INPUT", "data": body, "encoding": "CSV"}
    else:
        clean = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in instances]
        body = orjson.dumps({"instances": clean}, option=orjson.OPT_SERIALIZE_NUMPY).decode()
        inp = {"observedContentType": "application/json", "mode": "INPUT", "data": body,
               "encoding": "JSON"}
    out_body = orjson.dumps({"predictions": list(outputs or [])}, option=orjson.OPT_SERIALIZE_NUMPY).decode()
    return {"captureData": {"endpointInput": inp,
                            "endpointOutput": {"observedContentType": "application/json",
                                               "mode": "OUTPUT", "data": out_body, "encoding": "JSON"}},
            "eventMetadata": {"eventId": event_id or str(uuid.uuid4()),
                              "inferenceId": inference_id or "",
                              "inferenceTime": format_time(inference_time or datetime.now(timezone.utc))},
            "eventVersion": "0"}


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and v != v)


def write_capture(root: str | os.PathLike, endpoint: str, variant: str,
                  records: Iterable[dict]) -> list[Path]:
    """Write records into the hourly layout (one file per hour); returns the files written."""
    by_hour: dict[str, list[bytes]] = {}
    for rec in records:
        t = parse_time(rec["eventMetadata"]["inferenceTime"])
        by_hour.setdefault(t.strftime("%Y/%m/%d/%H"), []).append(orjson.dumps(rec))
    paths = []
    for hour, lines in sorted(by_hour.items()):
        path = Path(root) / endpoint / variant / hour / f"{uuid.uuid4().hex}.jsonl"
        with atomic_path(path) as tmp:
            tmp.write_bytes(b"\n".join(lines) + b"\n")
        paths.append(path)
    return paths


def iter_frame_records(df: pd.DataFrame, start: datetime, end: datetime, batch: int = 1,
                       content_type: str = "application/json", outputs: np.ndarray | None = None,
                       seed: int = 0) -> Iterator[dict]:
    """Capture records for the rows of ``df``, ``batch`` instances a request, times spread over the window."""
    rng = np.random.default_rng(seed)
    names = list(df.columns)
    rows = df.to_dict("records")
    n_req = (len(rows) + batch - 1) // batch
    span = (parse_time(end) - parse_time(start)).total_seconds()
    offsets = np.sort(rng.uniform(0, span, n_req))
    for i in range(n_req):
        chunk = rows[i * batch:(i + 1) * batch]
        outs = None if outputs is None else [float(x) for x in outputs[i * batch:(i + 1) * batch]]
        yield capture_record(chunk, outs, parse_time(start) + timedelta(seconds=float(offsets[i])),
                             content_type=content_type, feature_names=names)
