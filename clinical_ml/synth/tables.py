"""Row assembly: simulated patients of one chunk -> columns of each release table."""
from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from clinical_ml.synth.cohort import DAY, HOUR, ICU_WARDS, Admission, Patient
from clinical_ml.synth.physiology import LAB_TEXT, TEXT_VALUES
from clinical_ml.synth.vocab import CONDITIONS, DRUGS, INPUT_ITEMS, PROCEDURES
from clinical_ml.synth.writer import numbers_as_text

NAT = np.iinfo(np.int64).min
CGIDS = np.arange(14000, 21600, 7)


def dt(values) -> np.ndarray:
    return np.array([NAT if v is None else int(v) for v in values], dtype=np.int64)


def day(ts: int | None) -> int | None:
    return None if ts is None else int(ts) // DAY * DAY


def columns(rows: list[tuple], names: tuple[str, ...]) -> dict[str, list]:
    return {n: [r[i] for r in rows] for i, n in enumerate(names)} if rows else {}


def patients(pts: list[Patient], rng) -> dict:
    rows = []
    for p in pts:
        dod = day(p.dod)
        ssn = dod if (p.dod is not None and (p.dod_hosp is None or rng.random() < 0.6)) else None
        rows.append((p.subject_id, p.gender, p.dob, dod, day(p.dod_hosp), ssn, int(dod is not None)))
    c = columns(rows, ("SUBJECT_ID", "GENDER", "DOB", "DOD", "DOD_HOSP", "DOD_SSN", "EXPIRE_FLAG"))
    for k in ("DOB", "DOD", "DOD_HOSP", "DOD_SSN"):
        c[k] = dt(c[k])
    return c


def admissions(pts: list[Patient], rng) -> dict:
    rows = []
    for p in pts:
        for a in p.admissions:
            edreg = a.admittime - int(rng.uniform(2, 8) * HOUR) if a.ed else None
            edout = a.admittime + int(rng.uniform(0.1, 1) * HOUR) if a.ed else None
            dx = CONDITIONS[a.acute[0]].phrases[0].upper()
            if a.acute[0] == "cabg":
                dx = "CORONARY ARTERY DISEASE\\CORONARY ARTERY BYPASS GRAFT /SDA"
            rows.append((p.subject_id, a.hadm_id, a.admittime, a.dischtime, a.deathtime, a.admission_type,
                         a.admission_location, a.discharge_location, p.insurance, p.language, p.religion,
                         p.marital, p.ethnicity, edreg, edout, dx, int(a.deathtime is not None), 1))
    c = columns(rows, ("SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "ADMISSION_TYPE",
                       "ADMISSION_LOCATION", "DISCHARGE_LOCATION", "INSURANCE", "LANGUAGE", "RELIGION",
                       "MARITAL_STATUS", "ETHNICITY", "EDREGTIME", "EDOUTTIME", "DIAGNOSIS",
                       "HOSPITAL_EXPIRE_FLAG", "HAS_CHARTEVENTS_DATA"))
    for k in ("ADMITTIME", "DISCHTIME", "DEATHTIME", "EDREGTIME", "EDOUTTIME"):
        c[k] = dt(c[k])
    return c


def icustays(pts: list[Patient]) -> dict:
    rows = []
    for p in pts:
        for a in p.admissions:
            for s in a.stays:
                rows.append((p.subject_id, a.hadm_id, s.icustay_id, s.dbsource, s.first_careunit, s.last_careunit,
                             ICU_WARDS[s.first_careunit][0], _last_ward(s), s.intime, s.outtime,
                             round((s.outtime - s.intime) / DAY, 4)))
    c = columns(rows, ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "DBSOURCE", "FIRST_CAREUNIT", "LAST_CAREUNIT",
                       "FIRST_WARDID", "LAST_WARDID", "INTIME", "OUTTIME", "LOS"))
    c["INTIME"], c["OUTTIME"] = dt(c["INTIME"]), dt(c["OUTTIME"])
    return c


def _last_ward(s) -> int:
    """A stay without a transfer ends in the ward it started in (as in TRANSFERS)."""
    return ICU_WARDS[s.last_careunit][-1] if s.transfer_at else ICU_WARDS[s.first_careunit][0]


def _segments(a: Admission, rng) -> list[tuple]:
    """(careunit or None, wardid, start, end, icustay_id) in time order."""
    segs, t = [], a.admittime
    for s in a.stays:
        if s.intime > t:
            segs.append((None, int(rng.integers(1, 60)), t, s.intime, None))
        if s.transfer_at:
            segs.append((s.first_careunit, ICU_WARDS[s.first_careunit][0], s.intime, s.transfer_at, s.icustay_id))
            segs.append((s.last_careunit, ICU_WARDS[s.last_careunit][-1], s.transfer_at, s.outtime, s.icustay_id))
        else:
            segs.append((s.first_careunit, ICU_WARDS[s.first_careunit][0], s.intime, s.outtime, s.icustay_id))
        t = s.outtime
    if a.dischtime > t:
        segs.append((None, int(rng.integers(1, 60)), t, a.dischtime, None))
    return segs


