"""Entity spans a clinician would accept: trimmed to words, one mention in one piece, no junk.

Token classifiers make three kinds of mess on real text: a mention cut in pieces ("lumbar" /
"stenosis" as two PROBLEMs), edges that stop inside a word or carry a comma or an article
("the aspirin,"), and entities that are no mention at all ("." as MEDICATION, "of" as
PROBLEM, "%" as TEST, "qd" or "mg" as MEDICATION, the "XYZ" of a de-identified name, the
surname after "Dr."). ``clean_entities`` repairs the first two and drops the third, so every
extractor's record is built from clean entities only.

Why merging adjacent same-label spans is safe: in the training corpora two gold mentions of the
same label separated by nothing but a space are rare (BC5CDR 0.22 %, NCBI-disease 0.25 %,
MACCROBAT 0.39 % of mentions, synthetic notes none), while a model that splits a multi-word
mention does it on every such mention. Spans joined by a hyphen or slash, a comma or a line
break are kept apart ("doxorubicin-cyclophosphamide" really are two drugs).
"""
from __future__ import annotations

import re

# function words that are never a mention on their own and never its first or last word
STOP_WORDS = frozenset("""
a an the this that these those his her its their our my your of in on at to for with without
and or but nor by from as into onto upon over under per via than then is was were be been being
are am has had have do does did not no any some all each both either neither other such same
he she it they we you i him them us who whom which what when where while if so also very
""".split())
# note furniture that is never a mention: section abbreviations and de-identification
# placeholders (MTSamples writes "Dr. XYZ", MIMIC-III "[**Name**]")
SECTION_WORDS = frozenset("hpi pmh psh pmhx pshx shx fhx ros cc hx dx rx sx tx".split())
_PLACEHOLDER = re.compile(r"(?i)^(?:x{2,}|xyz|\[\*\*.*\*\*\])$")
# units, routes and schedules: part of a medication's attributes, never the medication, the
# problem, test or procedure itself
ATTRIBUTE_WORDS = frozenset("""
mg mcg g kg ml l cc unit units iu meq mmol mol tab tabs tablet tablets cap caps capsule capsules
puff puffs drop drops po iv im sc sq subq sl pr top prn qd qod bid tid qid qhs hs qam qpm q4h q6h
q8h q12h daily weekly nightly stat
""".split())
_HONORIFIC = re.compile(r"(?i)\b(?:dr|drs|mr|mrs|ms|miss|prof|doctor)\.?\s+$")
# labels whose mention may be digits only ("5" mg is a dose; "5" is no problem)
NUMERIC_LABELS = frozenset({"DOSE", "FREQUENCY", "DURATION"})
ATTRIBUTE_LABELS = frozenset({"DOSE", "ROUTE", "FREQUENCY", "FORM", "DURATION"})
_ALNUM = re.compile(r"[^\W_]+", re.UNICODE)
_LEAD_JUNK = set(",.;:!?)]}>-/*+=&|'\"`~")
_TRAIL_JUNK = set(",.;:!?([{<-/*+=&|'\"`~")
_OPEN_CLOSE = {"(": ")", "[": "]", "{": "}"}
_MERGE_GAP = re.compile(r"[ \t]{1,2}")


def _balanced_close(s: str, ch: str) -> bool:
    """A closing bracket at the end belongs to the span when the span opened it."""
    pairs = {")": "(", "]": "[", "}": "{"}
    return s.count(pairs[ch]) >= s.count(ch)


def is_word_char(ch: str) -> bool:
    """``\\w`` of ``re`` on str patterns: a Unicode letter or digit, or ``_`` (whole-word
    matching without a compiled pattern: propagation's repeats, the gazetteer's terms)."""
    return ch.isalnum() or ch == "_"


