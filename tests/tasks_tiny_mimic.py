"""A hand-made tiny MIMIC-III (release layout, exact schema columns) whose task answers are known.

Each subject is one edge case; ``EXPECTED`` in the tests spells out the right answers.
Times are hours after T0 = 2150-01-01 00:00. Subject ids are >= 900001 so no subject is in the
published mimic3-benchmarks split lists (the hash split applies).
"""
from __future__ import annotations

import csv
import gzip
from datetime import datetime, timedelta
from pathlib import Path

from clinical_ml.mimic.schema import table as table_schema

T0 = datetime(2150, 1, 1)


def ts(hours: float) -> str:
    return (T0 + timedelta(hours=hours)).strftime("%Y-%m-%d %H:%M:%S")


def dob(age_years: float) -> str:
    return (T0 - timedelta(days=365 * age_years)).strftime("%Y-%m-%d %H:%M:%S")


class Tiny:
    def __init__(self) -> None:
        self.rows: dict[str, list[dict]] = {t: [] for t in (
            "PATIENTS", "ADMISSIONS", "ICUSTAYS", "DIAGNOSES_ICD", "D_ICD_DIAGNOSES",
            "CHARTEVENTS", "LABEVENTS")}
        self._icu = 0

    def add(self, table: str, **kw) -> None:
        kw["ROW_ID"] = len(self.rows[table]) + 1
        self.rows[table].append({k.upper(): v for k, v in kw.items()})

    def patient(self, sid: int, age: float = 60, gender: str = "M", dod: float | None = None):
        self.add("PATIENTS", subject_id=sid, gender=gender, dob=dob(age),
                 dod=ts(dod) if dod is not None else "", expire_flag=int(dod is not None))

    def admission(self, sid: int, hadm: int, admit: float, disch: float, death: float | None = None,
                  adm_type: str = "EMERGENCY", disch_loc: str = "HOME", insurance: str = "Medicare",
                  ethnicity: str = "WHITE"):
        self.add("ADMISSIONS", subject_id=sid, hadm_id=hadm, admittime=ts(admit), dischtime=ts(disch),
                 deathtime=ts(death) if death is not None else "", admission_type=adm_type,
                 admission_location="EMERGENCY ROOM ADMIT",
                 discharge_location="DEAD/EXPIRED" if death is not None else disch_loc,
                 insurance=insurance, ethnicity=ethnicity, hospital_expire_flag=int(death is not None),
                 has_chartevents_data=1)

    def icustay(self, sid: int, hadm: int, icu: int, intime: float, los_days: float,
                ward=(12, 12), unit=("MICU", "MICU")):
        self.add("ICUSTAYS", subject_id=sid, hadm_id=hadm, icustay_id=icu, dbsource="metavision",
                 first_careunit=unit[0], last_careunit=unit[1], first_wardid=ward[0],
                 last_wardid=ward[1], intime=ts(intime), outtime=ts(intime + los_days * 24),
                 los=f"{los_days:.4f}")

    def chart(self, sid, hadm, icu, hours, itemid, value, uom=""):
        self.add("CHARTEVENTS", subject_id=sid, hadm_id=hadm if hadm is not None else "",
                 icustay_id=icu if icu is not None else "", itemid=itemid,
                 charttime=ts(hours) if isinstance(hours, (int, float)) else hours,
                 value=value, valuenum=value, valueuom=uom)

    def lab(self, sid, hadm, hours, itemid, value, uom="mg/dL"):
        self.add("LABEVENTS", subject_id=sid, hadm_id=hadm if hadm is not None else "", itemid=itemid,
                 charttime=ts(hours), value=value, valuenum=value, valueuom=uom)

    def diagnosis(self, sid, hadm, seq, code):
        self.add("DIAGNOSES_ICD", subject_id=sid, hadm_id=hadm, seq_num=seq, icd9_code=code)

    def hr_series(self, sid, hadm, icu, intime, start, end, step=1.0, value=80):
        h = start
        while h < end + 1e-9:
            self.chart(sid, hadm, icu, intime + h, 211, value)
            h += step

    def write(self, root: Path, gz: bool = True) -> Path:
        root.mkdir(parents=True, exist_ok=True)
        codes = sorted({r["ICD9_CODE"] for r in self.rows["DIAGNOSES_ICD"]} - {"99999"})
        self.rows["D_ICD_DIAGNOSES"] = [{"ROW_ID": i + 1, "ICD9_CODE": c, "SHORT_TITLE": "x",
                                         "LONG_TITLE": "x"} for i, c in enumerate(codes)]
        for table, rows in self.rows.items():
            names = table_schema(table).names
            path = root / (f"{table}.csv.gz" if gz else f"{table}.csv")
            opener = gzip.open if gz else open
            with opener(path, "wt", newline="") as f:
                w = csv.writer(f, quoting=csv.QUOTE_MINIMAL)
                w.writerow(names)
                for r in rows:
                    w.writerow([r.get(n, "") for n in names])
        return root


