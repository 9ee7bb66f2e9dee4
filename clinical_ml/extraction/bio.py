"""Character spans <-> BIO tags, for words (CoNLL files, seqeval) and for subword tokens
(token classification). Offsets always refer to the original note text, so predictions map
back to exact character spans whatever the tokenizer does."""
from __future__ import annotations

import re

from clinical_ml.notes.schema import ENTITY_LABELS

BIO_LABELS: tuple[str, ...] = ("O",) + tuple(f"{p}-{lab}" for lab in ENTITY_LABELS for p in ("B", "I"))
LABEL2ID = {lab: i for i, lab in enumerate(BIO_LABELS)}
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words_with_offsets(text: str) -> list[tuple[str, int, int]]:
    """Words and punctuation with character offsets (the CoNLL / seqeval unit)."""
    return [(m.group(), m.start(), m.end()) for m in _WORD.finditer(text)]


def tags_for_offsets(offsets: list[tuple[int, int]], entities: list[dict]) -> list[str]:
    """BIO tag per (start, end) unit: a unit inside an entity gets its label; the first unit of
    the entity gets B-. Units with empty spans (special tokens) get 'O'."""
    tags = ["O"] * len(offsets)
    ents = sorted(entities, key=lambda e: e["start"])
    j = 0
    for i, (s, e) in enumerate(offsets):
        if e <= s:
            continue
        while j < len(ents) and ents[j]["end"] <= s:
            j += 1
        if j < len(ents) and ents[j]["start"] < e and s < ents[j]["end"]:
            ent = ents[j]
            first = i == 0 or not (tags[i - 1] != "O" and tags[i - 1][2:] == ent["label"]
                                   and offsets[i - 1][1] > ent["start"])
            tags[i] = ("B-" if first else "I-") + ent["label"]
    return tags


def char_spans_to_word_bio(text: str, entities: list[dict]) -> list[tuple[str, str]]:
    words = words_with_offsets(text)
    return list(zip([w for w, _, _ in words], tags_for_offsets([(s, e) for _, s, e in words], entities)))


def word_starts(text: str, offsets: list[tuple[int, int]]) -> list[bool]:
    """Which subword tokens begin a word: a token continues the previous one when it starts
    where that one ended, inside one run of letters and digits ("hyper" + "##tension")."""
    out = []
    prev_end = -1
    for s, e in offsets:
        cont = (s == prev_end and 0 < s < len(text) and text[s - 1].isalnum() and text[s].isalnum())
        out.append(not cont)
        if e > s:
            prev_end = e
    return out


def decode_words(text: str, offsets: list[tuple[int, int]], tags: list[str]) -> list[dict]:
    """Subword tags -> clean entity spans, one label per word.

    A word takes the tag of its first subword (the one the model is trained to tag, and the
    only one whose context is the word's start); an I- tag continues a same-label mention
    across words, anything else opens one; spans are then merged, trimmed to words and cleaned
    of junk (``clinical_ml.extraction.spans``)."""
    from clinical_ml.extraction.spans import clean_entities

    entities: list[dict] = []
    cur: dict | None = None
    starts = word_starts(text, offsets)
    for (s, e), tag, first in zip(offsets, tags, starts):
        if e <= s:
            continue
        if not first:
            if cur is not None:
                cur["end"] = e
            continue
        if tag == "O":
            cur = None
        elif tag[0] == "I" and cur is not None and cur["label"] == tag[2:]:
            cur["end"] = e
        else:
            cur = {"start": s, "end": e, "label": tag[2:], "negated": False}
            entities.append(cur)
    return clean_entities(text, entities)
