"""Request bodies in, response bodies out: the three content types SageMaker hosting speaks.

Parsing is strict on purpose: a clinical endpoint that guesses (a string where a number
belongs, ``Infinity``, a missing feature silently read as "normal") gives a confident wrong
risk. Every rejection is a ``RequestError`` carrying the HTTP status and a message that names
the row/field and says what to send instead; the server turns it into a 4xx, never a 5xx.
"""
from __future__ import annotations

import csv
import io
from typing import Any

import orjson

JSON = "application/json"
JSONLINES = "application/jsonlines"
CSV = "text/csv"
TEXT = "text/plain"
CONTENT_TYPES = (JSON, JSONLINES, CSV)
_ALIASES = {
    "application/json": JSON,
    "application/jsonlines": JSONLINES,
    "application/jsonl": JSONLINES,
    "application/x-jsonlines": JSONLINES,
    "application/x-ndjson": JSONLINES,
    "text/csv": CSV,
    "text/plain": TEXT,
}
# SageMaker's capture ``encoding`` per observed content type (anything else is BASE64).
CAPTURE_ENCODING = {JSON: "JSON", JSONLINES: "JSON", CSV: "CSV"}


class RequestError(Exception):
    """A client error: ``status`` (4xx) and a message safe to return and to log (no data)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def media_type(header: str | None, what: str = "Content-Type", default: str | None = None) -> str:
    """``text/csv; charset=utf-8`` -> ``text/csv``; unknown types -> 415 (406 for Accept)."""
    if not header or not header.strip():
        if default:
            return default
        raise RequestError(415, f"missing {what}; send one of {', '.join(CONTENT_TYPES)}")
    base = header.split(";", 1)[0].strip().lower()
    if base in _ALIASES:
        return _ALIASES[base]
    raise RequestError(415 if what == "Content-Type" else 406,
                       f"unsupported {what} {base[:60]!r}; use one of {', '.join(CONTENT_TYPES)}")


def accept_type(header: str | None, content_type: str) -> str:
    """The response type: the Accept header's first supported type, else mirror the request."""
    if not header or not header.strip():
        return content_type if content_type in CONTENT_TYPES else JSON
    for part in header.split(","):
        base = part.split(";", 1)[0].strip().lower()
        if base in ("*/*", "application/*", "text/*", ""):
            return content_type if content_type in CONTENT_TYPES else JSON
        if base in _ALIASES and _ALIASES[base] in CONTENT_TYPES:
            return _ALIASES[base]
    raise RequestError(406, f"cannot answer with Accept {header[:80]!r}; accept one of "
                            f"{', '.join(CONTENT_TYPES)}")


def _text(body: bytes) -> str:
    if not body or not body.strip():
        raise RequestError(400, "empty request body; send at least one instance")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError as e:
        raise RequestError(400, f"request body is not UTF-8 (byte {e.start})") from None


def check_text(body: bytes) -> None:
    """Raise the 400 for an empty or non-UTF-8 body."""
    _text(body)


def parse_json(body: bytes) -> Any:
    _text(body)
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        # orjson also rejects NaN, Infinity and numbers that overflow a double: say so.
        raise RequestError(400, f"malformed JSON: {e} (NaN/Infinity are not JSON; send null "
                                "for a missing value)") from None


def parse_jsonlines(body: bytes) -> list[Any]:
    rows = []
    for i, line in enumerate(_text(body).splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(orjson.loads(line))
        except orjson.JSONDecodeError as e:
            raise RequestError(400, f"line {i}: malformed JSON ({e}); send one JSON object per "
                                    "line, null for a missing value") from None
    if not rows:
        raise RequestError(400, "empty request body; send at least one JSON line")
    return rows


def parse_csv(body: bytes) -> list[list[str]]:
    text = _text(body)
    try:
        rows = [r for r in csv.reader(io.StringIO(text, newline="")) if r]
    except csv.Error as e:
        raise RequestError(400, f"malformed CSV: {e}") from None
    if not rows:
        raise RequestError(400, "empty CSV body; send one row per instance")
    return rows


def parse(body: bytes, content_type: str) -> Any:
    """Decode a body by content type: JSON value, list of JSON lines, or list of CSV rows."""
    if content_type == JSON:
        return parse_json(body)
    if content_type == JSONLINES:
        return parse_jsonlines(body)
    if content_type == CSV:
        return parse_csv(body)
    if content_type == TEXT:
        return _text(body)
    raise RequestError(415, f"unsupported Content-Type {content_type!r}")


def _csv_cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (dict, list)):
        return orjson.dumps(v).decode()
    return str(v)


def encode(records: list[dict[str, Any]], accept: str, meta: dict[str, Any],
           columns: list[str] | None = None) -> bytes:
    """Responses: JSON ``{**meta, "predictions": records}``; JSON lines one record a line;
    CSV one line per record in ``columns`` order, no header (SageMaker's convention, so batch
    transform can join outputs to inputs line by line; the column order is documented by the
    model and sent in the ``X-Output-Columns`` header)."""
    if accept == JSON:
        return orjson.dumps({**meta, "predictions": records}, option=orjson.OPT_SERIALIZE_NUMPY)
    if accept == JSONLINES:
        return b"".join(orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY) + b"\n" for r in records)
    if accept == CSV:
        cols = columns or (list(records[0]) if records else [])
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        for r in records:
            w.writerow([_csv_cell(r.get(c)) for c in cols])
        return buf.getvalue().encode()
    raise RequestError(406, f"cannot answer with {accept!r}")


def error_body(status: int, message: str) -> bytes:
    return orjson.dumps({"status": status, "message": message})
