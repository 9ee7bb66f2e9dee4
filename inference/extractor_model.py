"""Clinical information extraction behind the endpoint: notes in, annotation JSON out.

The extractor itself (``clinical_ml.extraction.load(model_dir)``, the extraction engineer's
code) returns one annotation dict per text (``clinical_ml.notes.schema``); this wrapper only
validates requests, carries note ids through and bounds the work per request.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clinical_ml.io import read_json, sha256_tree
from clinical_ml.logs import get_logger
from inference.codecs import RequestError

log = get_logger(__name__)


def _load_extractor(model_dir: Path):
    from clinical_ml import extraction  # noqa: PLC0415 (heavy: torch/transformers)

    return extraction.load(model_dir)


class ExtractorModel:
    kind = "extractor"
    columns = ["id", "entities", "relations", "record"]

    def __init__(self, model_dir: str | os.PathLike, max_notes: int = 64,
                 max_chars: int = 100_000, extractor: Any = None):
        self.dir = Path(model_dir)
        self.metadata = read_json(self.dir / "metadata.json")
        self.max_notes, self.max_chars = max_notes, max_chars
        self.version = str(self.metadata.get("version") or sha256_tree(self.dir)[:12])
        self.meta = {"model_version": self.version, "model_type": "extractor",
                     "kind": self.metadata.get("kind")}
        self.extractor = extractor if extractor is not None else _load_extractor(self.dir)
        log.info("extractor %s (%s) loaded", self.version, self.metadata.get("kind"))

    def notes(self, items: list[Any], where: str = "instances") -> tuple[list[Any], list[str]]:
        """(ids, texts) from strings or {"id", "text"} objects, validated and bounded."""
        if not items:
            raise RequestError(400, f"{where}: empty; send at least one note")
        if len(items) > self.max_notes:
            raise RequestError(413, f"{len(items)} notes in one request; the limit is "
                                    f"{self.max_notes}: split the batch or use `clinical-ml extract`")
        ids, texts = [], []
        for i, it in enumerate(items):
            at = f"{where}[{i}]"
            if isinstance(it, str):
                nid, text = i, it
            elif isinstance(it, dict):
                extra = [k for k in it if k not in ("id", "text")]
                if extra:
                    raise RequestError(400, f"{at}: unknown field(s) {extra[:5]}; send "
                                            "{'id': .., 'text': ..}")
                nid, text = it.get("id", i), it.get("text")
                if not isinstance(nid, (str, int)) or isinstance(nid, bool):
                    raise RequestError(400, f"{at}: 'id' must be a string or an integer")
            else:
                raise RequestError(400, f"{at}: a note is a string or {{'id': .., 'text': ..}}")
            if not isinstance(text, str) or not text.strip():
                raise RequestError(400, f"{at}: 'text' must be a non-empty string")
            if len(text) > self.max_chars:
                raise RequestError(413, f"{at}: {len(text)} characters, limit {self.max_chars}")
            ids.append(nid)
            texts.append(text)
        return ids, texts

    def extract(self, ids: list[Any], texts: list[str]) -> list[dict[str, Any]]:
        out = self.extractor.extract(texts)
        if len(out) != len(texts):
            raise RuntimeError(f"extractor returned {len(out)} results for {len(texts)} notes")
        return [{"id": i, "entities": a.get("entities", []), "relations": a.get("relations", []),
                 "record": a.get("record")} for i, a in zip(ids, out)]
