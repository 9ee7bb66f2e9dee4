"""Building note text and gold spans together: the ``NoteBuilder`` and shared phrasing.

Text is appended piece by piece; an entity's offsets are the running length when it is
appended, so ``text[start:end] == entity text`` holds by construction. Typos are only ever
introduced into non-entity pieces.
"""
from __future__ import annotations

import random
from datetime import datetime, timedelta

import numpy as np

from clinical_ml.synth.cohort import Admission
from clinical_ml.synth.vocab import CONDITIONS, DRUGS, LAB_ITEMS, PROCEDURES

SYMPTOMS = ("fever", "chills", "chest pain", "shortness of breath", "nausea", "vomiting", "abdominal pain",
            "headache", "cough", "diarrhea", "dysuria", "palpitations", "syncope", "melena",
            "leg swelling", "dizziness", "hematemesis", "weakness", "confusion")
ROUTE_WORDS = {"PO": ("PO", "by mouth", "orally", "p.o."), "IV": ("IV", "intravenously", "IV"),
               "IV DRIP": ("IV", "IV infusion"), "SC": ("SC", "subcutaneously", "SQ"),
               "IH": ("inhaled", "nebulized", "IH"), "PR": ("PR", "rectally")}
FREQ_EXPLAIN = {"BID": "2 times a day", "TID": "3 times a day", "daily": "once a day", "q6h": "every 6 hours",
                "q8h": "every 8 hours", "q12h": "every 12 hours", "q24h": "every 24 hours", "QID": "4 times a day"}
FORMS = {"TAB": "Tablet", "CAP": "Capsule"}
NUMBER_WORDS = {"1": "One (1)", "2": "Two (2)", "3": "Three (3)", "0.5": "One half (0.5)"}


SERVICE_NAMES = {"MED": ("MEDICINE",), "CMED": ("MEDICINE", "CARDIOLOGY"), "NSURG": ("NEUROSURGERY", "NEUROLOGY"),
                 "CSURG": ("CARDIOTHORACIC",), "SURG": ("SURGERY",)}


def _date(ts: int) -> datetime:
    return datetime(1970, 1, 1) + timedelta(seconds=int(ts))


def deid_date(ts: int) -> str:
    d = _date(ts)
    return f"[**{d.year}-{d.month}-{d.day}**]"


