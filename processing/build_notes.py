"""NOTEEVENTS + gold annotations -> note datasets ``notes/{train,val,test}.jsonl`` and the
note shards to extract from, ``notes/extract/part-XXXXX.jsonl``.

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

Notes to extract from (every run, gold or not): the NOTEEVENTS rows of ``--categories``
(default "Discharge summary"; discharge summaries first) whose HADM_ID is in ``--admissions``
(a CSV/Parquet with HADM_ID or the build-tasks output tree; default: every admission), error
notes dropped, as ``notes/extract/part-XXXXX.jsonl`` (``{"id", "text", "category",
"subject_id", "hadm_id", "chartdate", "charttime"}``, ``--notes-per-shard`` a file) plus
``notes/extract/manifest.json`` (counts). NOTEEVENTS is streamed in ``--chunk-rows`` chunks.
Without gold (no ``INPUT/annotations/notes_gold.jsonl`` and no ``--gold``, e.g. the real
MIMIC-III) the splits hold only the ``--corpora`` documents (empty without corpora) and the
step says so; an explicit ``--gold`` that is missing is still an error.

    python -m processing.build_notes --input DIR --output OUT [--max-notes N] [--corpora DIR]
        [--categories "Discharge summary,Nursing"] [--admissions TASKS_OUT]
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
from clinical_ml.notes.noteevents import (DISCHARGE_SUMMARY, EXTRACT_DIR, ExtractShardWriter,
                                          iter_noteevents, parse_categories, read_admission_ids)
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
    p.add_argument("--categories", default=DISCHARGE_SUMMARY,
                   help="comma-separated NOTEEVENTS categories written to notes/extract/ "
                        "(case-insensitive; 'Discharge summary' first whenever listed; 'all': every "
                        "category); default: %(default)s")
    p.add_argument("--admissions", default="",
                   help="cohort for notes/extract/: a CSV/Parquet with HADM_ID, or a build-tasks output "
                        "folder (every split's admissions); default: every admission")
    p.add_argument("--notes-per-shard", type=int, default=10_000, help="notes per notes/extract/ file")
    p.add_argument("--chunk-rows", type=int, default=20_000, help="NOTEEVENTS rows read at a time")
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


def gold_exists(uri: str) -> bool:
    """Whether the default gold file is there (absent: a MIMIC-III without annotations)."""
    uri = localize(uri)
    if not uri.startswith("s3://"):
        return Path(uri).is_file()
    from clinical_ml.mimic.files import _s3_client, _split_s3

    bucket, key = _split_s3(uri)
    try:
        _s3_client().head_object(Bucket=bucket, Key=key)
        return True
    except Exception as e:  # noqa: BLE001 - botocore error types vary
        code = str(getattr(e, "response", {}).get("Error", {}).get("Code", ""))
        if code in ("404", "NoSuchKey", "NotFound"):
            return False
        raise DataError(f"{uri}: cannot check for gold annotations ({type(e).__name__})") from None


def read_gold(uri: str) -> dict[int, dict]:
    """Gold lines by ROW_ID. A line with ``"annotated_labels": []`` annotates nothing (the filler
    notes of ``clinical-ml synth --density release``): it is skipped, so its note is treated as
    a note without gold (left out, or empty with ``--include-unannotated``)."""
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
        if row.get("annotated_labels") == []:
            continue
        gold[int(key)] = row
    return gold


def build(src: str, gold_uri: str | None, fractions: tuple[float, ...], seed: int, max_notes: int = 0,
          include_unannotated: bool = False, extract: ExtractShardWriter | None = None,
          chunk_rows: int = 20_000) -> tuple[dict[str, list[dict]], dict[str, Any]]:
    """One pass over NOTEEVENTS (in chunks): gold notes into the splits (``gold_uri`` None: no
    gold, empty splits) and, with ``extract``, every row offered to the note shards."""
    gold = read_gold(gold_uri) if gold_uri else {}
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    bad = kept = 0
    table: dict[str, int] = {}
    for chunk in iter_noteevents(src, chunk_rows, table):
        for row in chunk.itertuples(index=False):
            if extract is not None:
                extract.add(row)
            if gold_uri is None or (max_notes and kept >= max_notes):
                continue
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
    seen = kept + bad
    if seen and bad / seen > MAX_BAD_FRACTION:
        raise DataError(f"{gold_uri}: {bad} of {seen} gold annotations do not match their "
                        "NOTEEVENTS text (offsets/labels); regenerate the gold with the notes")
    if gold_uri is not None and kept == 0:
        raise DataError(f"{src}: no NOTEEVENTS row has a gold annotation in {gold_uri}")
    stats = {"notes": kept, "rejected_gold": bad, "gold_rows": len(gold), "gold": gold_uri,
             "splits": {s: len(v) for s, v in splits.items()},
             "subjects": {s: len({d["subject_id"] for d in v}) for s, v in splits.items()},
             "fractions": list(fractions), "seed": seed,
             "noteevents": {"rows": table.get("rows", 0), "error_rows": table.get("error_rows", 0)}}
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
    if not args.gold and not gold_exists(gold_uri):
        log.info("build-notes: no gold annotations (%s absent): no synthetic training notes; "
                 "NOTEEVENTS goes to notes/extract/ only", gold_uri)
        gold_uri = None
    categories = parse_categories(args.categories)
    cohort = read_admission_ids(args.admissions) if args.admissions.strip() else None
    out = Path(args.output) / "notes"
    with ExtractShardWriter(out / EXTRACT_DIR, categories, cohort, args.notes_per_shard) as shards:
        splits, stats = build(src, gold_uri, fractions, args.seed, args.max_notes,
                              args.include_unannotated, shards, args.chunk_rows)
    stats["extract"] = shards.stats
    corpora = {}
    if args.corpora.strip():
        from clinical_ml.notes.corpora import read_corpora

        corpora = read_corpora(fetch_corpora(args.corpora.strip()))
    stats["corpora"] = merge_corpora(splits, corpora, MAX_BAD_FRACTION)
    stats["corpora_source"] = args.corpora.strip() or None
    stats["documents"] = {s: len(v) for s, v in splits.items()}
    hashes = {}
    for name, docs in splits.items():
        write_jsonl(docs, out / f"{name}.jsonl")
        hashes[name] = sha256_file(out / f"{name}.jsonl")
    write_json(out / "manifest.json", {**stats, "sha256": hashes})
    audit.ingest_event(src, ("NOTEEVENTS",), step="build-notes")
    ne, ex = stats["noteevents"], stats["extract"]
    log.info("build-notes: NOTEEVENTS %d rows (%d error rows dropped)%s", ne["rows"], ne["error_rows"],
             "; the table has no notes" if ne["rows"] == 0 else "")
    log.info("build-notes: notes/extract: %d notes in %d shard file(s) (%s; %d of other categories, %d outside "
             "the cohort%s)", ex["notes"], ex["parts"],
             ", ".join(f"{k} {v}" for k, v in ex["categories"].items()) or "none",
             ex["dropped_category"], ex["dropped_cohort"],
             f" of {ex['cohort_admissions']} admissions" if cohort is not None else ": no --admissions")
    if gold_uri is None:
        log.info("build-notes: no gold: 0 synthetic notes in the splits")
    else:
        log.info("build-notes: %d synthetic notes (train %d, val %d, test %d), %d gold rows rejected",
                 stats["notes"], *(stats["splits"][s] for s in SPLITS), stats["rejected_gold"])
    for name, c in stats["corpora"].items():
        if name != SYNTHETIC:
            log.info("build-notes: corpus %s: train %d, val %d, test %d documents (%d rejected), labels %s",
                     name, *(c[s] for s in SPLITS), c["rejected"], ",".join(c["annotated_labels"]) or "none")
    if not corpora:
        log.info("build-notes: no annotated corpora (--corpora not given): %s",
                 "synthetic notes only" if gold_uri else "the splits are empty (no gold, no corpora)")
    log.info("build-notes: wrote train %d, val %d, test %d documents", *(stats["documents"][s] for s in SPLITS))
    return 0


if __name__ == "__main__":
    sys.exit(main())
