"""Document-level consistency for tagged mentions: one document, one reading of a name.

A token classifier decides every occurrence from its own window, so it tags "streptozotocin
(STZ)" and then misses the next ten "STZ", or finds "heparin" in one sentence and not in the
next. Two repairs, the ones biomedical taggers have long used (abbreviation resolution in the
style of Schwartz & Hearst, PSB 2003, and label propagation of repeated mentions):

- abbreviations: a short form defined right after a tagged long form, "long form (SF)", takes
  the long form's label everywhere in the document;
- repeats: a surface form tagged (case-sensitively, three characters or more) gets the same
  label at its other whole-word occurrences that no entity covers yet.

Only spans not already covered by an entity are added, so nothing the model decided is undone.
"""
from __future__ import annotations

import bisect
import re

from clinical_ml.extraction.spans import is_word_char

_DEFINITION = re.compile(r"\(\s*([A-Za-z][A-Za-z0-9\-]{1,9})\s*[);,]")
MIN_REPEAT_CHARS = 3


def _is_short_form_of(short: str, long: str) -> bool:
    """Schwartz-Hearst test: the short form's characters appear in order in the long form,
    its first character starting a word of it."""
    s, lf = short.lower(), long.lower()
    i, j = len(s) - 1, len(lf) - 1
    while i >= 0:
        c = s[i]
        if not c.isalnum():
            i -= 1
            continue
        while j >= 0 and (lf[j] != c or (i == 0 and j > 0 and lf[j - 1].isalnum())):
            j -= 1
        if j < 0:
            return False
        i, j = i - 1, j - 1
    return True


def abbreviations(text: str, entities: list[dict]) -> dict[str, str]:
    """Short form -> label, for "long form (SF)" where an entity ends right before the
    parenthesis and the short form fits it."""
    ends = {e["end"]: e for e in entities}
    out: dict[str, str] = {}
    for m in _DEFINITION.finditer(text):
        k = m.start()
        while k > 0 and text[k - 1] == " ":
            k -= 1
        ent = ends.get(k)
        if ent is not None and _is_short_form_of(m.group(1), ent["text"]) and ent["text"] != m.group(1):
            out.setdefault(m.group(1), ent["label"])
    return out


def _occurrences(text: str, surface: str):
    """Whole-word, case-sensitive occurrences of ``surface``, left to right, non-overlapping:
    ``re.finditer(r"(?<!\\w)" + re.escape(surface) + r"(?!\\w)")`` without compiling a pattern
    per name (a note names about 120: the compiles were a third of the decoding's time)."""
    n, pos = len(surface), 0
    while n:
        s = text.find(surface, pos)
        if s < 0:
            return
        e = s + n
        if (s == 0 or not is_word_char(text[s - 1])) and (e == len(text) or not is_word_char(text[e])):
            yield s, e
            pos = e
        else:
            pos = s + 1


def propagate(text: str, entities: list[dict]) -> list[dict]:
    """``entities`` plus the uncovered occurrences of abbreviations and repeated names."""
    if not entities:
        return entities
    names: dict[str, str] = {}
    for e in entities:
        if len(e["text"]) >= MIN_REPEAT_CHARS and any(ch.isalpha() for ch in e["text"]):
            names.setdefault(e["text"], e["label"])
    names.update(abbreviations(text, entities))
    covered = sorted((e["start"], e["end"]) for e in entities)
    added = []
    for surface, label in names.items():
        for s, e in _occurrences(text, surface):
            if not _overlaps(covered, s, e):
                added.append({"start": s, "end": e, "label": label, "text": text[s:e], "negated": False})
                bisect.insort(covered, (s, e))
    return sorted(entities + added, key=lambda e: e["start"]) if added else entities


def _overlaps(covered: list[tuple[int, int]], s: int, e: int) -> bool:
    """Does [s, e) overlap a span of ``covered`` (sorted, non-overlapping)?"""
    i = bisect.bisect_left(covered, (s, s))
    return any(0 <= k < len(covered) and covered[k][0] < e and s < covered[k][1] for k in (i - 1, i))