class NoteBuilder:
    """Accumulates text and entity spans; offsets are the running length, so they are exact."""

    def __init__(self, rng: random.Random):
        self.rng = rng
        self.parts: list[str] = []
        self.n = 0
        self.entities: list[dict] = []
        self.relations: list[dict] = []

    def t(self, s: str, typo: bool = False) -> None:
        if typo and self.rng.random() < 0.08:
            s = _typo(self.rng, s)
        self.parts.append(s)
        self.n += len(s)

    def e(self, s: str, label: str, negated: bool = False) -> int:
        self.entities.append({"start": self.n, "end": self.n + len(s), "label": label, "text": s,
                              "negated": negated})
        self.t(s)
        return len(self.entities) - 1

    def rel(self, typ: str, head: int, tail: int) -> None:
        self.relations.append({"type": typ, "head": head, "tail": tail})

    def choice(self, options):
        return self.rng.choice(options)

    def join(self, items: list, write, sep: str = ", ", last: str = " and ") -> None:
        for i, item in enumerate(items):
            if i:
                self.t(last if i == len(items) - 1 else sep)
            write(item)

    def med(self, key: str, dose: str, style: int | None = None) -> None:
        d = DRUGS[key]
        style = self.rng.randrange(4) if style is None else style  # 4 ("Sig:") only when asked
        name = d.drug if self.rng.random() < 0.5 or not d.note_names else self.choice(d.note_names)
        unit = d.unit if not (d.unit == "gm" and self.rng.random() < 0.5) else "g"
        tight = unit in ("mg", "g", "mcg") and self.rng.random() < 0.3
        dose_txt = f"{dose}{unit}" if tight else f"{dose} {unit}"
        has_dose = dose not in ("0", "")
        route = self.choice(ROUTE_WORDS.get(d.route, (d.route,)))
        freq = self.choice(d.freq)
        m = self.e(name, "MEDICATION")
        form = FORMS.get(d.form_unit)
        if style == 4 and has_dose and form and d.route == "PO":  # MIMIC discharge "Sig:" style
            self.t(" ")
            self.rel("DOSE_OF", self.e(dose_txt, "DOSE"), m)
            self.t(f" {form} Sig: {NUMBER_WORDS.get(d.form_val, d.form_val)} {form} ")
            self.rel("ROUTE_OF", self.e(d.route, "ROUTE"), m)
            self.t(" ")
            f = self.e(d.freq[0], "FREQUENCY")
            self.rel("FREQUENCY_OF", f, m)
            if d.freq[0] in FREQ_EXPLAIN:
                self.t(f" ({FREQ_EXPLAIN[d.freq[0]]})")
            return
        if style == 3:
            self.t(" (")
        else:
            self.t(" ")
        if has_dose:
            self.rel("DOSE_OF", self.e(dose_txt, "DOSE"), m)
            self.t(" ")
        if style != 2:
            self.rel("ROUTE_OF", self.e(route, "ROUTE"), m)
            self.t(" ")
        self.rel("FREQUENCY_OF", self.e(freq, "FREQUENCY"), m)
        if style == 3:
            self.t(")")

    def problem(self, key: str, negated: bool = False) -> None:
        self.e(self.choice(CONDITIONS[key].phrases), "PROBLEM", negated)

    def procedure(self, key: str, negated: bool = False) -> None:
        self.e(self.choice(PROCEDURES[key][1]), "PROCEDURE", negated)

    def doc(self) -> tuple[str, list[dict], list[dict]]:
        return "".join(self.parts), self.entities, self.relations


def _typo(rng, s: str) -> str:
    words = s.split(" ")
    idx = [i for i, w in enumerate(words) if len(w) > 4 and w.isalpha()]
    if not idx:
        return s
    i = idx[rng.randrange(len(idx))]
    w = words[i]
    j = rng.randrange(1, len(w) - 2)
    words[i] = w[:j] + w[j + 1] + w[j] + w[j + 2:]
    return " ".join(words)


NEGATION_LEADS = ("Denies ", "Pt denies ", "Patient denies ", "Denies any ", "No ", "No complaints of ",
                  "ROS negative for ", "Negative for ", "No evidence of ", "Reports no ")


def _negations(b: NoteBuilder, positives: set[str], k: int) -> None:
    """1-3 symptoms the patient does not have, with varied negation cues (gold: negated)."""
    pool = [s for s in SYMPTOMS if s not in positives]
    picks = [pool[i] for i in b.rng.sample(range(len(pool)), min(k, len(pool)))]
    style = b.rng.randrange(5)
    if style <= 2:
        lead = b.choice(NEGATION_LEADS)
        b.t(lead)
        b.join(picks, lambda s: b.e(s, "PROBLEM", True), last=" or " if lead.startswith("No") else " and ")
        b.t(". ")
    elif style == 3:
        for s in picks:
            b.t(b.choice(("Without ", "No ", "Denies ")))
            b.e(s, "PROBLEM", True)
            b.t(". ")
    else:
        for s in picks:
            b.e(s[0].upper() + s[1:], "PROBLEM", True)  # starts a sentence
            b.t(b.choice((" was ruled out. ", ": none. ", " - denies. ", " absent. ")))


def _positive_symptoms(adm: Admission) -> list[str]:
    out: list[str] = []
    for k in adm.acute:
        out += [s for s in CONDITIONS[k].symptoms if s not in out]
    return out


def _lab_value(adm: Admission, ch: str) -> str | None:
    v = adm.summary.get("first_" + ch)
    if v is None or np.isnan(v):
        return None
    dec = LAB_ITEMS[ch][4]
    return f"{v:.{dec}f}"
