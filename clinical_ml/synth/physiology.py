"""Vitals, GCS, labs, urine output and infusions from each admission's severity trajectory.

The latent severity of a stay evolves over time: survivors recover (severity decays), patients
who die deteriorate towards death. Each channel's mean is the patient's own baseline plus
chronic-disease shifts plus acute-condition effects scaled by the current severity, so
abnormal physiology both reflects the diagnoses and precedes death. Charting follows ICU habits:
vitals about hourly, temperature and GCS every 4 h, fingerstick glucose every 6 h, labs every
8-24 h; some values are missing, some charted in Fahrenheit or pounds, a few are artefacts.
Everything is vectorized per stay (numpy), one Python call per stay and channel.
"""
from __future__ import annotations

import numpy as np

from clinical_ml.synth.cohort import DAY, HOUR, Admission, Patient, Stay
from clinical_ml.synth.vocab import (BASELINE, BLOOD_GAS, CHART_ITEMS, CONDITIONS, GCS_TEXT,
                                     INPUT_ITEMS, LAB_ITEMS, OUTPUT_ITEMS)

GENERIC = {"hr": 7, "map": -5, "sbp": -7, "dbp": -3, "rr": 2, "spo2": -0.8, "temp": 0.15, "gcs": -1.3,
           "lactate": 0.7, "ph": -0.025, "hco3": -1.2, "creat": 0.2, "bun": 3, "wbc": 1.2, "plt": -15}
NOISE = {"hr": 5, "sbp": 8, "dbp": 5, "map": 5, "rr": 2.5, "spo2": 1.1, "temp": 0.25, "gcs": 0.7,
         "fio2": 0.05, "glucose": 22, "ph": 0.03, "creat": 0.12, "bun": 2.5, "na": 1.5, "k": 0.25,
         "hco3": 1.5, "cl": 2, "wbc": 1.3, "hgb": 0.45, "plt": 18, "lactate": 0.35, "trop": 0.02}
LIMITS = {"hr": (25, 220), "sbp": (55, 240), "dbp": (25, 140), "map": (35, 170), "rr": (4, 50),
          "spo2": (65, 100), "temp": (33.5, 41.5), "gcs": (3, 15), "fio2": (0.21, 1.0),
          "glucose": (35, 900), "ph": (6.85, 7.65), "creat": (0.2, 14), "bun": (2, 180),
          "na": (112, 165), "k": (2.2, 7.8), "hco3": (5, 45), "cl": (80, 130), "wbc": (0.3, 60),
          "hgb": (4.0, 18), "plt": (8, 700), "lactate": (0.3, 18), "trop": (0.0, 25)}
DECIMALS = {"hr": 0, "sbp": 0, "dbp": 0, "map": 0, "rr": 0, "spo2": 0, "temp": 1, "fio2": 2,
            "glucose": 0, "ph": 2}
TEXT_VALUES: list[str] = ["Normal <3 secs", "Abnormal >3 secs"] + sorted(
    {v for d in GCS_TEXT.values() for m in d.values() for v in m.values()})
TEXT_INDEX = {v: i for i, v in enumerate(TEXT_VALUES)}


def intensity(s: np.ndarray) -> np.ndarray:
    """How strongly acute effects show at severity ``s`` (0.55 at s=0, saturating)."""
    return clip(0.55 + 0.45 * s, 0.0, 2.5)


def stay_severity(stay: Stay, t: np.ndarray) -> np.ndarray:
    span = max(stay.outtime - stay.intime, HOUR)
    x = clip((t - stay.intime) / span, 0.0, 1.0)
    if stay.dies:
        return stay.s0 + 1.8 * x ** 2
    return stay.s0 * np.exp(-2.0 * x) - 0.4 * x


