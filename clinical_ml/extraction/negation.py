"""NegEx-style negation (Chapman et al. 2001, simplified): a finding is negated when a
negation trigger precedes it within the same sentence/clause and no termination term
("but", "however", ...) lies between them, or a post-trigger ("was ruled out") follows it.

Used by every extractor: the encoder and generative models find spans, this decides
``negated`` the same way for all of them, so their comparisons measure span finding.
"""
from __future__ import annotations

import re

from clinical_ml.notes.schema import FINDING_LABELS

PRE_TRIGGERS = (
    "no", "not", "denies", "denied", "denying", "without", "negative for", "free of",
    "no evidence of", "no signs of", "no sign of", "absence of", "absent", "never had",
    "ruled out for", "rules out", "fails to reveal", "did not reveal", "no history of",
    "resolved", "unremarkable for", "not demonstrate", "nor",
)
POST_TRIGGERS = ("was ruled out", "were ruled out", "is ruled out", "ruled out",
                 "is absent", "was absent", "was negative", "were negative", "unlikely")
TERMINATORS = ("but", "however", "although", "except", "aside from", "apart from", "which",
               "though", "yet", "still", "presents", "presented", "complains", "reports")
_WINDOW_WORDS = 6

_pre = re.compile(r"\b(" + "|".join(sorted(map(re.escape, PRE_TRIGGERS), key=len, reverse=True)) + r")\b", re.I)
_post = re.compile(r"^\W{0,3}(" + "|".join(sorted(map(re.escape, POST_TRIGGERS), key=len, reverse=True)) + r")\b", re.I)
_term = re.compile(r"\b(" + "|".join(map(re.escape, TERMINATORS)) + r")\b", re.I)
_clause_break = re.compile(r"[.;:!?\n]")


def is_negated(text: str, start: int, end: int) -> bool:
    """Whether the span text[start:end] is negated by a nearby trigger in its clause."""
    left = text[max(0, start - 80):start]
    brk = max((m.end() for m in _clause_break.finditer(left)), default=0)
    left = left[brk:]
    words = left.split()
    window = " ".join(words[-_WINDOW_WORDS:]) if words else ""
    last_pre = None
    for m in _pre.finditer(window):
        last_pre = m
    if last_pre is not None and not _term.search(window[last_pre.end():]):
        return True
    right = text[end:end + 40]
    cut = _clause_break.search(right)
    right = right[:cut.start()] if cut else right
    return bool(_post.search(right))


def apply_negation(text: str, entities: list[dict]) -> list[dict]:
    """Set ``negated`` on findings (PROBLEM/TEST/PROCEDURE); medications and attributes never
    carry negation in the schema."""
    for ent in entities:
        ent["negated"] = bool(ent["label"] in FINDING_LABELS and is_negated(text, ent["start"], ent["end"]))
    return entities
