"""A tiny template note generator with exact gold spans, for tests and smoke runs that must not
depend on the full synthetic MIMIC-III (``clinical-ml synth``). Not a substitute for it: the
vocabulary is small and the sentences are formulaic."""
from __future__ import annotations

import random

from clinical_ml.notes.datasets import make_document
from clinical_ml.notes.schema import ATTRIBUTE_RELATIONS

MEDS = ["aspirin", "metoprolol", "furosemide", "heparin", "vancomycin", "insulin glargine",
        "lisinopril", "pantoprazole", "acetaminophen", "ceftriaxone"]
DOSES = ["81 mg", "25 mg", "40 mg", "5000 units", "1 g", "10 units", "500 mg", "2 g"]
ROUTES = ["PO", "IV", "SC", "orally", "intravenously"]
FREQS = ["daily", "BID", "q8h", "TID", "every 12 hours", "at bedtime"]
PROBLEMS = ["chest pain", "pneumonia", "atrial fibrillation", "hypertension", "fever",
            "shortness of breath", "acute kidney injury", "nausea", "sepsis", "delirium"]
TESTS = ["chest x-ray", "ECG", "blood cultures", "CT scan", "echocardiogram", "troponin"]
PROCS = ["intubation", "central line placement", "hemodialysis", "thoracentesis", "transfusion"]
CATEGORIES = ["Discharge summary", "Nursing", "Physician"]


class _Builder:
    def __init__(self) -> None:
        self.parts: list[str] = []
        self.pos = 0
        self.entities: list[dict] = []
        self.relations: list[dict] = []

    def add(self, s: str, label: str | None = None, negated: bool = False) -> int | None:
        start = self.pos
        self.parts.append(s)
        self.pos += len(s)
        if label is None:
            return None
        self.entities.append({"start": start, "end": self.pos, "label": label, "text": s,
                              "negated": negated})
        return len(self.entities) - 1

    def text(self) -> str:
        return "".join(self.parts)


def toy_document(rng: random.Random, doc_id: int, subject_id: int | None = None) -> dict:
    b = _Builder()
    b.add(rng.choice(["Patient is a ", "Pt is a ", "HPI: "]) + f"{rng.randint(25, 90)} y/o admitted with ")
    b.add(rng.choice(PROBLEMS), "PROBLEM")
    b.add(". ")
    if rng.random() < 0.6:
        b.add(rng.choice(["Denies ", "No ", "Negative for "]))
        b.add(rng.choice(PROBLEMS), "PROBLEM", negated=True)
        b.add(". ")
    b.add(rng.choice(["Started on ", "Medications: ", "Continue "]))
    for k in range(rng.randint(1, 3)):
        if k:
            b.add(", ")
        med = b.add(rng.choice(MEDS), "MEDICATION")
        for attr, pool in (("DOSE", DOSES), ("ROUTE", ROUTES), ("FREQUENCY", FREQS)):
            if rng.random() < 0.8:
                b.add(" ")
                a = b.add(rng.choice(pool), attr)
                b.relations.append({"type": ATTRIBUTE_RELATIONS[attr], "head": a, "tail": med})
    b.add(". ")
    b.add(rng.choice(["Obtained ", "Ordered ", "Plan: "]))
    b.add(rng.choice(TESTS), "TEST")
    b.add(rng.choice([" which was unremarkable. ", ". "]))
    if rng.random() < 0.5:
        b.add("Underwent ")
        b.add(rng.choice(PROCS), "PROCEDURE")
        b.add(". ")
    return make_document(doc_id, b.text(), b.entities, b.relations,
                         category=rng.choice(CATEGORIES),
                         subject_id=subject_id if subject_id is not None else doc_id)


def toy_documents(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    return [toy_document(rng, i + 1, subject_id=1000 + i // 2) for i in range(n)]
