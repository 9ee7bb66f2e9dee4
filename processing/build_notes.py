"""NOTEEVENTS + gold annotations -> note datasets ``notes/{train,val,test}.jsonl``.

Processing contract: reads a MIMIC-III folder (``/opt/ml/processing/input/mimic``, release or
demo layout, local or ``s3://``) holding ``NOTEEVENTS`` and ``annotations/notes_gold.jsonl``
(gold keyed by ROW_ID); writes one JSON object a line, ``{"id", "text", "category",
"subject_id", "hadm_id", "entities", "relations", "record"}`` (docs/contracts.md "Notes"), and
``notes/manifest.json`` (counts and hashes). Splits are by SUBJECT_ID (a salted hash), so no
patient's notes are in two splits. Error notes (ISERROR=1) are skipped.

``--corpora DIR`` (a local folder or ``s3://`` prefix of brat / PubTator / JSONL corpora,
``clinical_ml.notes.corpora``) adds real annotated documents: each corpus's own train/val/test
documents go into the same split files. Every line carries ``corpus`` (``"synthetic"`` for the
NOTEEVENTS notes) and corpus documents ``annotated_labels`` (``clinical_ml.notes.merge``).

    python -m processing.build_notes --input DIR --output OUT [--max-notes N] [--corpora DIR]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from clinical_ml import audit
from clinical_ml.io import DataError, localize, sha256_file, write_json
from clinical_ml.logs import get_logger
from clinical_ml.notes.datasets import SPLITS, split_of, write_jsonl
from clinical_ml.notes.merge import SYNTHETIC, fetch_corpora, merge_corpora
from clinical_ml.notes.schema import annotation_errors, record_from_annotations
from clinical_ml.synth.notes import GOLD_LABELS

log = get_logger("build_notes")
PROC = "/opt/ml/processing"
MAX_BAD_FRACTION = 0.05


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--input", default=f"{PROC}/input/mimic", help="MIMIC-III folder or s3:// prefix")
    p.add_argument("--output", default=f"{PROC}/output", help="writes OUTPUT/notes/*.jsonl")
    p.add_argument("--gold", default=None, help="gold JSONL (default INPUT/annotations/notes_gold.jsonl)")
    p.add_argument("--fractions", default="0.8,0.1,0.1", help="train,val,test fractions of subjects")
    p.add_argument("--seed", type=int, default=0, help="split salt")
    p.add_argument("--max-notes", type=int, default=0, help="keep at most N annotated notes (0: all)")
    p.add_argument("--include-unannotated", action="store_true",
                   help="also write notes without gold (empty annotations)")
    p.add_argument("--corpora", default="",
                   help="folder or s3:// prefix of annotated corpora (brat / PubTator / JSONL) to merge "
                        "into the splits (default: none, synthetic notes only)")
    return p.parse_args(argv)


def _read_text(uri: str) -> str:
    uri = localize(uri)
    if uri.startswith("s3://"):
        from clinical_ml.mimic.files import _s3_client, _split_s3

        bucket, key = _split_s3(uri)
        try:
            return _s3_client().get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        except Exception as e:  # noqa: BLE001 - botocore error types vary
            raise DataError(f"{uri}: cannot read ({type(e).__name__})") from None
    p = Path(uri)
    if not p.is_file():
        raise DataError(f"{p}: gold annotations not found; run `clinical-ml synth` (it writes "
                        "annotations/notes_gold.jsonl) or pass --gold")
    return p.read_text(encoding="utf-8")


def read_gold(uri: str) -> dict[int, dict]:
    gold: dict[int, dict] = {}
    for n, line in enumerate(_read_text(uri).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{uri}:{n}: not valid JSON ({e.msg})") from None
        key = row.get("row_id", row.get("id"))
        if key is None:
            raise DataError(f"{uri}:{n}: gold line has neither 'row_id' nor 'id'")
        gold[int(key)] = row
    return gold


def read_noteevents(src: str):
    import pandas as pd

    from clinical_ml.mimic.files import locate_table, open_binary

    tf = locate_table(src, "NOTEEVENTS")
    with open_binary(tf) as f:
        df = pd.read_csv(f, dtype=str, keep_default_na=False)
    df.columns = [c.upper() for c in df.columns]
    need = {"ROW_ID", "SUBJECT_ID", "HADM_ID", "CATEGORY", "TEXT"}
    if need - set(df.columns):
        raise DataError(f"{tf.uri}: NOTEEVENTS lacks columns {sorted(need - set(df.columns))}")
    if "ISERROR" in df.columns:
        df = df[df["ISERROR"].str.strip() != "1"]
    return df


def build(src: str, gold_uri: str, fractions: tuple[float, ...], seed: int, max_notes: int = 0,
          include_unannotated: bool = False) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    gold = read_gold(gold_uri)
    notes = read_noteevents(src)
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    bad = kept = 0
    for row in notes.itertuples(index=False):
        row_id = int(row.ROW_ID)
        g = gold.get(row_id)
        if g is None and not include_unannotated:
            continue
        text = row.TEXT
        ents, rels = (g.get("entities", []), g.get("relations", [])) if g else ([], [])
        doc = {"id": row_id, "text": text, "category": row.CATEGORY.strip(),
               "subject_id": int(row.SUBJECT_ID), "hadm_id": int(row.HADM_ID) if row.HADM_ID else None,
               "entities": ents, "relations": rels, "record": record_from_annotations(ents, rels),
               # gold without the field was written for the synthetic generator's labels
               "annotated_labels": list(g.get("annotated_labels", GOLD_LABELS)) if g else []}
        if annotation_errors(doc, text):
            bad += 1
            continue
        splits[split_of(doc["subject_id"], fractions, seed)].append(doc)
        kept += 1
        if max_notes and kept >= max_notes:
            break
    seen = kept + bad
    if seen and bad / seen > MAX_BAD_FRACTION:
        raise DataError(f"{gold_uri}: {bad} of {seen} gold annotations do not match their "
                        "NOTEEVENTS text (offsets/labels); regenerate the gold with the notes")
    if kept == 0:
        raise DataError(f"{src}: no NOTEEVENTS row has a gold annotation in {gold_uri}")
    stats = {"notes": kept, "rejected_gold": bad, "gold_rows": len(gold),
             "splits": {s: len(v) for s, v in splits.items()},
             "subjects": {s: len({d["subject_id"] for d in v}) for s, v in splits.items()},
             "fractions": list(fractions), "seed": seed}
    return splits, stats


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        fractions = tuple(float(x) for x in args.fractions.split(","))
    except ValueError:
        raise DataError(f"--fractions {args.fractions!r}: expected three numbers like 0.8,0.1,0.1") from None
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6:
        raise DataError(f"--fractions {args.fractions!r}: three fractions summing to 1")
    src = localize(args.input)
    gold_uri = args.gold or (src.rstrip("/") + "/annotations/notes_gold.jsonl")
    splits, stats = build(src, gold_uri, fractions, args.seed, args.max_notes, args.include_unannotated)
    corpora = {}
    if args.corpora.strip():
        from clinical_ml.notes.corpora import read_corpora

        corpora = read_corpora(fetch_corpora(args.corpora.strip()))
    stats["corpora"] = merge_corpora(splits, corpora, MAX_BAD_FRACTION)
    stats["corpora_source"] = args.corpora.strip() or None
    stats["documents"] = {s: len(v) for s, v in splits.items()}
    out = Path(args.output) / "notes"
    hashes = {}
    for name, docs in splits.items():
        write_jsonl(docs, out / f"{name}.jsonl")
        hashes[name] = sha256_file(out / f"{name}.jsonl")
    write_json(out / "manifest.json", {**stats, "sha256": hashes})
    audit.ingest_event(src, ("NOTEEVENTS",), step="build-notes")
    log.info("build-notes: %d synthetic notes (train %d, val %d, test %d), %d gold rows rejected",
             stats["notes"], *(stats["splits"][s] for s in SPLITS), stats["rejected_gold"])
    for name, c in stats["corpora"].items():
        if name != SYNTHETIC:
            log.info("build-notes: corpus %s: train %d, val %d, test %d documents (%d rejected), labels %s",
                     name, *(c[s] for s in SPLITS), c["rejected"], ",".join(c["annotated_labels"]) or "none")
    if not corpora:
        log.info("build-notes: no annotated corpora (--corpora not given): synthetic notes only")
    log.info("build-notes: wrote train %d, val %d, test %d documents", *(stats["documents"][s] for s in SPLITS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
