"""``clinical-ml synth --density release``: the release's volumes per admission.

The default (benchmark) density writes what the benchmark tasks and notes need: ~600 chart rows
per admission, where MIMIC-III v1.4 has ~5,600, most of them items no benchmark variable uses
(rhythm, alarms, ventilator settings, nursing assessments). Release density adds such *filler*
rows until every event table holds the release's rows per admission (``RATES``; INPUTEVENTS_CV per
CareVue admission, INPUTEVENTS_MV per MetaVision one), spread over the admissions and stays in
proportion to their length. Filler uses only non-benchmark itemids (``data/release_items.csv``,
made by ``build_release``), is drawn from its own random stream (seed, chunk, ``STREAM``) and is
appended after each chunk's benchmark rows, so the benchmark rows and everything built from them
(tasks, gold notes) are byte-identical to the default density's.
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from clinical_ml.synth.cohort import DAY, Patient
from clinical_ml.synth.vocab import DATA, dictionary

DENSITIES = ("benchmark", "release")
STREAM = 0x72656C  # "rel": the filler's stream is default_rng([seed, chunk, STREAM])

# MIMIC-III v1.4 row counts (the release's documented table sizes) and NOTEEVENTS by CATEGORY.
RELEASE: dict[str, int] = {
    "PATIENTS": 46_520, "ADMISSIONS": 58_976, "ICUSTAYS": 61_532, "CHARTEVENTS": 330_712_483,
    "LABEVENTS": 27_854_055, "INPUTEVENTS_CV": 17_527_935, "INPUTEVENTS_MV": 3_618_991,
    "OUTPUTEVENTS": 4_349_218, "PRESCRIPTIONS": 4_156_450, "NOTEEVENTS": 2_083_180,
}
RELEASE_NOTES: dict[str, int] = {
    "Nursing/other": 822_497, "Radiology": 522_279, "Nursing": 223_556, "ECG": 209_051, "Physician": 141_624,
    "Discharge summary": 59_652, "Echo": 45_794, "Respiratory": 31_739, "Nutrition": 9_418, "General": 8_301,
    "Rehab Services": 5_431, "Social Work": 2_670, "Case Management": 967, "Pharmacy": 103, "Consult": 98,
}
# The generator's default cohort, measured over 80,000 patients (seeds 0 and 1; cohort.py only):
# 55.2% of admissions are CareVue (make_patient's 55% of patients), an admission spends 3.47 days
# in ICUs and 7.52 in hospital. A CareVue admission gets INPUTEVENTS_CV / (admissions x 0.552), so
# a default-period database has the release's CV and MV totals (the release itself: 58% of stays
# CareVue). tests/test_synth_density.py re-measures these on a fresh cohort.
CAREVUE_SHARE = 0.552
MEAN_ICU_DAYS = 3.47
MEAN_HOSP_DAYS = 7.52
FIXED_SHARE = 0.2  # part of an admission's rows that does not scale with its length of stay

_ADM = RELEASE["ADMISSIONS"]
RATES: dict[str, float] = {  # release rows per admission (per CareVue / MetaVision one for inputs)
    **{t: RELEASE[t] / _ADM for t in ("CHARTEVENTS", "LABEVENTS", "OUTPUTEVENTS", "PRESCRIPTIONS")},
    "INPUTEVENTS_CV": RELEASE["INPUTEVENTS_CV"] / (_ADM * CAREVUE_SHARE),
    "INPUTEVENTS_MV": RELEASE["INPUTEVENTS_MV"] / (_ADM * (1 - CAREVUE_SHARE)),
}
NOTE_RATES: dict[str, float] = {c: n / _ADM for c, n in RELEASE_NOTES.items()}


def synth_tables(base: tuple[str, ...], density: str) -> tuple[str, ...]:
    """The tables a run writes: release density adds INPUTEVENTS_CV (CareVue inputs)."""
    if density == "benchmark":
        return base
    i = base.index("INPUTEVENTS_MV")
    return base[:i] + ("INPUTEVENTS_CV",) + base[i:]


def dictionary_rows(name: str, density: str) -> list[dict[str, str]]:
    """Dictionary rows: the filler's items follow the default ones at release density."""
    extra = {"d_items": "release_d_items", "d_labitems": "release_d_labitems"}.get(name)
    return dictionary(name) + (dictionary(extra) if density == "release" and extra else [])


