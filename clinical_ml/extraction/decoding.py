"""From generated text to a schema-valid record and grounded spans.

- ``parse_record(raw)``: strict parse + schema check, the keys the record leaves out filled
  first (``fill_missing``); if that fails, repair (strip code fences and chatter, cut at the
  last complete value, close open brackets, coerce to the schema) and say so, so validity is
  *reported*, never hidden;
- ``ground(text, record)``: find the record's strings in the note to produce entity spans with
  offsets and the medication relations (the generative model writes names, not offsets);
- ``repeated_item(text)`` / ``next_section(text, cut, sections)``: where a record being written
  repeats an item of its current section, and the record cut there with the next section
  opened (the generative model's decoding loop, ``GenerativeExtractor.write_records``).
"""
from __future__ import annotations

import json
import re
from typing import Any

from clinical_ml.notes.schema import (ATTRIBUTE_RELATIONS, FINDING_LABELS, MEDICATION_FIELDS,
                                      complete_record, empty_record, normalize, record_errors)

_CLOSE = {"{": "}", "[": "]"}
_SECTION = re.compile(r'"(medications|problems|tests|procedures)"\s*:\s*\[')
_ITEM = re.compile(r"\{[^{}]*\}")


def repeated_item(text: str) -> int | None:
    """The offset where ``text``, a record being written, repeats an earlier item of its current
    (last opened) section exactly; None if its last item is new. Records never hold the same item
    twice (``record_from_annotations`` merges them), so a repeat is the greedy decoding of a
    small model stuck in a loop: on MACCROBAT case reports SmolLM2 wrote "antihypertensive" 20
    times and ran out of tokens before closing the JSON or reaching tests and procedures."""
    sections = list(_SECTION.finditer(text))
    if not sections:
        return None
    items = list(_ITEM.finditer(text, sections[-1].end()))
    if len(items) >= 2 and items[-1].group() in {m.group() for m in items[:-1]}:
        return items[-1].start()
    return None


def next_section(text: str, cut: int, sections: list[str]) -> tuple[str, bool]:
    """(``text`` cut at ``cut`` with its current section closed, whether the record is done): the
    next of ``sections`` (the order the model writes them) opened, or the record closed after
    the last one."""
    found = list(_SECTION.finditer(text, 0, cut))
    current = found[-1].group(1) if found else None
    head = text[:cut].rstrip().rstrip(",")
    rest = sections[sections.index(current) + 1:] if current in sections else []
    return (head + f'],"{rest[0]}":[', False) if rest else (head + "]}", True)


def _json_candidates(s: str) -> list[str]:
    """Prefixes of ``s`` cut after a complete value, with open brackets closed (longest first)."""
    stack: list[str] = []
    in_str = esc = False
    cuts: list[tuple[int, str]] = []
    for i, ch in enumerate(s):
        if in_str:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == '"':
                in_str = False
            continue
        if ch == '"':
            in_str = True
        elif ch in "{[":
            stack.append(ch)
        elif ch in "}]":
            if not stack or _CLOSE[stack[-1]] != ch:
                break
            stack.pop()
            cuts.append((i + 1, "".join(_CLOSE[c] for c in reversed(stack))))
            if not stack:
                break
        elif ch == ",":
            cuts.append((i, "".join(_CLOSE[c] for c in reversed(stack))))
    return [s[:i].rstrip().rstrip(",") + closing for i, closing in reversed(cuts)]


def coerce_record(obj: Any) -> dict:
    """Keep what fits the record schema, drop the rest (unknown keys, wrong types)."""
    rec = empty_record()
    if not isinstance(obj, dict):
        return rec
    for m in obj.get("medications") or []:
        if isinstance(m, dict) and isinstance(m.get("name"), str) and m["name"].strip():
            rec["medications"].append({"name": m["name"], **{
                k: (m.get(k) if isinstance(m.get(k), str) and m.get(k).strip() else None)
                for k in MEDICATION_FIELDS.values()}})
    for section in FINDING_LABELS.values():
        for f in obj.get(section) or []:
            if isinstance(f, str) and f.strip():
                f = {"name": f}
            if isinstance(f, dict) and isinstance(f.get("name"), str) and f["name"].strip():
                rec[section].append({"name": f["name"], "negated": bool(f.get("negated") is True)})
    return rec


