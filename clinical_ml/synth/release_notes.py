"""Release-density filler notes (the release's NOTEEVENTS category mix) and re-written orders.

Filler notes are short template text in each category's shape (ECG read, echo report, nursing
shift note, ...). They are volume, not training data: their gold lines have no spans and
``"annotated_labels": []`` ("nothing annotated here"), so ``build-notes`` leaves them out of the
training splits like notes without gold, while every NOTEEVENTS row still has its gold line.
Extra PRESCRIPTIONS rows are further re-orders of the admission's own drugs.
"""
from __future__ import annotations

import json
import random

import numpy as np

from clinical_ml.notes.schema import record_from_annotations
from clinical_ml.synth import tables
from clinical_ml.synth.cohort import DAY, Patient
from clinical_ml.synth.notebuilder import deid_date
from clinical_ml.synth.release import NOTE_RATES, RATES, Skeleton, filler_counts, hosp_weight
from clinical_ml.synth.vocab import DRUGS

NOTE_COLS = ("SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY", "DESCRIPTION",
             "CGID", "ISERROR", "TEXT")
IN_ICU = {"Nursing/other", "Nursing", "Physician", "Respiratory", "Nutrition", "Rehab Services"}
NO_TIME = {"ECG", "Echo", "Discharge summary"}  # the release gives these a CHARTDATE only
PER_ADMISSION = {"Discharge summary"}  # one per admission (the benchmark's), whatever its length
WITH_CGID = {"Nursing", "Physician", "Respiratory", "Nutrition", "General", "Rehab Services", "Social Work",
             "Case Management", "Pharmacy", "Consult"}
DESCRIPTIONS = {
    "Nursing/other": ("Report",), "Radiology": ("CHEST (PORTABLE AP)", "CHEST (PA & LAT)", "CT HEAD W/O CONTRAST",
                                               "CT ABDOMEN W/CONTRAST", "RENAL U.S.", "PORTABLE ABDOMEN"),
    "Nursing": ("Nursing Progress Note", "Nursing Transfer Note", "Generic Note"), "ECG": ("Report",),
    "Physician": ("Physician Resident Progress Note", "Intensivist Note", "Physician Attending Progress Note"),
    "Discharge summary": ("Addendum",), "Echo": ("Report",), "Respiratory": ("Respiratory Care Shift Note",),
    "Nutrition": ("Nutrition Progress Note",), "General": ("Generic Note",),
    "Rehab Services": ("Physical Therapy Progress Note", "Occupational Therapy Note"),
    "Social Work": ("Social Work Progress Note",), "Case Management": ("Case Management Progress Note",),
    "Pharmacy": ("Pharmacy Note",), "Consult": ("Physician Consult Note",),
}
_EMPTY = ',"entities":[],"relations":[],"record":' + json.dumps(
    record_from_annotations([], []), separators=(",", ":")) + ',"annotated_labels":[]}'

RHYTHM = ("Sinus rhythm", "Sinus tachycardia", "Sinus bradycardia", "Atrial fibrillation with rapid ventricular response",
          "Atrial fibrillation", "Sinus rhythm with premature ventricular contractions")
ECG_MORE = ("Left axis deviation.", "Normal axis.", "Nonspecific ST-T wave changes.", "Low QRS voltage.",
            "Left ventricular hypertrophy.", "Right bundle-branch block.", "Prolonged QTc interval.")
CHEST = ("Lungs are clear.", "Bibasilar atelectasis.", "Small bilateral pleural effusions.",
         "Mild pulmonary vascular congestion.", "Right lower lobe opacity.", "Lines and tubes unchanged in position.")
NEURO = ("Alert and oriented x3.", "Sedated, arousable to voice.", "Follows commands, MAE.", "Lethargic, oriented x1.")
CV = ("HR 80s-90s SR, no ectopy.", "Afib 100s-110s, rate controlled.", "SBP 100s-120s.", "Hemodynamically stable.")
RESP = ("LS clear, sats mid 90s on 2L NC.", "Coarse BS, suctioned for thick secretions.", "On vent, no changes made.",
        "RA, no distress.")
GIGU = ("Abd soft, +BS. Foley draining clear yellow urine.", "Tolerating TF at goal. UO adequate.",
        "NPO. UO 30-50 cc/hr.", "BM x1, guaiac neg.")
