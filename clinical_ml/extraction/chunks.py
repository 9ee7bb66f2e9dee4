"""Note windows for the generative extractor: a note cut into consecutive pieces of at most N
tokens, each ending at a sentence or line break where one falls in the window's second half.

Why: a 135M model writes a record for a short window far better than for a long one. On
MACCROBAT case reports the gold record of a 192-token prefix is ~220 tokens, so one prompt
per note ran out of output budget, looped and left JSON open; a 96-token window's record
(without defaults, ``generative.target_record``) is ~75 tokens, median: it fits the budget, and
every sentence of the note is read.
"""
from __future__ import annotations

import bisect
import re
from typing import Iterable, Sequence

_SENTENCE_END = re.compile(r"(?<=[.!?;:])\s+|\n\s*")
_SPACE = re.compile(r"\s+")


def chunk_bounds(text: str, token_starts: Sequence[int], max_tokens: int,
                 keep: Iterable[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """``(start, end)`` character ranges that cover ``text`` in order, each holding at most
    ``max_tokens`` of the tokens starting at ``token_starts`` (sorted character offsets). A
    window is cut at the start of its last sentence (else its last word) in its second half,
    never inside a ``keep`` span (gold entities when cutting training text), else at the
    token boundary."""
    if max_tokens < 1:
        raise ValueError(f"max_tokens must be >= 1, got {max_tokens}")
    keep = list(keep)
    bounds, start, i, n = [], 0, 0, len(token_starts)
    while i < n:
        j = i + max_tokens
        if j >= n:
            bounds.append((start, len(text)))
            break
        lo, hi = token_starts[i + max_tokens // 2], token_starts[j]
        cut = _last_break(text, lo, hi, keep) or hi
        bounds.append((start, cut))
        start, i = cut, bisect.bisect_left(token_starts, cut)
    return bounds or [(0, len(text))]


def _last_break(text: str, lo: int, hi: int, keep: list[tuple[int, int]]) -> int | None:
    """The last sentence break (else word break) in ``text[lo:hi]`` outside every ``keep`` span:
    the offset where the next piece starts."""
    for pattern in (_SENTENCE_END, _SPACE):
        cuts = [m.end() for m in pattern.finditer(text, lo, hi)
                if not any(s < m.end() < e for s, e in keep)]
        if cuts:
            return cuts[-1]
    return None


def slice_doc(doc: dict, start: int, end: int) -> dict:
    """``doc`` cut to ``text[start:end]``: the entities wholly inside, offsets shifted, and the
    relations between them (indices remapped); ``record`` left to the caller."""
    keep = [k for k, e in enumerate(doc.get("entities", [])) if e["start"] >= start and e["end"] <= end]
    idx = {old: new for new, old in enumerate(keep)}
    ents = [{**doc["entities"][k], "start": doc["entities"][k]["start"] - start,
             "end": doc["entities"][k]["end"] - start} for k in keep]
    rels = [{**r, "head": idx[r["head"]], "tail": idx[r["tail"]]} for r in doc.get("relations", [])
            if r["head"] in idx and r["tail"] in idx]
    return {**doc, "text": doc["text"][start:end], "entities": ents, "relations": rels}
