"""SageMaker inference handlers (``model_fn``, ``input_fn``, ``predict_fn``, ``output_fn``).

The same four functions serve both model kinds; ``model_fn`` picks the kind from the model
directory's ``metadata.json`` (``model_type``: ``outcomes`` or ``extractor``). They are what a
SageMaker framework container calls and what our own server (``inference/app.py``) calls, so a
model answers the same way on SageMaker and on this machine.

Request shapes (docs/serving.md has examples; ``GET /openapi.json`` the schema):

- outcomes, application/json: ``{"instances": [{"f_...": 1.0, ...} | [numbers in feature
  order], ...]}``, a bare list of those, or ``{"series": [{"hour": 0.5, "heart_rate": 80, ...},
  ...]}`` (one stay's hourly vitals; a list of such lists for several stays);
  application/jsonlines: one instance per line; text/csv: one row of numbers per instance in
  feature_spec order (empty cell = missing; a header line is tolerated);
- extractor: JSON ``{"text": ".."}``, ``{"texts": [..]}`` or ``{"instances": [{"id", "text"}]}``;
  JSON lines of ``{"id", "text"}``; CSV rows ``text`` or ``id,text``; text/plain one note.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, read_json, resolve_model_dir
from inference import codecs
from inference.codecs import RequestError
from inference.extractor_model import ExtractorModel
from inference.outcome_model import OutcomeModel

Model = OutcomeModel | ExtractorModel


@dataclass
class Payload:
    """A decoded request body: content type plus the JSON value / JSON lines / CSV rows."""

    content_type: str
    data: Any  # for text/csv: None until a handler needs the rows (``raw`` holds the body)
    raw: bytes = b""

    def csv_rows(self) -> list[list[str]]:
        if self.data is None:
            self.data = codecs.parse_csv(self.raw)
        return self.data


@dataclass
class Prediction:
    records: list[dict[str, Any]]
    meta: dict[str, Any]
    columns: list[str] = field(default_factory=list)  # CSV column order


def model_fn(model_dir: str | os.PathLike, context: Any = None, **limits: int) -> Model:
    """Load the model in ``model_dir`` (a directory or a ``model.tar.gz``)."""
    d = resolve_model_dir(model_dir)
    meta_file = Path(d) / "metadata.json"
    kind = read_json(meta_file).get("model_type")
    if kind == "outcomes":
        return OutcomeModel(d, **{k: v for k, v in limits.items() if k in ("max_rows", "max_hours")})
    if kind == "extractor":
        return ExtractorModel(d, **{k: v for k, v in limits.items() if k in ("max_notes", "max_chars")})
    raise DataError(f"{meta_file}: model_type {kind!r} is neither 'outcomes' nor 'extractor'")


def input_fn(request_body: bytes | str, request_content_type: str | None, context: Any = None) -> Payload:
    """Decode the body by content type; malformed bodies raise ``RequestError`` (4xx)."""
    body = request_body.encode() if isinstance(request_body, str) else bytes(request_body or b"")
    ctype = codecs.media_type(request_content_type)
    if ctype == codecs.CSV:  # numeric CSV is parsed straight to a matrix by the outcome model
        codecs.check_text(body)
        return Payload(ctype, None, body)
    return Payload(ctype, codecs.parse(body, ctype))


def _outcome_matrix(p: Payload, model: OutcomeModel) -> tuple[Any, list | None]:
    if p.content_type == codecs.CSV:
        return model.matrix_from_csv_bytes(p.raw), None
    if p.content_type == codecs.TEXT:
        raise RequestError(415, "the outcome model takes application/json, "
                                "application/jsonlines or text/csv")
    data = p.data
    if isinstance(data, dict):
        keys = set(data)
        if keys == {"series"}:
            s = data["series"]
            stays = s if isinstance(s, list) and s and isinstance(s[0], list) else [s]
            return model.matrix_from_series(stays), None
        if keys != {"instances"}:
            raise RequestError(400, "a JSON body is {\"instances\": [...]} or {\"series\": [...]}; "
                                    f"got keys {sorted(keys)[:5]}")
        data = data["instances"]
    if not isinstance(data, list):
        raise RequestError(400, "instances must be a list of objects or arrays")
    ids = [r.get("id") if isinstance(r, dict) else None for r in data]
    x = model.matrix_from_json(data)
    return x, ids if any(i is not None for i in ids) else None


def _extractor_items(p: Payload) -> list[Any]:
    d = p.data
    if p.content_type == codecs.TEXT:
        return [d]
    if p.content_type == codecs.CSV:
        d = p.csv_rows()
        if any(len(r) not in (1, 2) for r in d):
            raise RequestError(400, "CSV for the extractor: one column (text) or two (id,text) per row")
        return [{"text": r[0]} if len(r) == 1 else {"id": r[0], "text": r[1]} for r in d]
    if p.content_type == codecs.JSONLINES:
        return d
    if isinstance(d, list):
        return d
    if isinstance(d, dict) and len(d) == 1:
        (k, v), = d.items()
        if k == "text":
            return [v]
        if k in ("texts", "instances") and isinstance(v, list):
            return v
    if isinstance(d, str):
        return [d]
    raise RequestError(400, "a JSON body for the extractor is {\"text\": ..}, {\"texts\": [..]} "
                            "or {\"instances\": [{\"id\": .., \"text\": ..}]}")


def predict_fn(input_data: Payload, model: Model, context: Any = None) -> Prediction:
    """Validate the payload against the model and predict."""
    if isinstance(model, OutcomeModel):
        x, ids = _outcome_matrix(input_data, model)
        recs = model.records(model.predict_matrix(x), ids)
        return Prediction(recs, model.meta, model.columns)
    ids, texts = model.notes(_extractor_items(input_data))
    return Prediction(model.extract(ids, texts), model.meta, model.columns)


def output_fn(prediction: Prediction, accept: str | None, context: Any = None) -> tuple[bytes, str]:
    """Encode for ``accept`` (JSON default); returns (body, content type)."""
    ctype = codecs.accept_type(accept, codecs.JSON)
    records = prediction.records
    if ctype == codecs.CSV:  # one line per input line, in the model's column order, no id
        if prediction.meta.get("model_type") == "outcomes":
            records = [_flatten(r) for r in records]
        return codecs.encode(records, ctype, prediction.meta, prediction.columns), ctype
    return codecs.encode(records, ctype, prediction.meta), ctype


def _flatten(rec: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in rec.items():
        if isinstance(v, dict):
            out.update({f"{k}.{lab}": p for lab, p in v.items()})
        else:
            out[k] = v
    return out


def transform(model: Model, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
    """The four handlers in a row, as SageMaker's serving stack chains them."""
    return output_fn(predict_fn(input_fn(body, content_type), model), accept)