@dataclass(frozen=True)
class ItemSet:
    """Filler items of one table (and database): itemids, sampling probabilities, value tables.

    Numbers are drawn through an 11-point inverse CDF (``q``), texts by cumulative option
    probabilities (``cum``) into the global ``texts()`` list."""

    itemid: np.ndarray
    p: np.ndarray
    uom: np.ndarray
    uom2: np.ndarray
    cat: np.ndarray
    cat2: np.ndarray
    scale: np.ndarray      # 10 ** decimals
    numeric: np.ndarray
    q: np.ndarray          # (items, 11); zeros for text items
    q2: np.ndarray         # rate quantiles; NaN where the item has no rate
    cum: np.ndarray        # (items, options) cumulative probabilities, padded with 1
    text_off: np.ndarray   # first option's index in texts()
    p_low: np.ndarray
    p_high: np.ndarray
    minutes: np.ndarray

    @property
    def incl(self) -> np.ndarray:
        """Per-round charting probabilities: proportional to p, the most frequent item 95%."""
        return 0.95 * self.p / self.p.max()


def _points(spec: str, k: int = 11) -> np.ndarray:
    pts = np.array([float(x) for x in spec.split("|")]) if spec else np.zeros(2)
    return np.interp(np.linspace(0, 1, k), np.linspace(0, 1, len(pts)), pts)


def _is_text(spec: str) -> bool:
    return ":" in spec