def admission_severity(adm: Admission, t: np.ndarray) -> np.ndarray:
    """Severity at any time of the admission: the stay trajectory in the ICU, milder outside."""
    s = np.full(t.shape, 0.45 * adm.severity - 0.2)
    for stay in adm.stays:
        before = t < stay.intime
        s = np.where(before & (t >= stay.intime - 2 * DAY), 0.8 * stay.s0, s)
        inside = (t >= stay.intime) & (t <= stay.outtime)
        s = np.where(inside, stay_severity(stay, t), s)
    if adm.deathtime is not None and not adm.stays[-1].dies:  # death on the floor
        x = clip((t - adm.stays[-1].outtime) / max(adm.dischtime - adm.stays[-1].outtime, HOUR), 0, 1)
        s = np.where(t > adm.stays[-1].outtime, adm.severity * 0.5 + 1.8 * x ** 2, s)
    return s


def channel_mean(ch: str, s: np.ndarray, base: dict[str, float], adm: Admission, stay: Stay | None) -> np.ndarray:
    acute = sum(CONDITIONS[k].effects.get(ch, 0.0) for k in adm.acute)
    chronic = sum(CONDITIONS[k].effects.get(ch, 0.0) for k in adm.chronic)
    mu = base[ch] + chronic + acute * intensity(s) + GENERIC.get(ch, 0.0) * np.maximum(s, -0.5)
    if ch == "gcs" and stay is not None and stay.intubated:
        mu = mu - 3.0
    if ch == "fio2":
        on_o2 = stay is not None and (stay.intubated or acute > 0)
        mu = (0.40 + 0.1 * np.maximum(s, 0) + acute * intensity(s)) if on_o2 else mu + 0.05 * np.maximum(s, 0)
    return mu


def sample(rng, ch: str, mu: np.ndarray) -> np.ndarray:
    sd = NOISE[ch] * (mu if ch in ("creat", "trop") else 1.0)
    v = mu + rng.normal(0, 1, mu.shape) * sd
    lo, hi = LIMITS[ch]
    return clip(v, lo, hi)


def patient_baseline(rng, pt: Patient) -> dict[str, float]:
    base = {ch: float(m + rng.normal(0, sd)) for ch, (m, sd) in BASELINE.items()}
    base["weight"] = float(clip(rng.normal(84 if pt.gender == "M" else 72, 17), 38, 190))
    base["height"] = float(clip(rng.normal(176 if pt.gender == "M" else 162, 7), 140, 205))
    if pt.gender == "F":
        base["hgb"] -= 1.2
    return base


