"""Real annotated corpora merged into the ``build-notes`` splits, next to the synthetic gold.

``build-notes --corpora DIR`` reads every corpus under DIR (``clinical_ml.notes.corpora``:
brat, PubTator, JSONL) and appends each corpus's own train/val/test documents to
``notes/{train,val,test}.jsonl``. Every document says where it came from: ``corpus``
(``"synthetic"`` for the notes built from NOTEEVENTS + gold, else the corpus folder's name)
and, for corpus documents, ``annotated_labels`` (the labels that corpus annotates; training
and evaluation score only those, see ``clinical_ml.notes.schema.annotated_labels``).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, localize
from clinical_ml.logs import get_logger
from clinical_ml.notes.datasets import SPLITS
from clinical_ml.notes.schema import ENTITY_LABELS, annotated_labels, annotation_errors

log = get_logger(__name__)
SYNTHETIC = "synthetic"  # the ``corpus`` of notes built from NOTEEVENTS + synthetic gold


def corpus_of(doc: dict) -> str:
    """A document's corpus; documents without the field are synthetic notes (older splits)."""
    return doc.get("corpus") or SYNTHETIC


def fetch_corpora(uri: str, dest: str | Path | None = None) -> Path:
    """``--corpora`` as a local folder: a local path as is; ``s3://`` mapped onto the local
    runner's S3 stand-in, else downloaded (every object under the prefix) into ``dest``."""
    local = localize(uri)
    if not local.startswith("s3://"):
        p = Path(local)
        if not p.is_dir():
            raise DataError(f"--corpora {uri}: folder not found ({p}); pass a folder of brat / "
                            "PubTator / JSONL corpora (e.g. ../shared/data), an s3:// prefix, "
                            "or leave it empty for synthetic notes only")
        return p
    import boto3

    bucket, _, prefix = uri[len("s3://"):].partition("/")
    out = Path(dest) if dest else Path(tempfile.mkdtemp(prefix="corpora-"))
    n = 0
    try:
        s3 = boto3.client("s3")
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):].lstrip("/")
                if rel and not rel.endswith("/"):
                    (out / rel).parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, obj["Key"], str(out / rel))
                    n += 1
    except Exception as e:  # noqa: BLE001 - botocore error types vary
        raise DataError(f"--corpora {uri}: cannot download ({type(e).__name__}: {e}); the job needs "
                        "S3 access (a network-isolated job cannot reach S3 itself)") from None
    if n == 0:
        raise DataError(f"--corpora {uri}: no objects under this prefix")
    log.info("corpora: %d files from %s", n, uri)
    return out


def merge_corpora(splits: dict[str, list[dict]], corpora: dict[str, dict[str, list[dict]]],
                  max_bad_fraction: float = 0.05) -> dict[str, dict[str, Any]]:
    """Append each corpus's split documents to ``splits`` (in place) and tag every document
    with its ``corpus``; returns per-corpus counts (the synthetic notes included).

    Corpus documents whose spans do not match their text are dropped; more than
    ``max_bad_fraction`` of a corpus dropped is a DataError naming it."""
    stats: dict[str, dict[str, Any]] = {}
    for split, docs in splits.items():
        for d in docs:
            d.setdefault("corpus", SYNTHETIC)
    synthetic = {s: sum(corpus_of(d) == SYNTHETIC for d in splits[s]) for s in SPLITS}
    if any(synthetic.values()):
        seen = {lab for docs in splits.values() for d in docs if corpus_of(d) == SYNTHETIC
                for lab in annotated_labels(d)}
        stats[SYNTHETIC] = {**synthetic, "rejected": 0,
                            "annotated_labels": [lab for lab in ENTITY_LABELS if lab in seen]}
    for name, by_split in corpora.items():
        if name == SYNTHETIC:
            raise DataError(f"corpora: a corpus folder is named {SYNTHETIC!r}, the name of the "
                            "synthetic notes; rename the folder")
        counts = {s: 0 for s in SPLITS}
        bad = 0
        labels: set[str] = set()
        for split in SPLITS:
            for d in by_split.get(split, []):
                d["corpus"] = d.get("corpus") or name
                try:
                    d["annotated_labels"] = list(annotated_labels(d))
                except ValueError as e:
                    raise DataError(f"corpus {name}: {e}") from None
                if annotation_errors(d, d.get("text")):
                    bad += 1
                    continue
                labels.update(d["annotated_labels"])
                splits[split].append(d)
                counts[split] += 1
        seen = sum(counts.values()) + bad
        if seen and bad / seen > max_bad_fraction:
            raise DataError(f"corpus {name}: {bad} of {seen} documents have spans that do not match "
                            "their text (offsets/labels); fix or remove that corpus folder")
        if not seen:
            log.warning("corpora: %s has no documents; skipped", name)
            continue
        stats[name] = {**counts, "rejected": bad,
                       "annotated_labels": [lab for lab in ENTITY_LABELS if lab in labels]}
    return stats
