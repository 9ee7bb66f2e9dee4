"""The extraction schema: one definition shared by the synthetic gold, training, inference and
evaluation.

An annotated note (gold or predicted) is::

    {"id": <note id; ROW_ID for NOTEEVENTS>,
     "entities":  [{"start": int, "end": int, "label": LABEL, "text": str, "negated": bool}],
     "relations": [{"type": RELATION, "head": int, "tail": int}],
     "record":    <structured record, RECORD_SCHEMA>}

- ``start``/``end`` are character offsets into the note text (``text[start:end] == text``);
- ``head``/``tail`` index ``entities``: the head is the attribute (DOSE, ROUTE, FREQUENCY,
  FORM, DURATION), the tail the MEDICATION it belongs to;
- ``negated`` is true when the finding is explicitly absent ("denies chest pain").

The record is what a perfect extractor produces from the spans: ``record_from_annotations``
derives it, so gold records, predicted records and the generative model's targets agree by
construction. See docs/contracts.md for the gold file layout (``annotations/notes_gold.jsonl``).

FORM ("tablet", "capsule") and DURATION ("for 7 days") came with the n2c2 2018 medication
corpus (schema 1.1). The synthetic gold does not annotate them, so its records have
``"form": null, "duration": null`` (its discharge "Sig:" lines do write "Tablet"/"Capsule",
unlabelled: next to n2c2 it is not FORM-complete). In ``RECORD_SCHEMA`` the two keys are
optional (nullable when present): records written before 1.1 stay valid, and a generative
model need not spend tokens on ``"form":null,"duration":null``.
``record_from_annotations`` always writes every key.
"""
from __future__ import annotations

from typing import Any, Iterable

import jsonschema

# 1.1: FORM and DURATION (FORM_OF, DURATION_OF; optional "form"/"duration" in medications)
SCHEMA_VERSION = "1.1"

ENTITY_LABELS: tuple[str, ...] = (
    "MEDICATION", "DOSE", "ROUTE", "FREQUENCY", "FORM", "DURATION", "PROBLEM", "TEST", "PROCEDURE",
)
# Attribute label -> relation type linking it to its medication.
ATTRIBUTE_RELATIONS: dict[str, str] = {
    "DOSE": "DOSE_OF", "ROUTE": "ROUTE_OF", "FREQUENCY": "FREQUENCY_OF",
    "FORM": "FORM_OF", "DURATION": "DURATION_OF",
}
RELATION_TYPES: tuple[str, ...] = tuple(ATTRIBUTE_RELATIONS.values())
# Attribute label -> its key in a record's medication object ("DOSE" -> "dose").
MEDICATION_FIELDS: dict[str, str] = {lab: lab.lower() for lab in ATTRIBUTE_RELATIONS}
# Medication keys a record may leave out (added in schema 1.1; absent means null).
OPTIONAL_MEDICATION_FIELDS: tuple[str, ...] = ("form", "duration")
# Labels whose findings can be negated and land in the record as lists of findings.
FINDING_LABELS: dict[str, str] = {"PROBLEM": "problems", "TEST": "tests", "PROCEDURE": "procedures"}

_nullable_str = {"type": ["string", "null"]}
_finding = {
    "type": "object",
    "properties": {"name": {"type": "string", "minLength": 1}, "negated": {"type": "boolean"}},
    "required": ["name", "negated"],
    "additionalProperties": False,
}
RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Structured clinical note record",
    "type": "object",
    "properties": {
        "medications": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "dose": _nullable_str,
                    "route": _nullable_str,
                    "frequency": _nullable_str,
                    "form": _nullable_str,
                    "duration": _nullable_str,
                },
                "required": ["name", "dose", "route", "frequency"],
                "additionalProperties": False,
            },
        },
        "problems": {"type": "array", "items": _finding},
        "tests": {"type": "array", "items": _finding},
        "procedures": {"type": "array", "items": _finding},
    },
    "required": ["medications", "problems", "tests", "procedures"],
    "additionalProperties": False,
}

ENTITY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "start": {"type": "integer", "minimum": 0},
        "end": {"type": "integer", "minimum": 0},
        "label": {"enum": list(ENTITY_LABELS)},
        "text": {"type": "string"},
        "negated": {"type": "boolean"},
    },
    "required": ["start", "end", "label", "text", "negated"],
}
RELATION_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"enum": list(RELATION_TYPES)},
        "head": {"type": "integer", "minimum": 0},
        "tail": {"type": "integer", "minimum": 0},
    },
    "required": ["type", "head", "tail"],
}
ANNOTATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Annotated clinical note (gold or predicted)",
    "type": "object",
    "properties": {
        "id": {"type": ["integer", "string"]},
        "entities": {"type": "array", "items": ENTITY_SCHEMA},
        "relations": {"type": "array", "items": RELATION_SCHEMA},
        "record": RECORD_SCHEMA,
    },
    "required": ["id", "entities", "relations", "record"],
}

_record_validator = jsonschema.Draft202012Validator(RECORD_SCHEMA)
_annotation_validator = jsonschema.Draft202012Validator(ANNOTATION_SCHEMA)


