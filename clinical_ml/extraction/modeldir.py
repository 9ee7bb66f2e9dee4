"""Files every extractor model directory shares (docs/contracts.md "Extractor model directory"):
``metadata.json``, ``schema.json``, the optional ``base/`` copy of the base weights.

A leaf module: ``artifact`` (save/load of every kind) and ``generative`` (which saves its own
model) both use it, and it imports neither, so the two do not import each other.
"""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

from clinical_ml.io import write_json
from clinical_ml.notes.schema import ENTITY_LABELS, RECORD_SCHEMA, RELATION_TYPES, SCHEMA_VERSION


def schema_spec() -> dict[str, Any]:
    return {"version": SCHEMA_VERSION, "entity_labels": list(ENTITY_LABELS),
            "relation_types": list(RELATION_TYPES), "record_schema": RECORD_SCHEMA}


def write_common(out: Path, kind: str, base_model: str | None, extra: dict[str, Any]) -> None:
    """``metadata.json`` (kind, base model, labels, schema and code version, ``extra``) and
    ``schema.json``."""
    from clinical_ml.version import code_version

    out.mkdir(parents=True, exist_ok=True)
    meta = {"model_type": "extractor", "kind": kind, "base_model": base_model,
            "labels": list(ENTITY_LABELS), "relation_types": list(RELATION_TYPES),
            "schema_version": SCHEMA_VERSION, "code_version": code_version(),
            "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    meta.update(extra)
    write_json(out / "metadata.json", meta)
    write_json(out / "schema.json", schema_spec())


def copy_base(base_dir: Path, out: Path) -> None:
    """Keep the base weights beside the adapter when nobody else can provide them."""
    dest = out / "base"
    dest.mkdir(parents=True, exist_ok=True)
    for p in Path(base_dir).iterdir():
        if p.is_file() and (p.suffix in (".json", ".safetensors", ".txt", ".model") or p.name == "merges.txt"):
            shutil.copy2(p, dest / p.name)


def base_weights_dir(model_dir: Path, meta: dict) -> str:
    """Where a saved model's base weights are: its own ``base/`` copy, else the base model
    named in its metadata (an offline package alias or a cached download)."""
    from clinical_ml.extraction.base_models import resolve

    if (model_dir / "base" / "config.json").is_file():
        return str(model_dir / "base")
    return str(resolve(meta["base_model"]))
