"""Rule/dictionary baseline: lexicons + regular expressions for spans, NegEx for negation,
nearest-medication linking for relations.

It is the floor every learned extractor must clear. ``fit(docs)`` adds a gazetteer of the
training split's gold surface forms (a dictionary extractor built from the same data the
models see, so the comparison is fair rather than a straw man). FORM and DURATION have no seed
terms and no regex: they come only from that gazetteer (the synthetic notes do not annotate
them, so a rules extractor fitted on them finds none; one fitted on n2c2 learns "tablet").
"""
from __future__ import annotations

import re
from collections import Counter
from typing import Iterable

from clinical_ml.extraction.negation import apply_negation
from clinical_ml.extraction.spans import add_uncovered
from clinical_ml.notes.schema import ATTRIBUTE_RELATIONS, normalize, record_from_annotations

SEED_LEXICON: dict[str, tuple[str, ...]] = {
    "MEDICATION": (
        "aspirin", "heparin", "warfarin", "enoxaparin", "metoprolol", "lisinopril", "furosemide",
        "lasix", "insulin", "metformin", "atorvastatin", "simvastatin", "amlodipine",
        "vancomycin", "ceftriaxone", "piperacillin", "tazobactam", "levofloxacin", "ciprofloxacin",
        "azithromycin", "amoxicillin", "acetaminophen", "tylenol", "morphine", "hydromorphone",
        "oxycodone", "fentanyl", "propofol", "midazolam", "lorazepam", "haloperidol", "quetiapine",
        "pantoprazole", "omeprazole", "famotidine", "ondansetron", "prednisone", "prednisolone",
        "methylprednisolone", "hydrocortisone", "dexamethasone", "albuterol", "ipratropium",
        "potassium chloride", "magnesium sulfate", "norepinephrine", "vasopressin", "dopamine",
        "epinephrine", "phenylephrine", "amiodarone", "diltiazem", "digoxin", "clopidogrel",
        "levothyroxine", "gabapentin", "docusate", "senna", "lactulose", "nitroglycerin",
        "hydralazine", "labetalol", "carvedilol", "spironolactone", "allopurinol", "tacrolimus",
        "cyclosporine", "azathioprine", "methotrexate", "rituximab", "infliximab", "cisplatin",
        "doxorubicin", "cyclophosphamide", "ibuprofen", "naproxen", "tramadol", "meropenem",
        "cefazolin", "metronidazole", "fluconazole", "acyclovir", "ganciclovir", "oseltamivir",
    ),
    "PROBLEM": (
        "pneumonia", "sepsis", "hypertension", "diabetes", "diabetes mellitus", "fever",
        "chest pain", "shortness of breath", "dyspnea", "cough", "nausea", "vomiting",
        "diarrhea", "abdominal pain", "headache", "edema", "hypotension", "tachycardia",
        "bradycardia", "atrial fibrillation", "heart failure", "congestive heart failure",
        "acute kidney injury", "renal failure", "anemia", "hyperkalemia", "hypokalemia",
        "hyponatremia", "delirium", "confusion", "seizure", "stroke", "myocardial infarction",
        "copd", "asthma", "pulmonary embolism", "deep vein thrombosis", "cellulitis",
        "urinary tract infection", "pain", "weakness", "fatigue", "syncope", "rash",
        "bleeding", "hematuria", "jaundice", "ascites", "cirrhosis", "pancreatitis", "tumor",
        "mass", "lesion", "infection", "palpitations", "hemorrhage", "weight loss", "malaise",
    ),
    "TEST": (
        "chest x-ray", "cxr", "ct", "ct scan", "mri", "ultrasound", "echocardiogram", "ecg",
        "ekg", "electrocardiogram", "blood culture", "blood cultures", "urinalysis",
        "urine culture", "cbc", "complete blood count", "troponin", "creatinine", "lactate",
        "hemoglobin", "white blood cell count", "wbc", "platelet count", "sodium", "potassium",
        "glucose", "inr", "biopsy", "x-ray", "radiograph", "physical examination",
        "blood pressure", "heart rate", "temperature", "oxygen saturation", "abg",
        "arterial blood gas", "lumbar puncture", "colonoscopy", "endoscopy", "histopathology",
        "computed tomography", "magnetic resonance imaging", "pet", "bronchoscopy",
    ),
    "PROCEDURE": (
        "intubation", "extubation", "central line placement", "dialysis", "hemodialysis",
        "surgery", "resection", "transfusion", "cardiac catheterization", "thoracentesis",
        "paracentesis", "mechanical ventilation", "chemotherapy", "radiotherapy",
        "radiation therapy", "appendectomy", "cholecystectomy", "laparotomy", "laparoscopy",
        "excision", "amputation", "stent placement", "pci", "cabg", "tracheostomy",
        "ablation", "lobectomy", "craniotomy", "drainage", "debridement", "transplantation",
    ),
}

