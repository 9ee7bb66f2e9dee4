"""Per-admission note features from extracted records (``extract-notes``), as small pure functions.

For every admission: how many notes were used (``note_n``), record items per label
(``note_medications``, ``note_problems``, ``note_tests``, ``note_procedures``; all mentions,
negated ones included), negated problems (``note_problems_negated``), and 0/1 indicators of the
most frequent concepts (``note_med_<name>``, ``note_problem_<name>``, ``note_test_<name>``,
``note_procedure_<name>``: an affirmed, i.e. not negated, mention of that normalized name).

The concept vocabulary (``fit_vocabulary``) is fitted on training-split admissions only, top
``top_k`` names per label by the number of training admissions mentioning them, names seen in
fewer than ``min_admissions`` of them left out (a rare string can identify a patient), ties
broken by name; it decides the indicator columns, so every split gets the same columns.

Time cut (``--cut-hours H``): a note counts only when its time (CHARTTIME, else the end of its
CHARTDATE, 23:59:59) is at or before the admission's reference time + H, the reference being
the earlier of ADMITTIME and the admission's first ICU INTIME (an IHM prediction is made at
INTIME + 48 h, so a 48 h cut never uses a note charted after it, even for a stay that began
before the admission was registered). Notes without any time are left out under a cut, and so
are discharge summaries (written at discharge) unless ``allow_discharge_summary``.
"""
from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Iterable, Mapping

# (label, record field, column stem)
LABELS: tuple[tuple[str, str, str], ...] = (
    ("MEDICATION", "medications", "med"),
    ("PROBLEM", "problems", "problem"),
    ("TEST", "tests", "test"),
    ("PROCEDURE", "procedures", "procedure"),
)
COUNT_COLUMNS = ("note_n", "note_medications", "note_problems", "note_problems_negated",
                 "note_tests", "note_procedures")
VOCABULARY_VERSION = 1
_EDGE = re.compile(r"^[\W_]+|[\W_]+$")
_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def normalize_concept(name: Any) -> str:
    """Lower case, single spaces, punctuation trimmed at the edges ("Aspirin," -> "aspirin")."""
    return _EDGE.sub("", " ".join(str(name or "").lower().split()))


def is_discharge_summary(category: Any) -> bool:
    return " ".join(str(category or "").split()).casefold() == "discharge summary"


def parse_time(ts: Any) -> datetime | None:
    s = str(ts or "").strip()
    if not s:
        return None
    try:
        return datetime.fromisoformat(s)
    except ValueError:
        return None


def note_time(chartdate: Any, charttime: Any) -> datetime | None:
    """When a note counts as written: CHARTTIME, else the last second of CHARTDATE, else None."""
    t = parse_time(charttime)
    if t is not None:
        return t
    d = parse_time(str(chartdate or "").strip()[:10])
    return None if d is None else d.replace(hour=23, minute=59, second=59, microsecond=0)


def reference_time(admittime: datetime | None, intimes: Iterable[datetime | None] = ()) -> datetime | None:
    """The earlier of ADMITTIME and the first ICU INTIME (the cut counts hours from it)."""
    times = [t for t in (admittime, *intimes) if t is not None]
    return min(times) if times else None


def exclusion(category: Any, when: datetime | None, reference: datetime | None,
              cut_hours: float | None, allow_discharge_summary: bool = False) -> str | None:
    """Why a note is left out of the features (None: it counts). Without a cut every note counts."""
    if cut_hours is None:
        return None
    if is_discharge_summary(category) and not allow_discharge_summary:
        return "discharge_summary"
    if reference is None:
        return "no_admission_time"
    if when is None:
        return "no_time"
    if when > reference + timedelta(hours=float(cut_hours)):
        return "after_cut"
    return None