def transfers(pts: list[Patient], rng) -> dict:
    rows = []
    for p in pts:
        for a in p.admissions:
            prev_unit, prev_ward = None, None
            for i, (unit, ward, start, end, icu) in enumerate(_segments(a, rng)):
                rows.append((p.subject_id, a.hadm_id, icu, p.dbsource, "admit" if i == 0 else "transfer",
                             prev_unit, unit, prev_ward, ward, start, end, round((end - start) / HOUR, 2)))
                prev_unit, prev_ward = unit, ward
            rows.append((p.subject_id, a.hadm_id, None, p.dbsource, "discharge", prev_unit, None, prev_ward,
                         None, a.dischtime, None, None))
    c = columns(rows, ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "DBSOURCE", "EVENTTYPE", "PREV_CAREUNIT",
                       "CURR_CAREUNIT", "PREV_WARDID", "CURR_WARDID", "INTIME", "OUTTIME", "LOS"))
    c["INTIME"], c["OUTTIME"] = dt(c["INTIME"]), dt(c["OUTTIME"])
    c["ICUSTAY_ID"] = np.array([np.nan if v is None else v for v in c["ICUSTAY_ID"]], dtype=float)
    for k in ("PREV_WARDID", "CURR_WARDID", "LOS"):
        c[k] = np.array([np.nan if v is None else v for v in c[k]], dtype=float)
    return c


def services(pts: list[Patient], rng) -> dict:
    rows = []
    for p in pts:
        for a in p.admissions:
            rows.append((p.subject_id, a.hadm_id, a.admittime + 60, None, a.service))
            if rng.random() < 0.1 and a.stays[0].outtime < a.dischtime:
                rows.append((p.subject_id, a.hadm_id, a.stays[0].outtime, a.service,
                             "SURG" if a.service == "MED" else "MED"))
    c = columns(rows, ("SUBJECT_ID", "HADM_ID", "TRANSFERTIME", "PREV_SERVICE", "CURR_SERVICE"))
    c["TRANSFERTIME"] = dt(c["TRANSFERTIME"])
    return c


def diagnoses(pts: list[Patient]) -> dict:
    rows = [(p.subject_id, a.hadm_id, i, code) for p in pts for a in p.admissions
            for i, code in enumerate(a.diagnoses, 1)]
    return columns(rows, ("SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"))


def procedures(pts: list[Patient]) -> dict:
    rows = [(p.subject_id, a.hadm_id, i, PROCEDURES[k][0]) for p in pts for a in p.admissions
            for i, k in enumerate(a.procedures, 1)]
    return columns(rows, ("SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"))


def prescriptions(pts: list[Patient], rng) -> dict:
    rows = []
    for p in pts:
        for a in p.admissions:
            los_days = max((a.dischtime - a.admittime) / DAY, 0.5)
            for key, dose in a.drugs:
                d = DRUGS[key]
                # real orders are re-written often (dose changes, renewals): several rows per drug
                for _ in range(1 + min(int(rng.poisson(0.6 * los_days)), 12)):
                    start = day(a.admittime + int(rng.uniform(0, los_days) * DAY))
                    end = start + int(rng.integers(1, max(2, int(los_days) + 2))) * DAY
                    icu = next((s.icustay_id for s in a.stays if day(s.intime) <= start <= s.outtime), None)
                    rows.append((
                        p.subject_id, a.hadm_id, icu, start, end, d.drug_type, d.drug, d.drug,
                        d.generic or None, d.code, d.gsn or None, d.ndc, d.strength, dose, d.unit,
                        d.form_val, d.form_unit, d.route))
    c = columns(rows, ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTDATE", "ENDDATE", "DRUG_TYPE", "DRUG",
                       "DRUG_NAME_POE", "DRUG_NAME_GENERIC", "FORMULARY_DRUG_CD", "GSN", "NDC", "PROD_STRENGTH",
                       "DOSE_VAL_RX", "DOSE_UNIT_RX", "FORM_VAL_DISP", "FORM_UNIT_DISP", "ROUTE"))
    if c:
        c["STARTDATE"], c["ENDDATE"] = dt(c["STARTDATE"]), dt(c["ENDDATE"])
        c["ICUSTAY_ID"] = np.array([np.nan if v is None else v for v in c["ICUSTAY_ID"]], dtype=float)
    return c


def value_column(text: np.ndarray, texts: list[str], valuenum: np.ndarray) -> pa.Array:
    """VALUE: ``texts[text]`` where ``text >= 0``, else VALUENUM written as the release writes it."""
    text = text.astype(np.int64)
    strings = pa.array(texts, type=pa.string()).take(pa.array(np.maximum(text, 0)))
    return pc.if_else(pa.array(text >= 0), strings, numbers_as_text(valuenum))