def build_tiny() -> Tiny:
    """The edge cases. Hours are absolute (after T0); each ICU stay starts at its admit + 1 h."""
    t = Tiny()
    # 1: death exactly at 48 h after ICU admission (LOS 2.0000 d); events every hour 0.5..47.5
    t.patient(900001, age=70, gender="F", dod=49.0)
    t.admission(900001, 100001, 0, 49.0, death=49.0, insurance="Medicaid", ethnicity="BLACK/AFRICAN AMERICAN")
    t.icustay(900001, 100001, 200001, 1.0, 2.0)
    t.hr_series(900001, 100001, 200001, 1.0, 0.5, 47.5)
    # data-quality rows for stay 200001
    t.chart(900001, 100001, None, 1.0 + 2.0, 678, "98.6", "?F")          # ICUSTAY_ID recovered; F->C
    t.chart(900001, 100001, 299999, 1.0 + 3.0, 211, "77")                # wrong ICUSTAY_ID: dropped
    t.chart(900001, None, 200001, 1.0 + 4.0, 211, "78")                  # no HADM_ID: dropped
    t.chart(900001, 100001, 200001, "not-a-date", 211, "79")              # bad CHARTTIME: dropped
    t.chart(900001, 100001, 200001, 1.0 + 5.0, 211, "")                   # empty VALUE: dropped
    t.chart(900001, 100001, 200001, 1.0 + 6.0, 3581, "176.37", "lb")      # lb -> 80 kg
    t.chart(900001, 100001, 200001, 1.0 + 7.0, 455, "120/80")              # SBP from "120/80"
    t.chart(900001, 100001, 200001, 1.0 + 8.0, 223900, "Oriented")        # GCS verbal 5
    t.chart(900001, 100001, 200001, 1.0 + 9.0, 3420, "50")                # FiO2 50 % -> 0.5
    t.chart(900001, 100001, 200001, 1.0 + 10.0, 211, "400")               # outside valid range: kept
    t.lab(900001, 100001, 1.0 + 11.0, 50931, "ERROR")                      # glucose text: dropped
    t.chart(900001, 100001, 200001, 1.0 + 20.0, 115, "Brisk")              # capillary refill 0
    t.chart(900001, 100001, 200001, 1.0 + 21.0, 3348, "Delayed")           # capillary refill 1
    t.chart(900001, 100001, 200001, 1.0 + 22.0, 8377, "Sluggish")          # unknown text: dropped
    t.lab(900001, 100001, 0.5, 50931, "140")                               # pre-ICU lab: episode only
    t.lab(900001, None, 1.0 + 12.0, 50931, "150")                          # lab without HADM_ID: dropped
    t.diagnosis(900001, 100001, 1, "0389")                                 # Septicemia
    t.diagnosis(900001, 100001, 2, "4019")                                 # Essential hypertension
    t.diagnosis(900001, 100001, 3, "99999")                                # not in D_ICD_DIAGNOSES
    # 2: alive, LOS 1.9958 d = 47.899 h (< 48): no ihm; events 1..47
    t.patient(900002, age=50)
    t.admission(900002, 100002, 0, 72)
    t.icustay(900002, 100002, 200002, 1.0, 1.9958)
    t.hr_series(900002, 100002, 200002, 1.0, 1.0, 47.0)
    t.diagnosis(900002, 100002, 1, "486")                                  # Pneumonia
    # 3: ICU transfer (wards differ): excluded
    t.patient(900003)
    t.admission(900003, 100003, 0, 100)
    t.icustay(900003, 100003, 200003, 1.0, 3.0, ward=(12, 15))
    t.hr_series(900003, 100003, 200003, 1.0, 1.0, 60.0)
    # 4: two ICU stays in one admission: both excluded
    t.patient(900004)
    t.admission(900004, 100004, 0, 200)
    t.icustay(900004, 100004, 200004, 1.0, 2.5)
    t.icustay(900004, 100004, 200005, 100.0, 2.5)
    t.hr_series(900004, 100004, 200004, 1.0, 1.0, 50.0)
    # 5: two stays in one admission, the second with a transfer: the first is kept
    t.patient(900005, age=95)  # > 89: age capped at 90 in the output
    t.admission(900005, 100005, 0, 300, insurance="Private")
    t.icustay(900005, 100005, 200006, 1.0, 3.0)
    t.icustay(900005, 100005, 200007, 150.0, 2.0, unit=("MICU", "SICU"))
    t.hr_series(900005, 100005, 200006, 1.0, 2.0, 72.0, step=2.0, value=90)
    # 6: age 16: excluded
    t.patient(900006, age=16)
    t.admission(900006, 100006, 0, 100)
    t.icustay(900006, 100006, 200008, 1.0, 3.0)
    t.hr_series(900006, 100006, 200008, 1.0, 1.0, 60.0)
    # 7..11: readmission cases; index stay LOS 3 d, discharge at 100 h
    cases = {900007: ("EMERGENCY", 100 + 30 * 24, "HOME"),      # day 30 exactly: y = 1
             900008: ("EMERGENCY", 100 + 31 * 24, "HOME"),      # day 31: y = 0
             900009: ("ELECTIVE", 100 + 10 * 24, "HOME"),       # elective: y = 0
             900010: (None, None, "HOME"),                      # dies 5 days after discharge: y = 0
             900011: ("URGENT", 100 + 5 * 24, "SHORT TERM HOSPITAL")}  # transfer: excluded
    for i, (sid, (typ, readmit_at, loc)) in enumerate(cases.items()):
        hadm, icu = 100007 + 10 * i, 200010 + i
        t.patient(sid, dod=100 + 5 * 24 if sid == 900010 else None)
        t.admission(sid, hadm, 0, 100, disch_loc=loc)
        t.icustay(sid, hadm, icu, 1.0, 3.0)
        t.hr_series(sid, hadm, icu, 1.0, 1.0, 70.0)
        if typ:
            t.admission(sid, hadm + 1, readmit_at, readmit_at + 48, adm_type=typ)
    # 12: cohort stay without any event: no episode
    t.patient(900012)
    t.admission(900012, 100012, 0, 100)
    t.icustay(900012, 100012, 200020, 1.0, 3.0)
    # 13: only a pre-ICU lab: episode, but no events in the ICU: no task
    t.patient(900013)
    t.admission(900013, 100013, 0, 100)
    t.icustay(900013, 100013, 200021, 10.0, 3.0)
    t.lab(900013, 100013, 2.0, 50931, "120")
    # 14: died in hospital per DOD only (no DEATHTIME): ihm y = 1, decomp all 0
    t.patient(900014, dod=80.0)
    t.admission(900014, 100014, 0, 80.0, disch_loc="HOME")
    t.icustay(900014, 100014, 200022, 1.0, 3.0)
    t.hr_series(900014, 100014, 200022, 1.0, 1.0, 70.0)
    # 15: an episode whose admission has no diagnosis: the reference's label file is empty,
    # so no task uses it
    t.patient(900015)
    t.admission(900015, 100015, 0, 100)
    t.icustay(900015, 100015, 200023, 1.0, 3.0)
    t.hr_series(900015, 100015, 200023, 1.0, 1.0, 70.0)
    # every other admission has a (non-phenotype) diagnosis, as in MIMIC-III
    with_dx = {r["HADM_ID"] for r in t.rows["DIAGNOSES_ICD"]}
    for r in list(t.rows["ADMISSIONS"]):
        if r["HADM_ID"] not in with_dx and r["SUBJECT_ID"] != 900015:
            t.diagnosis(r["SUBJECT_ID"], r["HADM_ID"], 1, "V1582")
    return t


def write_tiny(root: Path, gz: bool = True) -> Path:
    return build_tiny().write(root, gz=gz)
