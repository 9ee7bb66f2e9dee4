"""CLEAR-style entity-augmented retrieval for long notes: before JSON generation, keep only the
sentences around candidate entities (found cheaply by the rules extractor) so the generator
reads fewer tokens. ``select_chunks`` returns the reduced text and the fraction kept, so the
saving and its F1 cost can be measured (bench_llm)."""
from __future__ import annotations

import re

_SENTENCE = re.compile(r"[^\n.!?]+(?:[.!?]+|\n|$)")


def sentences(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _SENTENCE.finditer(text) if m.group().strip()]


def select_chunks(text: str, candidates: list[dict], context: int = 0, max_chars: int | None = None) -> str:
    """The sentences holding a candidate span (plus ``context`` neighbours each side), in text
    order, joined by newlines. No candidates -> the note's first ``max_chars`` (or all)."""
    sents = sentences(text)
    if not candidates or not sents:
        return text[:max_chars] if max_chars else text
    keep: set[int] = set()
    for ent in candidates:
        for k, (s, e) in enumerate(sents):
            if s < ent["end"] and ent["start"] < e:
                keep.update(range(max(0, k - context), min(len(sents), k + context + 1)))
    out = "\n".join(text[sents[k][0]:sents[k][1]].strip() for k in sorted(keep))
    return out[:max_chars] if max_chars else out


def reduce_note(text: str, candidate_extractor, context: int = 0) -> tuple[str, float]:
    """(reduced text, fraction of characters kept)."""
    if not text:
        return text, 1.0
    cands = candidate_extractor.find_spans(text)
    reduced = select_chunks(text, cands, context)
    return reduced, len(reduced) / len(text)