def fill_missing(obj: Any) -> Any:
    """A generated record with the keys it left out filled: absent sections empty, absent
    medication attributes null, a finding without ``negated`` not negated. The fine-tuned model
    writes only the fields its prompt names and no defaults (a BC5CDR-style answer is
    ``{"medications":[{"name":...}],"problems":[{"name":...}]}``); anything else (wrong types,
    unknown keys) is left for the schema check to reject."""
    if not isinstance(obj, dict):
        return obj
    out = {**empty_record(), **obj}
    meds = out["medications"]
    if isinstance(meds, list):
        out["medications"] = [{"name": None, **{f: None for f in MEDICATION_FIELDS.values()}, **m}
                              if isinstance(m, dict) else m for m in meds]
    for section in FINDING_LABELS.values():
        if isinstance(out[section], list):
            out[section] = [{"negated": False, **f} if isinstance(f, dict) else f for f in out[section]]
    return out


def parse_record(raw: str) -> tuple[dict, bool, bool]:
    """(record, valid_as_generated, repaired). The record is always schema-valid, with every
    section and medication key (``fill_missing``: a record that leaves out fields its prompt did
    not ask for, or the optional form/duration, is valid, the keys filled empty/null)."""
    text = raw.strip()
    text = re.sub(r"^```(?:json)?\s*|\s*```$", "", text)
    start = text.find("{")
    if start < 0:
        return empty_record(), False, True
    body = text[start:]
    try:
        obj = fill_missing(json.loads(body))
        if not record_errors(obj):
            return complete_record(obj), True, False
    except json.JSONDecodeError:
        obj = None
    if obj is None:
        for cand in _json_candidates(body):
            try:
                obj = json.loads(cand)
                break
            except json.JSONDecodeError:
                continue
    return coerce_record(obj), False, True


def _find(text_l: str, needle: str, used: set[tuple[int, int]], near: int | None = None) -> tuple[int, int] | None:
    """Offsets of ``needle`` (already lower case, whitespace-normalized) in ``text_l``, the
    unused occurrence nearest to ``near`` (or the first)."""
    if not needle:
        return None
    pat = re.compile(r"(?<!\w)" + r"\s+".join(map(re.escape, needle.split())) + r"(?!\w)")
    best = None
    for m in pat.finditer(text_l):
        span = (m.start(), m.end())
        if span in used:
            continue
        if near is None:
            return span
        if best is None or abs(span[0] - near) < abs(best[0] - near):
            best = span
    return best


def ground(text: str, record: dict) -> tuple[list[dict], list[dict]]:
    """Entity spans and relations for a record; strings not found in the note are dropped
    (a generated name that is not in the text is a hallucination, not an entity)."""
    text_l = text.lower()
    used: set[tuple[int, int]] = set()
    ents: list[dict] = []
    rels: list[tuple[str, int, int]] = []

    def add(span, label, negated=False) -> int:
        used.add(span)
        ents.append({"start": span[0], "end": span[1], "label": label,
                     "text": text[span[0]:span[1]], "negated": negated})
        return len(ents) - 1

    for med in record.get("medications", []):
        span = _find(text_l, normalize(med["name"]), used)
        if span is None:
            continue
        mi = add(span, "MEDICATION")
        for label, attr in MEDICATION_FIELDS.items():
            value = med.get(attr)
            aspan = _find(text_l, normalize(value), used, near=span[0]) if value else None
            if aspan is not None and abs(aspan[0] - span[0]) < 200:
                rels.append((ATTRIBUTE_RELATIONS[label], add(aspan, label), mi))
    for label, section in FINDING_LABELS.items():
        for f in record.get(section, []):
            span = _find(text_l, normalize(f["name"]), used)
            if span is not None:
                add(span, label, bool(f.get("negated")))
    order = sorted(range(len(ents)), key=lambda i: (ents[i]["start"], ents[i]["end"]))
    # overlapping spans (e.g. "pain" inside "chest pain") keep the first grounded one
    kept, last_end, remap = [], -1, {}
    for old in order:
        e = ents[old]
        if e["start"] >= last_end:
            remap[old] = len(kept)
            kept.append(e)
            last_end = e["end"]
    relations = [{"type": t, "head": remap[h], "tail": remap[m]} for t, h, m in rels
                 if h in remap and m in remap]
    return kept, relations
