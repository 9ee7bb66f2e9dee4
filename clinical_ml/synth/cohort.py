"""Patients, admissions and ICU stays: the causal skeleton of the synthetic MIMIC-III.

Each admission has one or two acute conditions and a latent severity ``s`` (higher = sicker)
driven by the conditions, age and chronic disease burden. Severity then causes everything a
model is asked to predict: in-hospital death (logistic in ``s`` and condition risks, ~11%),
ICU length of stay (log-normal, longer when sicker), discharge destination, death after
discharge and 30-day readmission. Physiology (physiology.py) is drawn from the same ``s``
trajectory, so vitals and labs carry the signal and a good model can learn it.

Periods (``Period``): by default one period, 2100-2195, CareVue or MetaVision per patient. With
eras (``clinical-ml synth --later-fraction F``) the early period is the CareVue era (histories
end before ``T2200``) and the later one the MetaVision era from ``T2200``: MetaVision itemids and
charting for everyone, an older case mix and a severity shift, so outcomes shift with them, as
MIMIC-III's 2008 CareVue -> MetaVision switch changed its data.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clinical_ml.synth.vocab import ACUTE, CHRONIC, CONDITIONS

HOUR = 3600
DAY = 86400
YEAR = int(365.2425 * DAY)
T2100 = 4102444800  # 2100-01-01 00:00:00 UTC, seconds since epoch
T2200 = 7258118400  # 2200-01-01 00:00:00 UTC: where the later (MetaVision-era) period starts
MORTALITY_INTERCEPT = -3.85  # calibrated so in-hospital mortality is ~11% (see bench/report)

ICU_WARDS = {"MICU": (50, 52), "SICU": (33, 23), "CCU": (7, 57), "CSRU": (14, 15), "TSICU": (12, 57)}
ETHNICITY = (("WHITE", 0.70), ("BLACK/AFRICAN AMERICAN", 0.09), ("HISPANIC OR LATINO", 0.03),
             ("ASIAN", 0.03), ("UNKNOWN/NOT SPECIFIED", 0.08), ("OTHER", 0.03),
             ("UNABLE TO OBTAIN", 0.02), ("PATIENT DECLINED TO ANSWER", 0.02))
INSURANCE = (("Medicare", 0.52), ("Private", 0.32), ("Medicaid", 0.10), ("Government", 0.04), ("Self Pay", 0.02))
LANGUAGE = (("ENGL", 0.62), (None, 0.30), ("SPAN", 0.04), ("RUSS", 0.02), ("PTUN", 0.02))
RELIGION = (("CATHOLIC", 0.35), ("NOT SPECIFIED", 0.20), ("UNOBTAINABLE", 0.12), ("PROTESTANT QUAKER", 0.12),
            ("JEWISH", 0.08), ("OTHER", 0.05), (None, 0.05), ("EPISCOPALIAN", 0.03))
MARITAL = (("MARRIED", 0.45), ("SINGLE", 0.22), ("WIDOWED", 0.14), ("DIVORCED", 0.06), (None, 0.12), ("SEPARATED", 0.01))
ACUTE_WEIGHTS = np.array([CONDITIONS[k].weight for k in ACUTE]) / sum(CONDITIONS[k].weight for k in ACUTE)
SEVERITY_OFFSET = {"sepsis": 0.45, "resp_failure": 0.55, "stroke": 0.35, "liver": 0.35, "aki": 0.15,
                   "ami": 0.0, "pneumonia": 0.1, "gi_bleed": 0.0, "chf": -0.05, "copd_exac": -0.15,
                   "dka": -0.3, "cabg": -0.7}
SECOND_ACUTE = {"sepsis": ("aki", "pneumonia", "resp_failure"), "pneumonia": ("resp_failure", "sepsis"),
                "chf": ("aki", "ami"), "ami": ("chf",), "liver": ("gi_bleed", "aki"), "gi_bleed": ("liver",),
                "copd_exac": ("pneumonia", "resp_failure"), "stroke": ("pneumonia",)}


@dataclass(frozen=True)
class Period:
    """Who is admitted when and charted how. ``DEFAULT`` reproduces the original generator draw
    for draw (its output must not change); ``EARLY``/``LATER`` are the two eras."""

    name: str
    first_admit: int            # epoch seconds: the earliest first admission
    span_years: float           # first admissions fall in [first_admit, first_admit + span)
    age_mean: float
    age_sd: float
    p_old: float                # share older than 89 (DOB shifted ~300 years back)
    severity_shift: float       # added to every admission's latent severity
    dbsource: str | None        # None: CareVue 55% / MetaVision 45% per patient
    until: int | None = None    # no admission at or after this time (the era ends)


DEFAULT = Period("default", T2100, 95, 64, 16, 0.045, 0.0, None)
EARLY = Period("early", T2100, 95, 64, 16, 0.045, 0.0, "carevue", until=T2200)
LATER = Period("later", T2200, 4, 71, 14, 0.09, 0.35, "metavision")


def pick(rng: np.random.Generator, options) -> object:
    vals, probs = zip(*options)
    p = np.asarray(probs, dtype=float)
    return vals[int(rng.choice(len(vals), p=p / p.sum()))]


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class Stay:
    icustay_id: int
    dbsource: str
    first_careunit: str
    last_careunit: str
    intime: int
    outtime: int
    s0: float               # severity at ICU admission
    dies: bool               # death at the end of this stay
    transfer_at: int | None = None  # ICU-to-ICU transfer time (FIRST != LAST careunit)
    arterial: bool = False
    intubated: bool = False

    @property
    def los_days(self) -> float:
        return (self.outtime - self.intime) / DAY


@dataclass
class Admission:
    hadm_id: int
    subject_id: int
    admittime: int
    dischtime: int
    deathtime: int | None
    admission_type: str
    admission_location: str
    discharge_location: str
    acute: list[str]
    chronic: list[str]
    severity: float
    age: float
    stays: list[Stay] = field(default_factory=list)
    diagnoses: list[str] = field(default_factory=list)   # ICD-9 codes, SEQ_NUM order
    dx_keys: list[str] = field(default_factory=list)     # condition keys, same order
    procedures: list[str] = field(default_factory=list)  # procedure keys
    drugs: list[tuple[str, str]] = field(default_factory=list)  # (drug key, dose)
    service: str = "MED"
    ed: bool = True
    summary: dict = field(default_factory=dict)          # lab/vital summaries for notes


@dataclass
class Patient:
    subject_id: int
    gender: str
    dob: int
    age0: float
    old: bool                # > 89: DOB shifted ~300 years back
    chronic: list[str]
    dbsource: str
    ethnicity: str
    insurance: str
    language: str | None
    religion: str | None
    marital: str | None
    admissions: list[Admission] = field(default_factory=list)
    dod: int | None = None
    dod_hosp: int | None = None
    period: Period = DEFAULT


class Ids:
    """Id counters. Each chunk draws from its own reserved ranges (``for_chunk``), so chunks can
    be simulated in any process and order and still get the same, non-colliding ids."""

    PER_PATIENT = {"subject": 3, "hadm": 8 * 3, "icustay": 16 * 3, "order": 16 * 400}

    def __init__(self, subject: int = 0, hadm: int = 100000, icustay: int = 200000, order: int = 1000000):
        self.subject, self.hadm, self.icustay, self.order = subject, hadm, icustay, order

    @classmethod
    def for_chunk(cls, ci: int, chunk: int) -> "Ids":
        k = ci * chunk
        p = cls.PER_PATIENT
        return cls(k * p["subject"], 100000 + k * p["hadm"], 200000 + k * p["icustay"], 1000000 + k * p["order"])

    def next_subject(self, rng) -> int:
        self.subject += int(rng.integers(1, 4))
        return self.subject

    def next_hadm(self, rng) -> int:
        self.hadm += int(rng.integers(1, 4))
        return self.hadm

    def next_icustay(self, rng) -> int:
        self.icustay += int(rng.integers(1, 4))
        return self.icustay


def make_patient(rng: np.random.Generator, ids: Ids, period: Period = DEFAULT) -> tuple[Patient, int]:
    sid = ids.next_subject(rng)
    old = rng.random() < period.p_old
    age0 = (float(np.clip(rng.normal(period.age_mean, period.age_sd), 18.2, 89.5)) if not old
            else float(rng.uniform(90, 97)))
    start = period.first_admit + int(rng.uniform(0, period.span_years) * YEAR) + int(rng.integers(0, DAY))
    # ages > 89 are hidden by shifting the DOB: they appear ~300 years old
    shown_age = age0 if not old else 300 + rng.uniform(0, 10)
    dob = (start - int(shown_age * YEAR)) // DAY * DAY
    chronic = []
    for k in CHRONIC:
        p = CONDITIONS[k].prevalence * np.clip(0.25 + 1.15 * (age0 - 18) / 60, 0.2, 1.8)
        if k == "htn" and "dm" in chronic:
            p *= 1.4
        if rng.random() < p:
            chronic.append(k)
    gender = "M" if rng.random() < 0.56 else "F"
    dbsource = "carevue" if rng.random() < 0.55 else "metavision"  # drawn in every period: same stream
    return Patient(sid, gender, dob, age0, old, chronic, period.dbsource or dbsource,
                   pick(rng, ETHNICITY), pick(rng, INSURANCE), pick(rng, LANGUAGE), pick(rng, RELIGION),
                   pick(rng, MARITAL), period=period), start


def _choose_acute(rng, prev: Admission | None, readmit30: bool, elective: bool) -> list[str]:
    if elective:
        first = "cabg" if rng.random() < 0.8 else "ami"
    elif readmit30 and prev is not None and rng.random() < 0.5:
        first = prev.acute[0] if prev.acute[0] != "cabg" else "chf"
    else:
        first = ACUTE[int(rng.choice(len(ACUTE), p=ACUTE_WEIGHTS))]
        if first == "cabg" and rng.random() < 0.5:
            first = "ami"
    acute = [first]
    if first in SECOND_ACUTE and rng.random() < 0.3:
        opts = SECOND_ACUTE[first]
        acute.append(opts[int(rng.integers(len(opts)))])
    return acute


def mortality_logit(acute: list[str], chronic: list[str], severity: float, age: float) -> float:
    risk = sum(CONDITIONS[k].risk for k in acute) + sum(CONDITIONS[k].risk for k in chronic)
    return MORTALITY_INTERCEPT + 1.35 * severity + 0.5 * risk + 0.025 * (age - 65)


def make_admission(rng, ids: Ids, pt: Patient, admit: int, age: float, prev: Admission | None,
                   readmit30: bool) -> Admission:
    elective = (readmit30 and rng.random() < 0.25) or (prev is None and rng.random() < 0.10)
    acute = _choose_acute(rng, prev, readmit30, elective)
    elective = elective and acute[0] == "cabg"
    burden = sum(k in pt.chronic for k in ("chf_chronic", "ckd", "copd", "afib", "dm"))
    severity = float(rng.normal(0, 1) + sum(SEVERITY_OFFSET[k] for k in acute)
                     + 0.018 * (age - 65) + 0.15 * burden + (0.3 if readmit30 else 0.0))
    if pt.period.severity_shift:
        severity += pt.period.severity_shift
    dies = bool(rng.random() < sigmoid(mortality_logit(acute, pt.chronic, severity, age)))
    cond = CONDITIONS[acute[0]]
    adm_type = "ELECTIVE" if elective else ("URGENT" if rng.random() < 0.07 else "EMERGENCY")
    location = ("PHYS REFERRAL/NORMAL DELI" if elective else
                pick(rng, (("EMERGENCY ROOM ADMIT", 0.62), ("TRANSFER FROM HOSP/EXTRAM", 0.22),
                           ("CLINIC REFERRAL/PREMATURE", 0.12), ("TRANSFER FROM SKILLED NUR", 0.04))))
    ed = location == "EMERGENCY ROOM ADMIT"
    hadm = Admission(ids.next_hadm(rng), pt.subject_id, admit, 0, None, adm_type, location, "",
                     acute, list(pt.chronic), severity, age, service=cond.service, ed=ed)
    # timeline: pre-ICU, ICU stay(s), floor
    pre = (rng.uniform(2, 6) * HOUR) if elective else rng.exponential(0.5 * DAY) + 1 * HOUR
    t = admit + int(pre)
    n_stays = 2 if (rng.random() < 0.10 and not dies) else 1
    for j in range(n_stays):
        s0 = severity if j == 0 else severity * 0.7 + 0.3
        median_days = np.exp(0.55 + 0.38 * s0 + (0.4 if "resp_failure" in acute else 0.0)
                             - (0.5 if elective else 0.0))
        los = float(np.clip(rng.lognormal(np.log(median_days), 0.85), 0.15, 120)) * DAY
        last = j == n_stays - 1
        die_here = dies and last and rng.random() < 0.82
        unit = cond.careunit if not (j and rng.random() < 0.5) else "MICU"
        if cond.careunit == "MICU" and rng.random() < 0.12:
            unit = "SICU" if rng.random() < 0.5 else "TSICU"
        stay = Stay(ids.next_icustay(rng), pt.dbsource, unit, unit, t, t + int(los), s0, die_here)
        if rng.random() < 0.05 and los > DAY:  # ICU-to-ICU transfer: benchmark cohort drops these
            stay.last_careunit = "MICU" if unit != "MICU" else "CCU"
            stay.transfer_at = t + int(los * rng.uniform(0.3, 0.7))
        stay.arterial = s0 > 0.4 or elective or rng.random() < 0.2
        stay.intubated = ("resp_failure" in acute or elective or s0 > 1.6
                          or (acute[0] == "stroke" and s0 > 0.8))
        hadm.stays.append(stay)
        t = stay.outtime
        if die_here:
            break
        t += int(rng.lognormal(np.log(2.5), 0.6) * DAY) if not last else 0
    if hadm.stays[-1].dies:
        hadm.dischtime = hadm.stays[-1].outtime
    else:
        floor = rng.lognormal(np.log(2.8 if not dies else 4.0), 0.7) * DAY
        hadm.dischtime = t + int(floor)
    if dies:
        hadm.deathtime = hadm.dischtime
        hadm.discharge_location = "DEAD/EXPIRED"
    else:
        p_home = float(sigmoid(1.2 - 0.6 * severity - 0.05 * (age - 65)))
        hadm.discharge_location = pick(rng, (("HOME", p_home * 0.6), ("HOME HEALTH CARE", p_home * 0.4),
                                             ("SNF", (1 - p_home) * 0.55), ("REHAB/DISTINCT PART HOSP", (1 - p_home) * 0.3),
                                             ("LONG TERM CARE HOSPITAL", (1 - p_home) * 0.15)))
    return hadm


def make_history(rng, ids: Ids, pt: Patient, start: int) -> None:
    """Admissions until death or the end of follow-up; readmission risk follows severity."""
    admit, prev, readmit30 = start, None, False
    for _ in range(8):
        if pt.period.until is not None and admit >= pt.period.until:
            return  # the era ended: this patient is not seen again
        age = pt.age0 + (admit - start) / YEAR
        hadm = make_admission(rng, ids, pt, admit, age, prev, readmit30)
        pt.admissions.append(hadm)
        if hadm.deathtime is not None:
            pt.dod = pt.dod_hosp = hadm.deathtime
            return
        sicker = hadm.discharge_location not in ("HOME", "HOME HEALTH CARE")
        if rng.random() < sigmoid(-3.0 + 0.9 * hadm.severity + 0.03 * (age - 65) + 0.4 * sicker):
            pt.dod = hadm.dischtime + int(rng.uniform(1, 365) * DAY)  # dies after discharge
            if rng.random() < 0.15:  # sometimes readmitted first and dies in a later admission
                pt.dod = None
            else:
                return
        burden = sum(k in pt.chronic for k in ("chf_chronic", "ckd", "copd"))
        p30 = sigmoid(-2.6 + 0.45 * hadm.severity + 0.35 * burden + 0.5 * sicker)
        if rng.random() < p30:
            gap, readmit30 = rng.uniform(1, 30) * DAY, True
        elif rng.random() < 0.22:
            gap, readmit30 = rng.uniform(31, 1500) * DAY, False
        else:
            return
        prev, admit = hadm, hadm.dischtime + int(gap)