DOSE_RE = re.compile(
    r"\b\d+(?:[.,]\d+)?\s*(?:-\s*\d+(?:[.,]\d+)?\s*)?"
    r"(?:mg|mcg|µg|μg|g|gm|grams?|kg|units?|u|iu|ml|mL|meq|mEq|mmol|tabs?|tablets?|capsules?|puffs?|drops?)"
    r"(?:\s*/\s*(?:kg|day|d|h|hr|hour|min|m2|dose))*\b", re.I)
ROUTE_RE = re.compile(
    r"\b(?:p\.?o\.?|i\.?v\.?|i\.?m\.?|s\.?c\.?|subq|sq|subcutaneous(?:ly)?|intravenous(?:ly)?|"
    r"intramuscular(?:ly)?|oral(?:ly)?|by mouth|per os|inhaled|inhalation|nebulized|topical(?:ly)?|"
    r"sublingual(?:ly)?|transdermal|rectal(?:ly)?|per rectum|intrathecal(?:ly)?|ng tube|via ng)\b", re.I)
FREQ_RE = re.compile(
    r"\b(?:q\.?\s?d\.?|b\.?i\.?d\.?|t\.?i\.?d\.?|q\.?i\.?d\.?|q\.?h\.?s\.?|prn|p\.r\.n\.|"
    r"q\s?\d+\s?(?:h|hr|hrs|hours?)|every\s+\d+\s+(?:hours?|days?|weeks?)|"
    r"(?:once|twice|three times|four times)\s+(?:a|per)?\s*(?:day|daily|week|weekly)|"
    r"daily|nightly|weekly|at bedtime|as needed|per day|a day)\b", re.I)
ATTRIBUTE_PATTERNS = (("DOSE", DOSE_RE), ("ROUTE", ROUTE_RE), ("FREQUENCY", FREQ_RE))
# labels found by the gazetteer alone (no seeds: whatever the training gold calls them)
GAZETTEER_ONLY = ("FORM", "DURATION")
_SENT = re.compile(r";|\n|\.\s+[A-Z]")  # a sentence break, not "p.o." or "0.5"