def _gcs_parts(total: np.ndarray, intubated: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split a GCS total into eye (1-4), verbal (1-5; 0 = intubated) and motor (1-6)."""
    t = clip(np.rint(total), 3, 15).astype(int)
    eye = clip(np.ceil(t * 4 / 15), 1, 4).astype(int)
    motor = clip(np.ceil(t * 6 / 15), 1, 6).astype(int)
    verbal = clip(t - eye - motor, 1, 5)
    eye = clip(t - motor - verbal, 1, 4)
    if intubated:
        verbal = np.zeros_like(verbal)
    return eye, verbal, motor


class Rows:
    """Column buffers for one table within a chunk. Scalars (ids, units) are stored once per
    call and expanded with ``np.repeat`` at the end: far fewer small allocations."""

    def __init__(self, *names: str):
        self.names = names
        self.sizes: list[int] = []
        self.calls: list[dict] = []

    def add(self, **cols) -> None:
        n = next(len(v) for v in cols.values() if isinstance(v, np.ndarray))
        if n:
            self.sizes.append(n)
            self.calls.append(cols)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {}
        sizes = np.array(self.sizes, dtype=np.int64)
        for k in self.names:
            vals = [c.get(k) for c in self.calls]
            if all(not isinstance(v, np.ndarray) for v in vals):
                dtype = object if any(isinstance(v, str) or v is None for v in vals) else None
                out[k] = np.repeat(np.array(vals, dtype=dtype), sizes) if vals else np.array([])
            else:
                out[k] = np.concatenate([v if isinstance(v, np.ndarray) else np.full(n, v, dtype=object if isinstance(v, str) or v is None else None)
                                         for v, n in zip(vals, self.sizes)]) if vals else np.array([])
        return out


def clip(v: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return np.minimum(np.maximum(v, lo), hi)


CHART_COLS = ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUENUM", "TEXT", "UOM", "DB")


def _grid(rng, stay: Stay, every_h: float, p_missing: float, offset_h: float = 0.0) -> np.ndarray:
    first = (stay.intime // HOUR + 1) * HOUR + int(offset_h * HOUR)
    t = np.arange(first, stay.outtime, int(every_h * HOUR), dtype=np.int64)
    jitter = np.where(rng.random(t.shape) < 0.3, rng.integers(-20, 20, t.shape) * 60, 0)
    t = t + jitter
    return t[rng.random(t.shape) >= p_missing]


def chart_stay(rng, pt: Patient, adm: Admission, stay: Stay, base: dict, out: Rows, summary: dict) -> None:
    db = stay.dbsource
    dbc = 0 if db == "carevue" else 1

    def emit(items_key, kind_filter, t, values, text=None, uom=""):
        itemid = next(i for i, k in CHART_ITEMS[items_key][db] if kind_filter is None or k == kind_filter)
        out.add(SUBJECT_ID=pt.subject_id, HADM_ID=adm.hadm_id, ICUSTAY_ID=stay.icustay_id, ITEMID=itemid,
                CHARTTIME=t, VALUENUM=values, TEXT=text if text is not None else -1, UOM=uom, DB=dbc)

    vit = _grid(rng, stay, 1.0, 0.0)
    if len(vit) == 0:
        vit = np.array([stay.intime + 600], dtype=np.int64)
    s = stay_severity(stay, vit)
    bp_kind = "art" if stay.arterial else "nbp"
    vals = {}
    for ch in ("hr", "sbp", "dbp", "rr", "spo2"):
        vals[ch] = sample(rng, ch, channel_mean(ch, s, base, adm, stay))
    vals["map"] = clip((vals["sbp"] + 2 * vals["dbp"]) / 3 + rng.normal(0, 2, s.shape), *LIMITS["map"])
    for ch in ("hr", "sbp", "dbp", "map", "rr", "spo2"):
        v = np.round(vals[ch])
        keep = rng.random(v.shape) >= 0.06
        art = rng.random(v.shape) < 0.002  # artefacts: out-of-range values the cleaner must drop
        if ch in ("hr", "sbp", "spo2"):
            v = np.where(art, np.where(rng.random(v.shape) < 0.5, 0, 400 if ch != "spo2" else 150), v)
        kind = bp_kind if ch in ("sbp", "dbp", "map") else None
        emit(ch, kind, vit[keep], v[keep], uom={"hr": "bpm", "rr": "insp/min", "spo2": "%"}.get(ch, "mmHg"))
        summary.setdefault(ch, []).append(vals[ch])
    # temperature q4h; Fahrenheit items mostly, Celsius sometimes, a few mis-charted
    t4 = vit[::4]
    temp = np.round(sample(rng, "temp", channel_mean("temp", stay_severity(stay, t4), base, adm, stay)), 1)
    summary.setdefault("temp", []).append(temp)
    in_f = rng.random(t4.shape) < (0.8 if db == "carevue" else 0.88)
    f_val = np.round(temp * 9 / 5 + 32, 1)
    emit("temp", "F", t4[in_f], f_val[in_f], uom="?F" if db == "metavision" else "Deg. F")
    c_mask = ~in_f | ((db == "carevue") & (rng.random(t4.shape) < 0.7))
    c_val = np.where(rng.random(t4.shape) < 0.01, f_val, temp)  # Fahrenheit typed into a Celsius item
    emit("temp", "C", t4[c_mask], c_val[c_mask], uom="?C" if db == "metavision" else "Deg. C")
    # GCS q4h: components as text (+ total on CareVue)
    tg = vit[1::4] if len(vit) > 1 else vit
    gcs = sample(rng, "gcs", channel_mean("gcs", stay_severity(stay, tg), base, adm, stay))
    summary.setdefault("gcs", []).append(gcs)
    eye, verbal, motor = _gcs_parts(gcs, stay.intubated)
    style = "cv" if db == "carevue" else "mv"
    for key, part in (("gcs_eye", eye), ("gcs_verbal", verbal), ("gcs_motor", motor)):
        text = np.array([TEXT_INDEX[GCS_TEXT[key][style][int(x)]] for x in part], dtype=np.int64)
        emit(key, None, tg, np.maximum(part, 1).astype(float), text=text)
    if db == "carevue":
        emit("gcs_total", None, tg, clip(np.rint(gcs), 3, 15))
        tc = vit[2::8]
        crr = (rng.random(tc.shape) < 0.1 + 0.25 * clip(stay_severity(stay, tc), 0, 2)).astype(int)
        emit("crr", None, tc, np.full(len(tc), np.nan), text=np.where(crr == 1, 1, 0))
    # FiO2 q4h when on oxygen
    if stay.intubated or any(CONDITIONS[k].effects.get("fio2") for k in adm.acute) or rng.random() < 0.25:
        tf = vit[::4]
        fio2 = np.round(sample(rng, "fio2", channel_mean("fio2", stay_severity(stay, tf), base, adm, stay)), 2)
        emit("fio2", None, tf, fio2 if db == "carevue" else np.round(fio2 * 100), uom="" if db == "carevue" else "%")
        summary.setdefault("fio2", []).append(fio2)
    # fingerstick glucose q6h (q2h on an insulin drip)
    every = 2 if "dka" in adm.acute else 6
    tgl = _grid(rng, stay, every, 0.1, 0.5)
    if len(tgl):
        glu = np.round(sample(rng, "glucose", channel_mean("glucose", stay_severity(stay, tgl), base, adm, stay)))
        emit("glucose", None, tgl, glu, uom="mg/dL")
    # arterial pH q8h with an arterial line
    if stay.arterial:
        tph = _grid(rng, stay, 8, 0.1, 1)
        if len(tph):
            ph = np.round(sample(rng, "ph", channel_mean("ph", stay_severity(stay, tph), base, adm, stay)), 2)
            emit("ph", None, tph, ph)
    # weight on admission and daily; height once
    tw = np.arange(stay.intime + 1800, stay.outtime, DAY, dtype=np.int64)
    w = np.round(base["weight"] + rng.normal(0, 1.2, tw.shape), 1)
    if db == "metavision":
        lbs = rng.random() < 0.3
        emit("weight", "lb" if lbs else "kg", tw[:1], np.round(w[:1] * (2.2046 if lbs else 1.0), 1),
             uom="lbs" if lbs else "kg")
        if len(tw) > 1:
            out_w = tw[1:]
            emit("weight", "kg", out_w, w[1:], uom="kg")
    else:
        emit("weight", "kg", tw, w, uom="kg")
    if rng.random() < 0.5:
        h = base["height"] if db == "metavision" else base["height"] / 2.54
        emit("height", None, tw[:1], np.round(np.full(1, h), 0), uom="cm" if db == "metavision" else "Inch")


OUTPUT_COLS = ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUE")


def outputs_stay(rng, pt: Patient, adm: Admission, stay: Stay, out: Rows, summary: dict) -> None:
    t = _grid(rng, stay, 2 if stay.dbsource == "carevue" else 1, 0.08)
    if not len(t):
        return
    s = stay_severity(stay, t)
    kidney = 1.0 - (0.6 if ("aki" in adm.acute or "ckd" in adm.chronic) else 0.0) * intensity(s) / 1.5
    per_h = clip(rng.normal(70, 25, t.shape) * clip(kidney, 0.05, 1.2) * clip(1 - 0.25 * s, 0.2, 1.4), 0, 600)
    vol = np.round(per_h * (2 if stay.dbsource == "carevue" else 1))
    summary.setdefault("urine", []).append(vol)
    out.add(SUBJECT_ID=pt.subject_id, HADM_ID=adm.hadm_id, ICUSTAY_ID=stay.icustay_id,
            ITEMID=OUTPUT_ITEMS[stay.dbsource], CHARTTIME=t, VALUE=vol)


INPUT_COLS = ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "STARTTIME", "ENDTIME", "ITEMID", "AMOUNT", "RATE", "WEIGHT")


def inputs_stay(rng, pt: Patient, adm: Admission, stay: Stay, base: dict, out: Rows) -> None:
    """MetaVision infusions (INPUTEVENTS_MV): fluids, pressors, sedation, insulin in 4 h blocks."""
    if stay.dbsource != "metavision":
        return
    drips = ["ns", "d5w"] + (["norepinephrine"] if ("sepsis" in adm.acute and stay.s0 > 0.3) else []) \
        + (["propofol", "fentanyl"] if stay.intubated else []) + (["insulin"] if "dka" in adm.acute else [])
    for name in drips:
        # drips are charted at every rate change (about hourly); fluids every few hours
        step = {"ns": 2, "d5w": 4}.get(name, 1) * HOUR
        starts = np.arange(stay.intime + HOUR, stay.outtime - HOUR, step, dtype=np.int64)
        if not len(starts):
            continue
        ends = np.minimum(starts + step, stay.outtime)
        hours = (ends - starts) / HOUR
        rate = {"ns": 100.0, "d5w": 20.0, "norepinephrine": 0.08, "propofol": 30.0, "insulin": 5.0,
                "fentanyl": 50.0}[name]
        rate = np.round(rate * np.exp(rng.normal(0, 0.3, starts.shape)), 3)
        per_h = {"ns": 1.0, "d5w": 1.0, "norepinephrine": 60 * base["weight"] / 1000,
                 "propofol": 60 * base["weight"] / 1000, "insulin": 1.0, "fentanyl": 1 / 1000}[name]
        out.add(SUBJECT_ID=pt.subject_id, HADM_ID=adm.hadm_id, ICUSTAY_ID=stay.icustay_id, STARTTIME=starts,
                ENDTIME=ends, ITEMID=INPUT_ITEMS[name][0], AMOUNT=np.round(rate * per_h * hours, 4),
                RATE=rate, WEIGHT=round(base["weight"], 1))


LAB_COLS = ("SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUENUM", "TEXT", "UOM", "FLAG")
LAB_TEXT = ["<0.01", "UNABLE TO REPORT", "GREATER THAN 500", "HEMOLYZED"]


_LAB_CH = list(LAB_ITEMS)
_LAB_LO = np.array([LIMITS[c][0] for c in _LAB_CH])[:, None]
_LAB_HI = np.array([LIMITS[c][1] for c in _LAB_CH])[:, None]
_LAB_SCALE = np.array([10.0 ** LAB_ITEMS[c][4] for c in _LAB_CH])[:, None]
_LAB_NOISE = np.array([NOISE[c] for c in _LAB_CH])[:, None]
_LAB_REL = np.array([c in ("creat", "trop") for c in _LAB_CH])[:, None]
_LAB_REF = (np.array([LAB_ITEMS[c][2] for c in _LAB_CH])[:, None], np.array([LAB_ITEMS[c][3] for c in _LAB_CH])[:, None])
_LAB_GEN = np.array([GENERIC.get(c, 0.0) for c in _LAB_CH])[:, None]


def _lab_matrix(rng, s: np.ndarray, base: dict, adm: Admission) -> np.ndarray:
    """Values of every lab channel (rows, ``_LAB_CH`` order) at severities ``s`` (columns)."""
    acute = np.array([sum(CONDITIONS[k].effects.get(c, 0.0) for k in adm.acute) for c in _LAB_CH])[:, None]
    chronic = np.array([sum(CONDITIONS[k].effects.get(c, 0.0) for k in adm.chronic) for c in _LAB_CH])[:, None]
    b = np.array([base[c] for c in _LAB_CH])[:, None]
    mu = b + chronic + acute * intensity(s)[None, :] + _LAB_GEN * np.maximum(s, -0.5)[None, :]
    sd = np.where(_LAB_REL, _LAB_NOISE * np.abs(mu), _LAB_NOISE)
    v = clip(mu + rng.normal(0, 1, mu.shape) * sd, _LAB_LO, _LAB_HI)
    return np.rint(v * _LAB_SCALE) / _LAB_SCALE


def labs_admission(rng, pt: Patient, adm: Admission, base: dict, out: Rows, summary: dict,
                   outpatient: bool) -> None:
    """Chemistry/CBC daily on the floor and twice daily in the ICU; blood gases with an A-line;
    troponin early when cardiac. One severity->value matrix per admission."""
    times = [np.arange(adm.admittime + int(rng.uniform(0.3, 2) * HOUR), adm.dischtime, DAY, dtype=np.int64)]
    for stay in adm.stays:
        times.append(np.arange(stay.intime + 4 * HOUR, stay.outtime, 12 * HOUR, dtype=np.int64))
    t = np.unique(np.concatenate(times) // 60 * 60)
    s = admission_severity(adm, t)
    icu_art = np.zeros(t.shape, bool)
    for stay in adm.stays:
        if stay.arterial:
            icu_art |= (t >= stay.intime) & (t <= stay.outtime)
    vals = _lab_matrix(rng, s, base, adm)
    cardiac = any(k in adm.acute for k in ("ami", "chf", "cabg")) or rng.random() < 0.2
    early = np.arange(len(t)) < 4
    for ci, ch in enumerate(_LAB_CH):
        if ch in BLOOD_GAS:
            mask = icu_art | ((np.arange(len(t)) < 2) if (ch == "lactate" and any(
                k in adm.acute for k in ("sepsis", "gi_bleed"))) else False)
        elif ch == "trop":
            if not cardiac:
                continue
            mask = early
        else:
            mask = None
        v = vals[ci] if mask is None else vals[ci][mask]
        if not len(v):
            continue
        tt = t if mask is None else t[mask]
        itemid, uom, lo, hi, _, _ = LAB_ITEMS[ch]
        text = np.where(v < 0.01, 0, -1) if ch == "trop" else np.full(len(v), -1)
        text = np.where(rng.random(len(v)) < 0.003, 1, text)  # VALUE without VALUENUM
        out.add(SUBJECT_ID=pt.subject_id, HADM_ID=float(adm.hadm_id), ITEMID=itemid, CHARTTIME=tt,
                VALUENUM=np.where(text >= 0, np.nan, v), TEXT=text, UOM=uom,
                FLAG=np.where((v < lo) | (v > hi), "abnormal", None).astype(object))
        summary["lab_" + ch] = [v]
        summary["first_" + ch] = float(v[0])
    if outpatient:  # outpatient draws before the admission: no HADM_ID (a real quirk)
        tt = np.full(4, adm.admittime - int(rng.uniform(3, 60) * DAY) // 60 * 60, dtype=np.int64)
        v = _lab_matrix(rng, np.full(1, -0.5), base, adm)[:, 0]
        for ch in ("creat", "na", "k", "glucose"):
            ci = _LAB_CH.index(ch)
            itemid, uom, lo, hi, _, _ = LAB_ITEMS[ch]
            out.add(SUBJECT_ID=pt.subject_id, HADM_ID=np.nan, ITEMID=itemid, CHARTTIME=tt[:1],
                    VALUENUM=v[ci:ci + 1], TEXT=-1, UOM=uom,
                    FLAG=np.array(["abnormal" if (v[ci] < lo or v[ci] > hi) else None], dtype=object))