def record_concepts(record: Mapping | None) -> dict[str, list[tuple[str, bool]]]:
    """``{label: [(normalized name, negated), ...]}`` of one extracted record."""
    record = record or {}
    out: dict[str, list[tuple[str, bool]]] = {}
    for label, field, _ in LABELS:
        items = []
        for it in record.get(field) or []:
            name = normalize_concept(it.get("name") if isinstance(it, Mapping) else it)
            if name:
                items.append((name, bool(it.get("negated", False)) if isinstance(it, Mapping) else False))
        out[label] = items
    return out


def empty_admission() -> dict:
    return {"notes": 0, "counts": {label: 0 for label, _, _ in LABELS}, "negated_problems": 0,
            "concepts": {label: set() for label, _, _ in LABELS}}


def add_note(acc: dict, record: Mapping | None) -> dict:
    """Fold one note's record into an admission accumulator (in place; returned for chaining)."""
    acc["notes"] += 1
    for label, items in record_concepts(record).items():
        acc["counts"][label] += len(items)
        if label == "PROBLEM":
            acc["negated_problems"] += sum(neg for _, neg in items)
        acc["concepts"][label].update(name for name, neg in items if not neg)
    return acc


def _column(stem: str, name: str, used: set[str]) -> str:
    base = f"note_{stem}_{(_NON_ALNUM.sub('_', name).strip('_') or 'x')[:48]}"
    col, k = base, 2
    while col in used:
        col, k = f"{base}_{k}", k + 1
    used.add(col)
    return col


def fit_vocabulary(admissions: Mapping[Any, dict], train_ids: Iterable[Any], top_k: int = 50,
                   min_admissions: int = 5, **settings: Any) -> dict:
    """The indicator vocabulary from the accumulators of training admissions only."""
    train = set(train_ids)
    fitted = [acc for hadm, acc in admissions.items() if hadm in train]
    used: set[str] = set(COUNT_COLUMNS)
    concepts: dict[str, list[dict]] = {}
    for label, _, stem in LABELS:
        df: dict[str, int] = {}
        for acc in fitted:
            for name in acc["concepts"][label]:
                df[name] = df.get(name, 0) + 1
        ranked = sorted((n for n, c in df.items() if c >= min_admissions), key=lambda n: (-df[n], n))
        concepts[label] = [{"name": n, "column": _column(stem, n, used), "admissions": df[n]}
                           for n in ranked[:top_k]]
    return {"version": VOCABULARY_VERSION, "top_k": top_k, "min_admissions": min_admissions,
            "fitted_on": {"train_admissions": len(train), "train_admissions_with_notes": len(fitted)},
            **settings, "concepts": concepts}


def feature_columns(vocabulary: Mapping) -> list[str]:
    return list(COUNT_COLUMNS) + [c["column"] for label, _, _ in LABELS
                                  for c in vocabulary["concepts"].get(label, [])]


def feature_row(acc: dict, vocabulary: Mapping) -> dict[str, int]:
    row = {"note_n": acc["notes"], "note_medications": acc["counts"]["MEDICATION"],
           "note_problems": acc["counts"]["PROBLEM"], "note_problems_negated": acc["negated_problems"],
           "note_tests": acc["counts"]["TEST"], "note_procedures": acc["counts"]["PROCEDURE"]}
    for label, _, _ in LABELS:
        have = acc["concepts"][label]
        for c in vocabulary["concepts"].get(label, []):
            row[c["column"]] = int(c["name"] in have)
    return row


def feature_frame(admissions: Mapping[int, tuple[int | None, dict]], vocabulary: Mapping):
    """One row per admission, sorted by hadm_id: ``hadm_id``, ``subject_id``, the counts (int32)
    and the vocabulary's indicators (int8)."""
    import pandas as pd

    cols = feature_columns(vocabulary)
    hadms = sorted(admissions)
    rows = [feature_row(admissions[h][1], vocabulary) for h in hadms]
    df = pd.DataFrame({"hadm_id": pd.array(hadms, dtype="int64"),
                       "subject_id": pd.array([admissions[h][0] for h in hadms], dtype="Int64")})
    for c in cols:
        vals = [r[c] for r in rows]
        df[c] = pd.array(vals, dtype="int32" if c in COUNT_COLUMNS else "int8")
    return df