PLAN = ("Continue current plan of care.", "Monitor closely, update team with changes.", "Wean as tolerated.",
        "Family updated.", "Possible transfer to floor tomorrow.")


def _words(r: random.Random, *pools: tuple[str, ...]) -> str:
    return " ".join(r.choice(p) for p in pools)


ECG_COMPARE = ("no change", "rate is faster", "no significant change")
ECHO_WHY = ("Shortness of breath", "Murmur", "Hypotension")
ECHO_END = ("Normal study.", "Mild mitral regurgitation.", "Moderate pulmonary hypertension.")
LVEF = (">55", "40-45", "30-35", "20-25")
SHIFT = ("NPN 7a-7p", "NPN 7p-7a", "Nursing progress note")
VENT = ("RSBI 60.", "Plan to wean.", "MDIs given as ordered.")
VISIT = ("Met with patient and family.", "Chart reviewed.", "Followed up as requested.")


def note_text(r: random.Random, category: str, ts: int, age: int, sex: str) -> str:
    """A short note in the category's usual shape. Its mentions are not span-annotated: the
    gold line says so (``annotated_labels: []``)."""
    who = f"{age} yo {'M' if sex == 'M' else 'F'}"
    c = r.choice
    if category == "ECG":
        return f"{c(RHYTHM)}. {c(ECG_MORE)} Compared to the previous tracing {c(ECG_COMPARE)}.\n"
    if category == "Echo":
        return (f"PATIENT/TEST INFORMATION:\nIndication: {c(ECHO_WHY)}\nStatus: Inpatient\nTest: TTE (Complete)\n"
                f"INTERPRETATION:\nLEFT VENTRICLE: Normal LV wall thickness. LVEF {c(LVEF)}%.\n"
                f"Conclusions:\n{c(ECHO_END)}\n")
    if category == "Radiology":
        return (f"{deid_date(ts)}\n FINAL REPORT\n INDICATION: {who}, evaluate.\n FINDINGS: {_words(r, CHEST, CHEST)}\n"
                f" IMPRESSION: {c(CHEST)}\n")
    if category in ("Nursing/other", "Nursing"):
        return (f"{c(SHIFT)}\nNeuro: {c(NEURO)}\nCV: {c(CV)}\nResp: {c(RESP)}\nGI/GU: {c(GIGU)}\n"
                f"Plan: {c(PLAN)}\n")
    if category == "Physician":
        return (f"Chief Complaint: {who}\n24 Hour Events:\n{c(CV)} {c(RESP)}\nPhysical Examination\n"
                f"{c(NEURO)}\nAssessment and Plan\n{c(PLAN)}\nICU Care\nCode status: Full code\n")
    if category == "Respiratory":
        return f"Respiratory Care\n{c(RESP)} {c(VENT)}\n"
    if category == "Discharge summary":
        return f"Addendum:\n{c(PLAN)}\n"
    return f"{category}\n{who}. {c(VISIT)} {c(PLAN)}\n"


def _bench_notes(bench: dict, hadm: np.ndarray) -> dict[str, np.ndarray]:
    """Benchmark notes per admission, by category."""
    pos = {h: i for i, h in enumerate(hadm.tolist())}
    out: dict[str, np.ndarray] = {}
    for h, c in zip(bench.get("HADM_ID", []), bench.get("CATEGORY", [])):
        out.setdefault(c, np.zeros(len(hadm), dtype=np.int64))[pos[h]] += 1
    return out


