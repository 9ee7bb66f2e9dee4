"""Note datasets in the extraction schema: loaders for brat, BIO/CoNLL and JSONL, the type
maps of MACCROBAT and n2c2 2018 Track 2, MTSamples, and deterministic splits.

Every loader returns *documents*: ``{"id", "text", "entities", "relations", "record"}`` (plus
``category`` where the source has one), the shape of a ``build-notes`` line
(docs/contracts.md "Notes"), so training and evaluation never care where a note came from.

MACCROBAT2020 -> schema map (why: MACCROBAT annotates case reports with 41 fine types; we keep
the ones that mean the same thing as our labels and drop the rest rather than guess):

=====================================  ==========  ============================================
MACCROBAT type                         schema       note
=====================================  ==========  ============================================
Medication                             MEDICATION
Dosage                                 DOSE         amounts ("60 mg"), also "per day" phrases
Administration                         ROUTE        "intravenous", "orally"
Frequency                              FREQUENCY    any frequency (not only drug schedules)
Sign_symptom, Disease_disorder         PROBLEM
Diagnostic_procedure                   TEST         includes lab names and imaging
Therapeutic_procedure                  PROCEDURE
everything else (Lab_value, Date, ...) dropped
=====================================  ==========  ============================================

n2c2 2018 Track 2 (medication and adverse drug events, MIMIC-III discharge summaries) -> schema:

=====================================  ==========  ============================================
n2c2 type                              schema       note
=====================================  ==========  ============================================
Drug                                   MEDICATION
Strength                               DOSE         "81 mg"
Dose                                   DOSE         "One (1)", "2 puffs"
Route                                  ROUTE
Frequency                              FREQUENCY
Form                                   FORM         "Tablet", "Tablet, Chewable"
Duration                               DURATION     "for 7 days"
Reason, ADE                            dropped      problems, but only those tied to a drug are
                                                    marked (the reason for it, an adverse event),
                                                    so the corpus is not PROBLEM-complete
=====================================  ==========  ============================================

Relations: MACCROBAT's ``MODIFY`` and n2c2's ``Strength-Drug``, ``Dose-Drug``, ``Route-Drug``,
``Frequency-Drug``, ``Form-Drug``, ``Duration-Drug`` between an attribute span and a
MEDICATION span become the attribute's ``*_OF`` relation (DOSE_OF, ROUTE_OF, FREQUENCY_OF,
FORM_OF, DURATION_OF; head = attribute, tail = medication, whichever way the file writes
them); ``Reason-Drug``, ``ADE-Drug`` and other relations are dropped.
``POLARITY ... NEG`` on an event marks its trigger span ``negated``. Overlapping mapped spans
are resolved by keeping the earliest-starting, then longest span (BIO tagging needs a flat
layer); relations to a dropped span are dropped with it.

Both corpora use ``Frequency`` and ``Duration``, and MACCROBAT's Duration is any event's
("fever for 3 days"), not a drug's: ``BRAT_TYPE_MAP`` (the default) therefore picks the map per
document, n2c2's when the .ann has a type only n2c2 uses (Drug, Strength, Dose, Route, Form,
Reason, ADE), MACCROBAT's otherwise.
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from clinical_ml.io import DataError, atomic_path, iter_jsonl
from clinical_ml.notes.schema import (ATTRIBUTE_RELATIONS, ENTITY_LABELS,
                                      record_from_annotations)

MACCROBAT_TYPE_MAP: dict[str, str] = {
    "Medication": "MEDICATION",
    "Dosage": "DOSE",
    "Administration": "ROUTE",
    "Frequency": "FREQUENCY",
    "Sign_symptom": "PROBLEM",
    "Disease_disorder": "PROBLEM",
    "Diagnostic_procedure": "TEST",
    "Therapeutic_procedure": "PROCEDURE",
}

# n2c2 2018 Track 2 (medication / ADE) -> schema. Reason and ADE are problems, but the corpus
# marks only those tied to a drug, so they are not PROBLEM-complete and are left out.
N2C2_TYPE_MAP: dict[str, str] = {
    "Drug": "MEDICATION",
    "Strength": "DOSE",
    "Dose": "DOSE",
    "Route": "ROUTE",
    "Frequency": "FREQUENCY",
    "Form": "FORM",
    "Duration": "DURATION",
}
# n2c2 types MACCROBAT never uses: a document with one of them is an n2c2 document
N2C2_ONLY_TYPES: frozenset[str] = frozenset(
    {"Drug", "Strength", "Dose", "Route", "Form", "Reason", "ADE"})
# brat relation types linking an attribute and its medication (MACCROBAT; n2c2 "<Type>-Drug")
ATTRIBUTE_LINKS: frozenset[str] = frozenset(
    {"MODIFY"} | {f"{t}-Drug" for t in ("Strength", "Dose", "Route", "Frequency", "Form", "Duration")})
# Both brat corpora, told apart per document (``brat_type_map``): MACCROBAT's Duration is any
# event's duration, so merging the two maps would label "fever for 3 days" a drug DURATION.
BRAT_TYPE_MAP: dict[str, str] = {**MACCROBAT_TYPE_MAP, **N2C2_TYPE_MAP}

SPLITS = ("train", "val", "test")


# ---------------------------------------------------------------- documents and spans
def make_document(doc_id: Any, text: str, entities: list[dict], relations: list[dict],
                  **extra: Any) -> dict:
    """A document with its record derived from the spans (gold and predictions agree by
    construction)."""
    doc = {"id": doc_id, "text": text, "entities": entities, "relations": relations,
           "record": record_from_annotations(entities, relations)}
    doc.update(extra)
    return doc


def flatten_entities(entities: list[dict], relations: list[dict]) -> tuple[list[dict], list[dict]]:
    """Sort spans by offset, drop overlaps (earliest start, then longest wins) and re-index
    relations onto the kept spans."""
    order = sorted(range(len(entities)),
                   key=lambda i: (entities[i]["start"], -(entities[i]["end"] - entities[i]["start"])))
    kept: list[int] = []
    last_end = -1
    for i in order:
        if entities[i]["start"] >= last_end:
            kept.append(i)
            last_end = entities[i]["end"]
    new_index = {old: new for new, old in enumerate(kept)}
    rels = [{"type": r["type"], "head": new_index[r["head"]], "tail": new_index[r["tail"]]}
            for r in relations if r["head"] in new_index and r["tail"] in new_index]
    seen: set[tuple] = set()
    uniq = []
    for r in rels:
        key = (r["type"], r["head"], r["tail"])
        if key not in seen:
            seen.add(key)
            uniq.append(r)
    return [entities[i] for i in kept], uniq


# ---------------------------------------------------------------- brat
def _parse_ann(lines: Iterable[str], source: str) -> tuple[dict, dict, list, set]:
    spans: dict[str, tuple[str, int, int, str]] = {}
    events: dict[str, str] = {}  # event id -> trigger span id
    rels: list[tuple[str, str, str]] = []
    negated: set[str] = set()
    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            continue
        parts = line.split("\t")
        tag = parts[0]
        try:
            if tag.startswith("T"):
                kind_offsets = parts[1].split(" ")
                kind = kind_offsets[0]
                # discontinuous spans ("10 20;25 30"): keep the covering span
                offs = [int(x) for x in re.split(r"[ ;]", " ".join(kind_offsets[1:])) if x]
                spans[tag] = (kind, min(offs), max(offs), parts[2] if len(parts) > 2 else "")
            elif tag.startswith("E"):
                trigger = parts[1].split(" ")[0].split(":")[1]
                events[tag] = trigger
            elif tag.startswith("R"):
                kind, a1, a2 = parts[1].split(" ")[:3]
                rels.append((kind, a1.split(":", 1)[1], a2.split(":", 1)[1]))
            elif tag.startswith("A") or tag.startswith("M"):
                fields = parts[1].split(" ")
                if fields[0] == "POLARITY" and len(fields) >= 3 and fields[2] == "NEG":
                    negated.add(fields[1])
        except (IndexError, ValueError):
            raise DataError(f"{source}:{n}: malformed brat line; expected the brat standoff "
                            "format (T/E/R/A lines separated by tabs)") from None
    return spans, events, rels, negated


def brat_type_map(type_map: dict[str, str], kinds: Iterable[str]) -> dict[str, str]:
    """The map for one brat document with span types ``kinds``: ``BRAT_TYPE_MAP`` resolves to
    n2c2's map when a type only n2c2 uses is there, else to MACCROBAT's; any other map is used
    as given."""
    if type_map != BRAT_TYPE_MAP:
        return type_map
    return N2C2_TYPE_MAP if N2C2_ONLY_TYPES & set(kinds) else MACCROBAT_TYPE_MAP


def brat_document(txt_path: str | os.PathLike, type_map: dict[str, str] = BRAT_TYPE_MAP) -> dict:
    """One brat .txt/.ann pair as a schema document (see the module docstring for the maps)."""
    txt_path = Path(txt_path)
    ann_path = txt_path.with_suffix(".ann")
    if not ann_path.is_file():
        raise DataError(f"{ann_path}: missing; every brat .txt needs its .ann beside it")
    text = txt_path.read_text(encoding="utf-8")
    spans, events, rels, negated_ids = _parse_ann(
        ann_path.read_text(encoding="utf-8").splitlines(), str(ann_path))
    neg_spans = {events.get(e, e) for e in negated_ids}
    type_map = brat_type_map(type_map, (kind for kind, *_ in spans.values()))
    ids, entities = [], []
    for tid, (kind, start, end, _) in spans.items():
        label = type_map.get(kind)
        if label is None or end > len(text) or end <= start:
            continue
        surface = text[start:end]
        ids.append(tid)
        entities.append({"start": start, "end": end, "label": label, "text": surface,
                         "negated": tid in neg_spans})
    index = {tid: i for i, tid in enumerate(ids)}
    relations = []
    for kind, a1, a2 in rels:
        h, t = index.get(events.get(a1, a1)), index.get(events.get(a2, a2))
        if kind not in ATTRIBUTE_LINKS or h is None or t is None:
            continue
        head, tail = entities[h], entities[t]
        if head["label"] == "MEDICATION" and tail["label"] in ATTRIBUTE_RELATIONS:
            h, t, head, tail = t, h, tail, head
        if tail["label"] == "MEDICATION" and head["label"] in ATTRIBUTE_RELATIONS:
            relations.append({"type": ATTRIBUTE_RELATIONS[head["label"]], "head": h, "tail": t})
    entities, relations = flatten_entities(entities, relations)
    return make_document(txt_path.stem, text, entities, relations)


def read_brat(folder: str | os.PathLike, type_map: dict[str, str] = BRAT_TYPE_MAP) -> list[dict]:
    """Every ``*.txt`` (with its ``.ann``) in a brat folder, sorted by file name."""
    folder = Path(folder)
    txts = sorted(folder.glob("*.txt"))
    if not txts:
        raise DataError(f"{folder}: no brat .txt/.ann files here")
    return [brat_document(p, type_map) for p in txts]


# ---------------------------------------------------------------- BIO / CoNLL
def write_conll(docs: Iterable[dict], path: str | os.PathLike) -> Path:
    """Whitespace tokens with BIO tags, one token a line, blank line between documents."""
    from clinical_ml.extraction.bio import char_spans_to_word_bio  # lazy: avoids a cycle

    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for doc in docs:
            f.write(f"-DOCSTART- {doc['id']}\n")
            for word, tag in char_spans_to_word_bio(doc["text"], doc["entities"]):
                f.write(f"{word}\t{tag}\n")
            f.write("\n")
    return Path(path)


def read_conll(path: str | os.PathLike) -> list[dict]:
    """BIO/CoNLL (token, tab or space, tag; last column is the tag) -> documents.

    Text is rebuilt by joining tokens with single spaces, so offsets refer to that text.
    Relations cannot be expressed in BIO, so documents have none.
    """
    path = Path(path)
    docs: list[dict] = []
    words: list[tuple[str, str]] = []
    doc_id: Any = None

    def flush() -> None:
        nonlocal words, doc_id
        if words:
            docs.append(_bio_document(doc_id if doc_id is not None else f"{path.stem}-{len(docs)}",
                                      words, path))
        words, doc_id = [], None

    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if line.startswith("-DOCSTART-"):
                flush()
                rest = line[len("-DOCSTART-"):].strip()
                doc_id = rest or None
                continue
            if not line.strip():
                flush()
                continue
            cols = line.split("\t") if "\t" in line else line.split()
            if len(cols) < 2:
                raise DataError(f"{path}:{n}: expected 'token<TAB>tag'")
            words.append((cols[0], cols[-1]))
    flush()
    return docs


def _bio_document(doc_id: Any, words: list[tuple[str, str]], path: Path) -> dict:
    text_parts, entities = [], []
    pos = 0
    cur: dict | None = None
    for word, tag in words:
        start = pos
        text_parts.append(word)
        pos += len(word) + 1
        prefix, _, label = tag.partition("-")
        if prefix in ("B", "I") and label not in ENTITY_LABELS:
            raise DataError(f"{path}: unknown label {label!r}; use one of {', '.join(ENTITY_LABELS)}")
        if prefix == "I" and cur is not None and cur["label"] == label:
            cur["end"] = start + len(word)
        elif prefix in ("B", "I"):
            cur = {"start": start, "end": start + len(word), "label": label, "negated": False}
            entities.append(cur)
        else:
            cur = None
    text = " ".join(text_parts)
    for e in entities:
        e["text"] = text[e["start"]:e["end"]]
    return make_document(doc_id, text, entities, [])


# ---------------------------------------------------------------- JSONL
def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj, _ in iter_jsonl(path)]


def write_jsonl(rows: Iterable[dict], path: str | os.PathLike) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return Path(path)


def read_documents(path: str | os.PathLike) -> list[dict]:
    """A note dataset from a JSONL file, a folder of ``*.jsonl``, a brat folder or a CoNLL file.

    JSONL rows without annotations get empty ones (plain text input is allowed).
    """
    path = Path(path)
    if path.is_dir():
        jsonls = sorted(path.glob("*.jsonl"))
        if jsonls:
            return [d for p in jsonls for d in read_documents(p)]
        if any(path.glob("*.ann")):
            return read_brat(path)
        raise DataError(f"{path}: no *.jsonl or brat files here")
    if path.suffix in (".conll", ".bio", ".tsv"):
        return read_conll(path)
    docs = []
    for n, row in enumerate(read_jsonl(path)):
        if "text" not in row:
            raise DataError(f"{path}: line {n + 1} has no 'text' field")
        ents, rels = row.get("entities") or [], row.get("relations") or []
        extra = {k: v for k, v in row.items() if k not in ("id", "text", "entities", "relations", "record")}
        docs.append(make_document(row.get("id", n), row["text"], ents, rels, **extra))
    return docs


# ---------------------------------------------------------------- MTSamples
def read_mtsamples(path: str | os.PathLike, min_per_class: int = 0) -> list[dict]:
    """MTSamples CSV -> documents with ``category`` = medical_specialty and no spans.

    The notes do mention medications and problems, they are just not annotated: documents
    carry ``spans_annotated: False`` so training never teaches "no entity here" from them.

    ``min_per_class`` drops rare specialties (a classifier cannot learn a class from 3 notes).
    """
    path = Path(path)
    if path.is_dir():
        path = path / "mtsamples.csv"
    if not path.is_file():
        raise DataError(f"{path}: MTSamples CSV not found")
    csv.field_size_limit(1 << 30)
    with open(path, encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f) if (r.get("transcription") or "").strip()]
    if rows and "medical_specialty" not in rows[0]:
        raise DataError(f"{path}: no medical_specialty column")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["medical_specialty"].strip()] = counts.get(r["medical_specialty"].strip(), 0) + 1
    return [make_document(r.get("note_id") or i, r["transcription"], [], [],
                          category=r["medical_specialty"].strip(), spans_annotated=False)
            for i, r in enumerate(rows) if counts[r["medical_specialty"].strip()] >= min_per_class]


# ---------------------------------------------------------------- splits
def split_of(key: Any, fractions: Sequence[float] = (0.8, 0.1, 0.1), seed: int = 0) -> str:
    """Deterministic split of one key (e.g. subject_id) by a salted hash: the same key lands in
    the same split on every machine and every run, and no key is in two splits."""
    h = int(hashlib.sha256(f"{seed}:{key}".encode()).hexdigest()[:12], 16) / float(1 << 48)
    acc = 0.0
    for name, frac in zip(SPLITS, fractions):
        acc += frac
        if h < acc:
            return name
    return SPLITS[-1]


def split_documents(docs: Iterable[dict], key: str = "id", fractions: Sequence[float] = (0.8, 0.1, 0.1),
                    seed: int = 0) -> dict[str, list[dict]]:
    """Group documents into train/val/test by ``split_of(doc[key])``."""
    out: dict[str, list[dict]] = {s: [] for s in SPLITS}
    for d in docs:
        out[split_of(d.get(key, d["id"]), fractions, seed)].append(d)
    return out


def iter_batches(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]