class RulesExtractor:
    """Lexicon + regex extractor; ``extract(texts)`` returns annotation dicts."""

    kind = "rules"

    def __init__(self, lexicon: dict[str, Iterable[str]] | None = None, use_seed: bool = True):
        self.lexicon: dict[str, set[str]] = {lab: set() for lab in (*SEED_LEXICON, *GAZETTEER_ONLY)}
        if use_seed:
            for lab, terms in SEED_LEXICON.items():
                self.lexicon[lab].update(normalize(t) for t in terms)
        for lab, terms in (lexicon or {}).items():
            self.lexicon.setdefault(lab, set()).update(normalize(t) for t in terms)
        self._compile()

    def fit(self, docs: Iterable[dict], min_count: int = 1, max_words: int = 5) -> "RulesExtractor":
        """Add the gold surface forms of the training documents to the lexicon (labels with a
        lexicon only, FORM and DURATION included: DOSE/ROUTE/FREQUENCY stay regex)."""
        counts: Counter = Counter()
        for d in docs:
            for e in d["entities"]:
                if e["label"] in self.lexicon:
                    term = normalize(e["text"])
                    if 2 < len(term) and len(term.split()) <= max_words:
                        counts[(e["label"], term)] += 1
        # a surface form seen with several labels goes to its most frequent one
        best: dict[str, tuple[int, str]] = {}
        for (lab, term), n in counts.items():
            if n >= min_count and n > best.get(term, (0, ""))[0]:
                best[term] = (n, lab)
        for term, (_, lab) in best.items():
            self.lexicon[lab].add(term)
        self._compile()
        return self

    def _compile(self) -> None:
        self._patterns = []
        for lab, terms in self.lexicon.items():
            if not terms:
                continue
            alts = sorted((r"\s+".join(map(re.escape, t.split())) for t in terms), key=len, reverse=True)
            self._patterns.append((lab, re.compile(r"(?<!\w)(?:" + "|".join(alts) + r")(?!\w)", re.I)))

    def to_dict(self) -> dict:
        return {lab: sorted(t) for lab, t in self.lexicon.items()}

    @classmethod
    def from_dict(cls, d: dict) -> "RulesExtractor":
        return cls(lexicon=d, use_seed=False)

    def find_spans(self, text: str) -> list[dict]:
        return leftmost_longest(text, [*self._patterns, *ATTRIBUTE_PATTERNS])

    def extract_one(self, text: str) -> dict:
        ents = apply_negation(text, self.find_spans(text))
        rels = link_nearest(text, ents)
        return {"entities": ents, "relations": rels, "record": record_from_annotations(ents, rels)}

    def extract(self, texts: list[str]) -> list[dict]:
        return [self.extract_one(t or "") for t in texts]


def leftmost_longest(text: str, patterns) -> list[dict]:
    """Entities of ``(label, regex)`` matches: leftmost first, the longest at a start, never overlapping."""
    cands = sorted(((m.start(), m.end(), lab) for lab, pat in patterns for m in pat.finditer(text)),
                   key=lambda c: (c[0], -(c[1] - c[0])))
    out, last = [], -1
    for s, e, lab in cands:
        if s >= last and e > s:
            out.append({"start": s, "end": e, "label": lab, "text": text[s:e], "negated": False})
            last = e
    return out


def attribute_spans(text: str) -> list[dict]:
    """DOSE, ROUTE and FREQUENCY mentions of the patterns."""
    return leftmost_longest(text, ATTRIBUTE_PATTERNS)


def add_attributes(text: str, entities: list[dict]) -> list[dict]:
    """``entities`` plus the pattern attributes that overlap none of them and have a
    MEDICATION of ``entities`` in their sentence (a "100 mg/dL" of a lab line is no dose)."""
    meds = [e for e in entities if e["label"] == "MEDICATION"]
    return add_uncovered(entities, [a for a in attribute_spans(text) if nearest_medication(text, a, meds) is not None])


def nearest_medication(text: str, ent: dict, meds: list[dict], max_chars: int = 80) -> int | None:
    """Index in ``meds`` of the medication ``ent`` belongs to: the nearest one in its sentence
    within ``max_chars``, preferring the one before it, as in "metoprolol 25 mg PO BID"."""
    best, best_d = None, None
    for j, m in enumerate(meds):
        lo, hi = (m["end"], ent["start"]) if m["end"] <= ent["start"] else (ent["end"], m["start"])
        if hi < lo or hi - lo > max_chars or _SENT.search(text[lo:hi]):
            continue
        d = (hi - lo) + (0 if m["end"] <= ent["start"] else 25)  # prefer the preceding drug
        if best_d is None or d < best_d:
            best, best_d = j, d
    return best


def link_nearest(text: str, entities: list[dict], max_chars: int = 80) -> list[dict]:
    """Attach each attribute (DOSE, ROUTE, FREQUENCY, FORM, DURATION) to its nearest
    MEDICATION (``nearest_medication``)."""
    meds = [i for i, e in enumerate(entities) if e["label"] == "MEDICATION"]
    med_ents = [entities[i] for i in meds]
    rels = []
    for i, ent in enumerate(entities):
        if ent["label"] not in ATTRIBUTE_RELATIONS or not meds:
            continue
        best = nearest_medication(text, ent, med_ents, max_chars)
        if best is not None:
            rels.append({"type": ATTRIBUTE_RELATIONS[ent["label"]], "head": i, "tail": meds[best]})
    return rels