def notes(rng, sk: Skeleton, pts: list[Patient], bench: dict) -> tuple[dict, list[str]]:
    """NOTEEVENTS filler columns (no ROW_ID) and their gold lines, in the same order."""
    have = _bench_notes(bench, sk.a_hadm)
    w = hosp_weight(sk)
    counts = np.stack([filler_counts(rng, NOTE_RATES[c] * (1.0 if c in PER_ADMISSION else w), have.get(c, 0))
                       for c in NOTE_RATES], axis=1)
    r = random.Random(int(rng.integers(2 ** 62)))
    rows, gold = [], []
    adms = [(p, a) for p in pts for a in p.admissions]
    for ai, (p, a) in enumerate(adms):
        for ci in np.flatnonzero(counts[ai]):
            cat = tuple(NOTE_RATES)[ci]
            for _ in range(int(counts[ai, ci])):
                if cat in IN_ICU:
                    s = a.stays[r.randrange(len(a.stays))]
                    t = s.intime + int(r.random() * (s.outtime - s.intime))
                else:
                    t = a.admittime + int(r.random() * (a.dischtime - a.admittime))
                t = t // 60 * 60
                timed = cat not in NO_TIME
                text = note_text(r, cat, t, min(int(a.age), 90), p.gender)
                rows.append((p.subject_id, a.hadm_id, t // DAY * DAY, t if timed else None,
                             t + r.randrange(5, 120) * 60 if timed else None, cat, r.choice(DESCRIPTIONS[cat]),
                             float(r.choice(tables.CGIDS)) if cat in WITH_CGID else np.nan, None, text))
                gold.append(f'{{"subject_id":{p.subject_id},"hadm_id":{a.hadm_id},"category":"{cat}"{_EMPTY}')
    if not rows:
        return {}, []
    cols = tables.columns(rows, NOTE_COLS)
    for k in ("CHARTDATE", "CHARTTIME", "STORETIME"):
        cols[k] = tables.dt(cols[k])
    cols["CGID"] = np.array(cols["CGID"], dtype=float)
    return cols, gold


_RX = {  # PRESCRIPTIONS columns from (drug, dose), spelled as tables.prescriptions spells them
    "DRUG_TYPE": lambda d, dose: d.drug_type, "DRUG": lambda d, dose: d.drug, "DRUG_NAME_POE": lambda d, dose: d.drug,
    "DRUG_NAME_GENERIC": lambda d, dose: d.generic or None, "FORMULARY_DRUG_CD": lambda d, dose: d.code,
    "GSN": lambda d, dose: d.gsn or None, "NDC": lambda d, dose: d.ndc, "PROD_STRENGTH": lambda d, dose: d.strength,
    "DOSE_VAL_RX": lambda d, dose: dose, "DOSE_UNIT_RX": lambda d, dose: d.unit,
    "FORM_VAL_DISP": lambda d, dose: d.form_val, "FORM_UNIT_DISP": lambda d, dose: d.form_unit,
    "ROUTE": lambda d, dose: d.route,
}


def _icu_of(sk: Skeleton, adm: np.ndarray, start: np.ndarray) -> np.ndarray:
    """ICUSTAY_ID of the admission's stay whose days contain ``start`` (NaN: on the floor)."""
    first = np.searchsorted(sk.s_adm, adm)
    icu = np.full(len(adm), np.nan)
    for j in range(int(sk.s_nstays.max(initial=0))):
        s = np.minimum(first + j, len(sk.s_adm) - 1)
        inside = (sk.s_adm[s] == adm) & (sk.s_in[s] // DAY * DAY <= start) & (start <= sk.s_out[s])
        icu = np.where(np.isnan(icu) & inside, sk.s_icustay[s].astype(float), icu)
    return icu


def prescriptions(rng, sk: Skeleton, adms: list, bench: np.ndarray) -> dict:
    """More re-orders of each admission's drugs (dose changes, renewals), as the release has."""
    flat = [(ai, DRUGS[k], dose) for ai, a in enumerate(adms) for k, dose in a.drugs]
    if not flat:
        return {}
    owner = np.array([f[0] for f in flat])
    first = np.searchsorted(owner, np.arange(len(adms)))
    size = np.bincount(owner, minlength=len(adms))
    n = filler_counts(rng, RATES["PRESCRIPTIONS"] * hosp_weight(sk), bench) * (size > 0)
    unit = np.repeat(np.arange(len(adms)), n)
    if not len(unit):
        return {}
    pick = first[unit] + (rng.random(len(unit)) * size[unit]).astype(np.int64)
    los = np.maximum((sk.a_out - sk.a_in) / DAY, 0.5)[unit]
    start = (sk.a_in[unit] + (rng.random(len(unit)) * los * DAY).astype(np.int64)) // DAY * DAY
    end = start + rng.integers(1, np.maximum(2, los.astype(np.int64) + 2)) * DAY
    cols = {"SUBJECT_ID": sk.a_subject[unit], "HADM_ID": sk.a_hadm[unit], "ICUSTAY_ID": _icu_of(sk, unit, start),
            "STARTDATE": start, "ENDDATE": end}
    for name, get in _RX.items():
        cols[name] = np.array([get(d, dose) for _, d, dose in flat], dtype=object)[pick]
    return cols