def chartevents(arr: dict[str, np.ndarray], rng, texts: list[str] = TEXT_VALUES) -> dict:
    """Event buffers -> CHARTEVENTS columns, with the release's quirks: a few rows without
    ICUSTAY_ID and a few exact duplicates (same values, new ROW_ID). TEXT indexes ``texts``."""
    n = len(arr["ITEMID"])
    arr = dict(arr, STORETIME=arr["CHARTTIME"].astype(np.int64) + rng.integers(60, 3600, n),
               CGID=CGIDS[rng.integers(0, len(CGIDS), n)])
    dup = np.where(rng.random(n) < 0.002, 2, 1)
    idx = np.repeat(np.arange(n), dup)
    a = {k: v[idx] for k, v in arr.items()}
    n = len(idx)
    value = value_column(a["TEXT"], texts, a["VALUENUM"])
    icu = a["ICUSTAY_ID"].astype(float)
    icu[np.repeat(rng.random(len(dup)) < 0.005, dup)] = np.nan  # duplicates stay identical
    carevue = a["DB"] == 0
    uom = a["UOM"]
    return {"SUBJECT_ID": a["SUBJECT_ID"], "HADM_ID": a["HADM_ID"], "ICUSTAY_ID": icu, "ITEMID": a["ITEMID"],
            "CHARTTIME": a["CHARTTIME"].astype(np.int64),
            "STORETIME": a["STORETIME"], "CGID": a["CGID"], "VALUE": value,
            "VALUENUM": a["VALUENUM"].astype(float),
            "VALUEUOM": pc.if_else(pc.equal(pa.array(uom, type=pa.string()), ""), None, pa.array(uom, type=pa.string())),
            "WARNING": np.where(carevue, np.nan, 0.0), "ERROR": np.where(carevue, np.nan, 0.0),
            "RESULTSTATUS": pa.array(np.where(carevue, "Manual", None), type=pa.string()),
            "STOPPED": pa.array(np.where(carevue, "NotStopd", None), type=pa.string())}


def labevents(arr: dict[str, np.ndarray], texts: list[str] = LAB_TEXT) -> dict:
    value = value_column(arr["TEXT"], texts, arr["VALUENUM"])
    return {"SUBJECT_ID": arr["SUBJECT_ID"], "HADM_ID": arr["HADM_ID"].astype(float), "ITEMID": arr["ITEMID"],
            "CHARTTIME": arr["CHARTTIME"].astype(np.int64), "VALUE": value,
            "VALUENUM": arr["VALUENUM"].astype(float), "VALUEUOM": pa.array(arr["UOM"], type=pa.string()),
            "FLAG": pa.array(arr["FLAG"], type=pa.string(), from_pandas=True)}


def outputevents(arr: dict[str, np.ndarray], rng) -> dict:
    n = len(arr["ITEMID"])
    return {"SUBJECT_ID": arr["SUBJECT_ID"], "HADM_ID": arr["HADM_ID"], "ICUSTAY_ID": arr["ICUSTAY_ID"],
            "CHARTTIME": arr["CHARTTIME"].astype(np.int64), "ITEMID": arr["ITEMID"],
            "VALUE": arr["VALUE"].astype(float), "VALUEUOM": pa.array(["ml"] * n, type=pa.string()),
            "STORETIME": arr["CHARTTIME"].astype(np.int64) + rng.integers(60, 3600, n),
            "CGID": CGIDS[rng.integers(0, len(CGIDS), n)]}


_INPUT_META = {v[0]: v for v in INPUT_ITEMS.values()}


def inputevents_mv(arr: dict[str, np.ndarray], rng, first_order: int) -> dict:
    n = len(arr["ITEMID"])
    meta = [_INPUT_META[int(i)] for i in arr["ITEMID"]]
    orders = np.arange(first_order, first_order + n)
    return {"SUBJECT_ID": arr["SUBJECT_ID"], "HADM_ID": arr["HADM_ID"], "ICUSTAY_ID": arr["ICUSTAY_ID"],
            "STARTTIME": arr["STARTTIME"].astype(np.int64), "ENDTIME": arr["ENDTIME"].astype(np.int64),
            "ITEMID": arr["ITEMID"], "AMOUNT": arr["AMOUNT"].astype(float), "AMOUNTUOM": [m[1] for m in meta],
            "RATE": arr["RATE"].astype(float), "RATEUOM": [m[2] for m in meta],
            "STORETIME": arr["ENDTIME"].astype(np.int64), "CGID": CGIDS[rng.integers(0, len(CGIDS), n)],
            "ORDERID": orders, "LINKORDERID": orders, "ORDERCATEGORYNAME": [m[3] for m in meta],
            "ORDERCOMPONENTTYPEDESCRIPTION": ["Main order parameter"] * n,
            "ORDERCATEGORYDESCRIPTION": ["Continuous Med" if m[3] == "01-Drips" else "Continuous IV" for m in meta],
            "PATIENTWEIGHT": arr["WEIGHT"].astype(float), "ISOPENBAG": np.zeros(n), "CONTINUEINNEXTDEPT": np.zeros(n),
            "CANCELREASON": np.zeros(n), "STATUSDESCRIPTION": ["FinishedRunning"] * n,
            "ORIGINALAMOUNT": arr["AMOUNT"].astype(float), "ORIGINALRATE": arr["RATE"].astype(float)}