def trim_span(text: str, start: int, end: int) -> tuple[int, int]:
    """Shrink ``[start, end)`` past whitespace, edge punctuation and edge stop words, and widen
    an edge that stops inside a word to the whole word."""
    while start > 0 and start < len(text) and text[start - 1].isalnum() and text[start].isalnum():
        start -= 1
    while 0 < end < len(text) and text[end].isalnum() and text[end - 1].isalnum():
        end += 1
    changed = True
    while changed and start < end:
        changed = False
        while start < end and (text[start].isspace() or text[start] in _LEAD_JUNK
                               or (text[start] in "([{" and _OPEN_CLOSE[text[start]] not in text[start:end])):
            start, changed = start + 1, True
        while start < end and (text[end - 1].isspace() or text[end - 1] in _TRAIL_JUNK
                               or (text[end - 1] in ")]}" and not _balanced_close(text[start:end], text[end - 1]))):
            end, changed = end - 1, True
        first = _ALNUM.match(text, start)
        if first and first.group().lower() in STOP_WORDS and first.end() < end:
            start, changed = first.end(), True
        words = list(_ALNUM.finditer(text, start, end))
        if len(words) > 1 and words[-1].group().lower() in STOP_WORDS and words[-1].end() == end:
            end, changed = words[-1].start(), True
    return start, end


def is_junk(surface: str, label: str) -> bool:
    """True for a span that cannot be a mention of ``label``: punctuation only, digits only
    (except doses and frequencies), stop words only, or a single character."""
    words = _ALNUM.findall(surface)
    if not words or _PLACEHOLDER.match(surface.strip()):
        return True
    lowered = " ".join(w.lower() for w in words)
    if lowered in SECTION_WORDS or (label not in ATTRIBUTE_LABELS and lowered in ATTRIBUTE_WORDS):
        return True
    if label not in NUMERIC_LABELS:
        if not any(ch.isalpha() for w in words for ch in w):
            return True
        if len("".join(words)) < 2:
            return True
    return all(w.lower() in STOP_WORDS for w in words)


def is_person_name(text: str, start: int) -> bool:
    """A span right after an honorific ("Dr. Madera", "Mrs. Pesce") is a person, whatever the
    word looks like to a model that met it as a drug name."""
    return bool(_HONORIFIC.search(text, max(0, start - 12), start))


def is_mention_gap(gap: str) -> bool:
    """One or two spaces (no line break, no punctuation): what lies between the pieces of one
    multi-word mention."""
    return bool(_MERGE_GAP.fullmatch(gap))


def merge_adjacent(text: str, entities: list[dict]) -> list[dict]:
    """Join same-label spans separated only by one or two spaces (no line break, no
    punctuation): the pieces of one multi-word mention."""
    out: list[dict] = []
    for ent in sorted(entities, key=lambda e: (e["start"], e["end"])):
        prev = out[-1] if out else None
        if prev is not None and ent["start"] < prev["end"]:  # overlap: keep the first
            if ent["label"] == prev["label"]:
                prev["end"] = max(prev["end"], ent["end"])
            continue
        if (prev is not None and prev["label"] == ent["label"]
                and is_mention_gap(text[prev["end"]:ent["start"]])):
            prev["end"] = ent["end"]
            continue
        out.append(dict(ent))
    return out


def clean_entities(text: str, entities: list[dict]) -> list[dict]:
    """Merged, trimmed, junk-free entities (``text`` re-sliced, ``negated`` kept), in order."""
    out = []
    for ent in merge_adjacent(text, entities):
        s, e = trim_span(text, ent["start"], ent["end"])
        if e <= s or is_junk(text[s:e], ent["label"]) or is_person_name(text, s):
            continue
        if out and s < out[-1]["end"]:  # trimming widened into the previous span
            continue
        out.append({**ent, "start": s, "end": e, "text": text[s:e],
                    "negated": bool(ent.get("negated", False))})
    return out


def add_uncovered(entities: list[dict], candidates: list[dict]) -> list[dict]:
    """``entities`` plus the ``candidates`` that overlap none of them, in text order: what the
    gazetteer and the attribute patterns add where the encoder tagged nothing."""
    extra = [c for c in candidates if not any(e["start"] < c["end"] and c["start"] < e["end"] for e in entities)]
    return sorted(entities + extra, key=lambda e: (e["start"], e["end"])) if extra else entities


def by_length(texts: list[str]) -> list[int]:
    """Indexes of ``texts``, shortest first (ties in input order): batches of neighbours pad little."""
    return sorted(range(len(texts)), key=lambda i: len(texts[i] or ""))
