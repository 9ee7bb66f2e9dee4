"""Batch extraction: ``{"id", "text"}`` JSONL in, ``{"id", "entities", "relations", "record"}``
JSONL out (offsets into the input text). Any plain text works; a line without ``id`` gets its
line number. ``--model`` is an extractor directory (or model.tar.gz), or ``rules`` for the
dictionary baseline without training.

    clinical-ml extract --model DIR --input IN.jsonl --output OUT.jsonl
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from clinical_ml.extraction import load
from clinical_ml.io import DataError, atomic_path, iter_jsonl
from clinical_ml.logs import get_logger

log = get_logger("extract")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="extractor directory / model.tar.gz, or 'rules'")
    p.add_argument("--input", required=True, help="JSONL, one {\"id\", \"text\"} a line")
    p.add_argument("--output", required=True)
    p.add_argument("--batch-size", type=int, default=16)
    return p.parse_args(argv)


def read_inputs(path: Path) -> list[tuple[object, str]]:
    rows = []
    for n, obj, _ in iter_jsonl(path, 'one {"id", "text"} a line'):
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            raise DataError(f"{path}:{n}: needs a string field 'text'")
        rows.append((obj.get("id", n), obj["text"]))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    from clinical_ml.extraction import finalize

    hf_logging.set_verbosity_error()
    rows = read_inputs(Path(args.input))
    ext = load(args.model)
    t0 = time.time()
    with atomic_path(args.output) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for i in range(0, len(rows), args.batch_size):
            chunk = rows[i:i + args.batch_size]
            for (doc_id, text), ann in zip(chunk, ext.extract([t for _, t in chunk])):
                f.write(json.dumps(finalize(text, ann, doc_id), ensure_ascii=False) + "\n")
    dt = time.time() - t0
    log.info("extract: %d notes in %.1fs (%.2f notes/s)", len(rows), dt, len(rows) / dt if dt else 0.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