def _fast_validity(schema: dict):
    """``is_valid`` of the Rust validator when it is installed (jsonschema_rs), else None.
    Why: the pure-Python ``iter_errors`` took 20 of BuildNotes' 28 s on the demo's 8,838
    documents; valid documents (nearly all) need no error messages, and invalid ones still get
    jsonschema's own messages, so the output is the same either way."""
    try:
        import jsonschema_rs  # noqa: PLC0415
    except ImportError:
        return None
    return jsonschema_rs.Draft202012Validator(schema).is_valid


_annotation_is_valid = _fast_validity(ANNOTATION_SCHEMA)


def empty_record() -> dict[str, list]:
    return {"medications": [], "problems": [], "tests": [], "procedures": []}


def normalize(text: str) -> str:
    """Surface form used in records and field-level matching: lower case, single spaces."""
    return " ".join(text.lower().split())


def record_from_annotations(entities: list[dict], relations: list[dict]) -> dict[str, list]:
    """The structured record a perfect extractor would produce from these spans.

    Medications keep text order, with every attribute key (null when the medication has none);
    an attribute without a relation is dropped (it cannot be attached to a medication); a
    medication with two attributes of one kind (n2c2's Strength "81 mg" and Dose "One (1)"
    are both DOSE) keeps the first in text order, whatever the order of the relations;
    duplicates (same normalized name and attributes) are merged.
    """
    record = empty_record()
    attrs: dict[int, dict[str, str]] = {}
    linked = [r for r in relations if entities[r["tail"]]["label"] == "MEDICATION"
              and entities[r["head"]]["label"] in MEDICATION_FIELDS]
    for rel in sorted(linked, key=lambda r: (entities[r["head"]]["start"], entities[r["head"]]["end"])):
        head = entities[rel["head"]]
        attrs.setdefault(rel["tail"], {}).setdefault(MEDICATION_FIELDS[head["label"]],
                                                     normalize(head["text"]))
    seen: set[tuple] = set()
    for i, ent in enumerate(entities):
        label = ent["label"]
        if label == "MEDICATION":
            a = attrs.get(i, {})
            med = {"name": normalize(ent["text"]), **{f: a.get(f) for f in MEDICATION_FIELDS.values()}}
            key = ("med", *med.values())
        elif label in FINDING_LABELS:
            med = {"name": normalize(ent["text"]), "negated": bool(ent.get("negated", False))}
            key = (label, *med.values())
        else:
            continue
        if key in seen or not med["name"]:
            continue
        seen.add(key)
        record["medications" if label == "MEDICATION" else FINDING_LABELS[label]].append(med)
    return record


def complete_record(record: dict) -> dict:
    """The record with every medication key present (optional ones absent -> null), the shape
    ``record_from_annotations`` writes."""
    out = dict(record)
    out["medications"] = [{**m, **{f: m.get(f) for f in OPTIONAL_MEDICATION_FIELDS}}
                          for m in record.get("medications", [])]
    return out


def annotated_labels(doc: dict) -> tuple[str, ...]:
    """The labels whose spans are exhaustively annotated in ``doc``: for these, a token outside
    every gold span really is "not this label". Other labels are unknown there (a corpus that
    annotates only chemicals and diseases says nothing about doses), so training must not score
    them. ``annotated_labels`` (a list) sets them; ``spans_annotated: false`` (MTSamples,
    category-only notes) means none; absent means all (the synthetic gold)."""
    if doc.get("spans_annotated", True) is False:
        return ()
    labels = doc.get("annotated_labels")
    if labels is None:
        return ENTITY_LABELS
    unknown = set(labels) - set(ENTITY_LABELS)
    if unknown:
        raise ValueError(f"document {doc.get('id')!r}: annotated_labels has unknown labels "
                         f"{sorted(unknown)}; use some of {', '.join(ENTITY_LABELS)}")
    return tuple(lab for lab in ENTITY_LABELS if lab in labels)


def record_errors(record: Any) -> list[str]:
    """Human-readable schema violations of a structured record; empty when valid."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
            for e in _record_validator.iter_errors(record)]


def annotation_errors(doc: Any, text: str | None = None) -> list[str]:
    """Schema violations of an annotated note, plus span/text and relation-index checks."""
    errors = [] if _annotation_is_valid is not None and _annotation_is_valid(doc) else [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in _annotation_validator.iter_errors(doc)]
    if errors:
        return errors
    ents = doc["entities"]
    for i, ent in enumerate(ents):
        if ent["end"] <= ent["start"]:
            errors.append(f"entities/{i}: end {ent['end']} <= start {ent['start']}")
        elif text is not None and text[ent["start"]:ent["end"]] != ent["text"]:
            errors.append(f"entities/{i}: text does not match the note slice "
                          f"[{ent['start']}:{ent['end']}]")
    for j, rel in enumerate(doc["relations"]):
        if rel["head"] >= len(ents) or rel["tail"] >= len(ents):
            errors.append(f"relations/{j}: head/tail index out of range ({len(ents)} entities)")
    return errors


def iter_medications(record: dict) -> Iterable[dict]:
    yield from record.get("medications", [])