@lru_cache(maxsize=1)
def _spec() -> tuple[list[dict], tuple[str, ...]]:
    with open(DATA / "release_items.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    texts = [opt.rsplit(":", 1)[0] for r in rows if _is_text(r["VALUES"]) for opt in r["VALUES"].split("|")]
    return rows, tuple(texts)


def texts() -> tuple[str, ...]:
    """Every text option of every filler item (text indices point here)."""
    return _spec()[1]


@lru_cache(maxsize=None)
def items(table: str, db: str = "") -> ItemSet:
    rows, _ = _spec()
    off, sel = 0, []
    for r in rows:  # text offsets count every earlier text item's options, whatever its table
        if r["TABLE"] == table and r["DBSOURCE"] == db:
            sel.append((r, off))
        if _is_text(r["VALUES"]):
            off += len(r["VALUES"].split("|"))
    if not sel:
        raise KeyError(f"no release filler items for {table} {db}")
    width = max(len(r["VALUES"].split("|")) if _is_text(r["VALUES"]) else 1 for r, _ in sel)
    cum = np.ones((len(sel), width))
    for j, (r, _) in enumerate(sel):
        if _is_text(r["VALUES"]):
            w = np.array([float(o.rsplit(":", 1)[1]) for o in r["VALUES"].split("|")])
            cum[j, :len(w) - 1] = np.cumsum(w / w.sum())[:-1]
    col = lambda k: np.array([r[k] for r, _ in sel], dtype=object)  # noqa: E731
    num = lambda k: np.array([float(r[k] or 0) for r, _ in sel])  # noqa: E731
    w = num("WEIGHT")
    return ItemSet(
        itemid=np.array([int(r["ITEMID"]) for r, _ in sel], dtype=np.int64), p=w / w.sum(),
        uom=col("UOM"), uom2=col("UOM2"), cat=col("CAT"), cat2=col("CAT2"), scale=10.0 ** num("DECIMALS"),
        numeric=np.array([not _is_text(r["VALUES"]) for r, _ in sel]),
        q=np.array([np.zeros(11) if _is_text(r["VALUES"]) else _points(r["VALUES"]) for r, _ in sel]),
        q2=np.array([_points(r["VALUES2"]) if r["VALUES2"] else np.full(11, np.nan) for r, _ in sel]),
        cum=cum, text_off=np.array([o for _, o in sel], dtype=np.int64),
        p_low=num("P_LOW"), p_high=num("P_HIGH"), minutes=num("MINUTES"))


def inverse_cdf(q: np.ndarray, idx: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Values of items ``idx`` at probabilities ``u`` (linear between the 11 points)."""
    pos = u * (q.shape[1] - 1)
    lo = np.minimum(pos.astype(np.int64), q.shape[1] - 2)
    f = pos - lo
    return q[idx, lo] * (1 - f) + q[idx, lo + 1] * f


def sample_values(rng, its: ItemSet, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(VALUENUM, index into ``texts()`` or -1, the uniform draw) for rows of items ``idx``."""
    u = rng.random(len(idx))
    scale = its.scale[idx]
    v = np.rint(inverse_cdf(its.q, idx, u) * scale) / scale
    opt = (u[:, None] >= its.cum[idx]).sum(axis=1)
    numeric = its.numeric[idx]
    return np.where(numeric, v, np.nan), np.where(numeric, -1, its.text_off[idx] + opt), u


@dataclass(frozen=True)
class Skeleton:
    """A chunk's admissions (``a_*``) and ICU stays (``s_*``) as arrays; filler is drawn per row."""

    a_subject: np.ndarray
    a_hadm: np.ndarray
    a_in: np.ndarray
    a_out: np.ndarray
    a_carevue: np.ndarray
    s_subject: np.ndarray
    s_hadm: np.ndarray
    s_icustay: np.ndarray
    s_in: np.ndarray
    s_out: np.ndarray
    s_adm: np.ndarray       # the stay's admission (row of a_*)
    s_carevue: np.ndarray
    s_nstays: np.ndarray    # stays of the stay's admission


def skeleton(pts: list[Patient]) -> Skeleton:
    a, s = [], []
    for p in pts:
        for adm in p.admissions:
            for st in adm.stays:
                s.append((p.subject_id, adm.hadm_id, st.icustay_id, st.intime, st.outtime, len(a),
                          st.dbsource == "carevue", len(adm.stays)))
            a.append((p.subject_id, adm.hadm_id, adm.admittime, adm.dischtime, p.dbsource == "carevue"))
    ac = [np.array(c) for c in zip(*a)]
    sc = [np.array(c) for c in zip(*s)] if s else [np.array([], dtype=np.int64)] * 8
    return Skeleton(*[c.astype(bool) if i == 4 else c.astype(np.int64) for i, c in enumerate(ac)],
                    *[c.astype(bool) if i == 6 else c.astype(np.int64) for i, c in enumerate(sc)])


def hosp_weight(sk: Skeleton) -> np.ndarray:
    """Each admission's share of the per-admission rate (mean 1 over the default cohort)."""
    days = (sk.a_out - sk.a_in) / DAY
    return FIXED_SHARE + (1 - FIXED_SHARE) * days / MEAN_HOSP_DAYS


def icu_weight(sk: Skeleton) -> np.ndarray:
    """Each stay's share of its admission's ICU rows (summed over the stays: mean 1)."""
    days = (sk.s_out - sk.s_in) / DAY
    return FIXED_SHARE / sk.s_nstays + (1 - FIXED_SHARE) * days / MEAN_ICU_DAYS


def count_by(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """How many of ``keys`` equal each of the unique ``ids`` (other keys, NaN: ignored)."""
    keys = np.asarray(keys, dtype=float)
    keys = keys[~np.isnan(keys)].astype(np.int64)
    if not len(ids) or not len(keys):
        return np.zeros(len(ids), dtype=np.int64)
    order = np.argsort(ids)
    pos = np.minimum(np.searchsorted(ids[order], keys), len(ids) - 1)
    hit = ids[order][pos] == keys
    return np.bincount(order[pos[hit]], minlength=len(ids))


def filler_counts(rng, expected: np.ndarray, bench) -> np.ndarray:
    """Filler rows per unit (stay or admission): Poisson around what the release expects beyond
    the unit's benchmark rows. Units whose benchmark rows already exceed their share (a long
    ventilated stay's hourly drips) get none, and the others' means are scaled down by as much,
    so the chunk's expected total is still sum(expected) - sum(bench)."""
    expected, bench = np.broadcast_arrays(np.asarray(expected, dtype=float), np.asarray(bench, dtype=float))
    deficit = expected - bench
    short = np.maximum(deficit, 0.0)
    total = short.sum()
    lam = short * (max(float(deficit.sum()), 0.0) / total) if total > 0 else short
    return rng.poisson(lam)


def chunk_filler(rng, pts: list[Patient], bench: dict[str, dict], arrays: dict[str, dict]) -> tuple[dict, list[str]]:
    """Release-density rows of one chunk (table -> columns) and the filler notes' gold lines.

    ``bench`` holds the chunk's default-density columns (PRESCRIPTIONS, NOTEEVENTS) and
    ``arrays`` its event buffers (chart, labs, outputs, inputs) before formatting."""
    from clinical_ml.synth import release_events as ev, release_notes as rn

    sk = skeleton(pts)
    out: dict[str, dict] = {}
    if len(sk.s_icustay):
        out["CHARTEVENTS"] = ev.chart(rng, sk, count_by(arrays["chart"]["ICUSTAY_ID"], sk.s_icustay))
        out["OUTPUTEVENTS"] = ev.outputs(rng, sk, count_by(arrays["outputs"]["ICUSTAY_ID"], sk.s_icustay))
        out["INPUTEVENTS_CV"] = ev.inputs_cv(rng, sk)
        out["INPUTEVENTS_MV"] = ev.inputs_mv(rng, sk, count_by(arrays["inputs"]["ICUSTAY_ID"], sk.s_icustay),
                                             ev.stay_weights(arrays["chart"], sk))
    out["LABEVENTS"] = ev.labs(rng, sk, count_by(arrays["labs"]["HADM_ID"], sk.a_hadm))
    adms = [a for p in pts for a in p.admissions]
    out["PRESCRIPTIONS"] = rn.prescriptions(rng, sk, adms, count_by(bench["PRESCRIPTIONS"].get("HADM_ID", []), sk.a_hadm))
    out["NOTEEVENTS"], gold = rn.notes(rng, sk, pts, bench["NOTEEVENTS"])
    return {k: v for k, v in out.items() if v}, gold
