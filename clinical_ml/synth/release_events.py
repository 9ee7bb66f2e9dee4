"""Release-density filler events: chart rounds, lab panels, outputs and both input tables.

Charting and lab draws come in rounds (a nurse's assessment, a blood draw): evenly spaced over
the stay or admission, each round charting every filler item at most once with the item's
probability, so an item never has two values at one time. Outputs and inputs are single rows at
random minutes of the stay. Columns are those of ``tables`` (chart, labs, outputs) or the
release's (inputs); the callers add nothing but ROW_IDs.
"""
from __future__ import annotations

import numpy as np
import pyarrow as pa

from clinical_ml.synth import tables
from clinical_ml.synth.cohort import HOUR
from clinical_ml.synth.release import RATES, ItemSet, Skeleton, filler_counts, hosp_weight, icu_weight, \
    inverse_cdf, items, sample_values, texts

ORDER_BASE = 1_000_000_000  # filler ORDERIDs: above every benchmark order range (Ids.for_chunk)
_WEIGHT_ITEMS = {763: 1.0, 224639: 1.0, 226512: 1.0, 226531: 1 / 2.2046}  # kg per unit


def _expand(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unit, k): row r belongs to unit ``unit[r]`` and is its ``k[r]``-th row."""
    unit = np.repeat(np.arange(len(counts)), counts)
    return unit, np.arange(len(unit)) - np.repeat(np.cumsum(counts) - counts, counts)


def _rounds(rng, n: np.ndarray, start: np.ndarray, end: np.ndarray, its: ItemSet):
    """(unit, item, time) of ``n[u]`` rounds evenly spaced in [start[u], end[u]) per unit."""
    unit, k = _expand(n)
    t = start[unit] + ((k + 0.5) * (end - start)[unit] / np.maximum(n[unit], 1)).astype(np.int64)
    r, i = np.nonzero(rng.random((len(unit), len(its.itemid))) < its.incl[None, :])
    return unit[r], i, t[r] // 60 * 60


def _scatter(rng, n: np.ndarray, start: np.ndarray, end: np.ndarray, its: ItemSet):
    """(unit, item, minute) of ``n[u]`` independent rows per unit, items by their probabilities."""
    unit, _ = _expand(n)
    t = start[unit] + (rng.random(len(unit)) * (end - start)[unit]).astype(np.int64)
    return unit, rng.choice(len(its.itemid), size=len(unit), p=its.p), t // 60 * 60


def _by_database(sk: Skeleton, table: str):
    """(carevue, the database's filler items, its stays' rows) for CareVue, then MetaVision."""
    for carevue in (True, False):
        yield carevue, items(table, "carevue" if carevue else "metavision"), np.flatnonzero(sk.s_carevue == carevue)


def chart(rng, sk: Skeleton, bench: np.ndarray) -> dict:
    """CHARTEVENTS rounds per stay: CareVue or MetaVision items by the stay's database."""
    want = RATES["CHARTEVENTS"] * icu_weight(sk)
    parts = []
    for carevue, its, sel in _by_database(sk, "CHARTEVENTS"):
        n = filler_counts(rng, want[sel] / its.incl.sum(), bench[sel] / its.incl.sum())
        unit, i, t = _rounds(rng, n, sk.s_in[sel], sk.s_out[sel], its)
        s = sel[unit]
        value, text, _ = sample_values(rng, its, i)
        parts.append({"SUBJECT_ID": sk.s_subject[s], "HADM_ID": sk.s_hadm[s], "ICUSTAY_ID": sk.s_icustay[s],
                      "ITEMID": its.itemid[i], "CHARTTIME": np.maximum(t, sk.s_in[s]), "VALUENUM": value,
                      "TEXT": text, "UOM": its.uom[i], "DB": np.full(len(i), 0 if carevue else 1)})
    arr = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    return tables.chartevents(arr, rng, list(texts())) if len(arr["ITEMID"]) else {}


def labs(rng, sk: Skeleton, bench: np.ndarray) -> dict:
    """LABEVENTS panels per admission; FLAG from the item's abnormal tails in the demo."""
    its = items("LABEVENTS")
    per = its.incl.sum()
    n = filler_counts(rng, RATES["LABEVENTS"] * hosp_weight(sk) / per, bench / per)
    unit, i, t = _rounds(rng, n, sk.a_in + HOUR // 2, np.maximum(sk.a_out, sk.a_in + HOUR), its)
    value, text, u = sample_values(rng, its, i)
    abnormal = np.where(its.numeric[i], (u < its.p_low[i]) | (u > 1 - its.p_high[i]), u < its.p_high[i])
    uom = its.uom[i]
    return tables.labevents({"SUBJECT_ID": sk.a_subject[unit], "HADM_ID": sk.a_hadm[unit].astype(float),
                             "ITEMID": its.itemid[i], "CHARTTIME": t, "VALUENUM": value, "TEXT": text,
                             "UOM": np.where(uom == "", None, uom),
                             "FLAG": np.where(abnormal, "abnormal", None).astype(object)}, list(texts())) \
        if len(i) else {}


def outputs(rng, sk: Skeleton, bench: np.ndarray) -> dict:
    """OUTPUTEVENTS beyond the Foley urine: drains, stool, voids, chest tubes, residuals."""
    want = RATES["OUTPUTEVENTS"] * icu_weight(sk)
    parts = []
    for _, its, sel in _by_database(sk, "OUTPUTEVENTS"):
        unit, i, t = _scatter(rng, filler_counts(rng, want[sel], bench[sel]), sk.s_in[sel], sk.s_out[sel], its)
        s = sel[unit]
        v = np.rint(inverse_cdf(its.q, i, rng.random(len(i))))
        parts.append(({"SUBJECT_ID": sk.s_subject[s], "HADM_ID": sk.s_hadm[s], "ICUSTAY_ID": sk.s_icustay[s],
                       "ITEMID": its.itemid[i], "CHARTTIME": np.maximum(t, sk.s_in[s]), "VALUE": v}, its.uom[i]))
    arr = {k: np.concatenate([p[k] for p, _ in parts]) for k in parts[0][0]}
    if not len(arr["ITEMID"]):
        return {}
    cols = tables.outputevents(arr, rng)
    cols["VALUEUOM"] = pa.array(np.concatenate([u for _, u in parts]), type=pa.string())
    return cols


def _orders(icustay: np.ndarray, slot: np.ndarray) -> np.ndarray:
    """One order per (stay, item), unique across chunks: each ICUSTAY_ID reserves 100 slots
    (CareVue items 0-49, MetaVision items 50-99)."""
    assert not len(slot) or slot.max() < 100
    return ORDER_BASE + (icustay - 200000) * 100 + slot


def _amount_rate(rng, its: ItemSet, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AMOUNT and RATE from one draw (a faster drip gives more), rounded to the item's decimals."""
    u, scale = rng.random(len(i)), its.scale[i]
    rate = np.rint(inverse_cdf(its.q2, i, u) * scale) / scale  # NaN where the item has no rate
    return np.rint(inverse_cdf(its.q, i, u) * scale) / scale, rate


def inputs_cv(rng, sk: Skeleton) -> dict:
    """INPUTEVENTS_CV: CareVue stays' hourly-charted fluids, drips and boluses."""
    its = items("INPUTEVENTS_CV", "carevue")
    sel = np.flatnonzero(sk.s_carevue)
    n = filler_counts(rng, RATES["INPUTEVENTS_CV"] * icu_weight(sk)[sel], 0.0)
    unit, i, t = _scatter(rng, n, sk.s_in[sel], sk.s_out[sel], its)
    if not len(i):
        return {}
    s = sel[unit]
    t = np.clip(t // HOUR * HOUR, sk.s_in[s], sk.s_out[s])
    amount, rate = _amount_rate(rng, its, i)
    orders = _orders(sk.s_icustay[s], i)
    uom, ruom = its.uom[i], np.where(np.isnan(rate), None, its.uom2[i])
    return {"SUBJECT_ID": sk.s_subject[s], "HADM_ID": sk.s_hadm[s], "ICUSTAY_ID": sk.s_icustay[s], "CHARTTIME": t,
            "ITEMID": its.itemid[i], "AMOUNT": amount, "AMOUNTUOM": uom, "RATE": rate, "RATEUOM": ruom,
            "STORETIME": t + rng.integers(5, 90, len(i)) * 60,
            "CGID": tables.CGIDS[rng.integers(0, len(tables.CGIDS), len(i))], "ORDERID": orders,
            "LINKORDERID": orders, "ORIGINALAMOUNT": amount, "ORIGINALAMOUNTUOM": uom, "ORIGINALROUTE": its.cat[i],
            "ORIGINALRATE": rate, "ORIGINALRATEUOM": ruom}


def stay_weights(chart_arr: dict, sk: Skeleton) -> np.ndarray:
    """Each stay's first charted weight in kg (NaN when none): INPUTEVENTS_MV's PATIENTWEIGHT."""
    item = chart_arr["ITEMID"].astype(np.int64)
    f = np.select([item == k for k in _WEIGHT_ITEMS], list(_WEIGHT_ITEMS.values()), np.nan)
    ok = ~np.isnan(f)
    stays, first = np.unique(chart_arr["ICUSTAY_ID"][ok].astype(np.int64), return_index=True)
    out = np.full(len(sk.s_icustay), np.nan)
    if not len(stays):
        return out
    kg = np.round(chart_arr["VALUENUM"][ok][first].astype(float) * f[ok][first], 1)
    pos = np.minimum(np.searchsorted(stays, sk.s_icustay), len(stays) - 1)
    hit = stays[pos] == sk.s_icustay
    out[hit] = kg[pos[hit]]
    return out


def inputs_mv(rng, sk: Skeleton, bench: np.ndarray, weight: np.ndarray) -> dict:
    """INPUTEVENTS_MV beyond the simulated drips: boluses, antibiotics, feeds, electrolytes."""
    its = items("INPUTEVENTS_MV", "metavision")
    sel = np.flatnonzero(~sk.s_carevue)
    n = filler_counts(rng, RATES["INPUTEVENTS_MV"] * icu_weight(sk)[sel], bench[sel])
    unit, i, t = _scatter(rng, n, sk.s_in[sel], sk.s_out[sel], its)
    if not len(i):
        return {}
    s = sel[unit]
    t = np.maximum(t, sk.s_in[s])
    minutes = np.maximum(1, np.rint(its.minutes[i] * np.exp(rng.normal(0, 0.5, len(i))) * (its.minutes[i] > 1)))
    end = np.maximum(np.minimum(t + minutes.astype(np.int64) * 60, sk.s_out[s]), t + 60)
    amount, rate = _amount_rate(rng, its, i)
    orders = _orders(sk.s_icustay[s], i + 50)
    n_ = len(i)
    return {"SUBJECT_ID": sk.s_subject[s], "HADM_ID": sk.s_hadm[s], "ICUSTAY_ID": sk.s_icustay[s], "STARTTIME": t,
            "ENDTIME": end, "ITEMID": its.itemid[i], "AMOUNT": amount, "AMOUNTUOM": its.uom[i], "RATE": rate,
            "RATEUOM": np.where(np.isnan(rate), None, its.uom2[i]), "STORETIME": end,
            "CGID": tables.CGIDS[rng.integers(0, len(tables.CGIDS), n_)], "ORDERID": orders, "LINKORDERID": orders,
            "ORDERCATEGORYNAME": its.cat[i], "ORDERCOMPONENTTYPEDESCRIPTION": ["Main order parameter"] * n_,
            "ORDERCATEGORYDESCRIPTION": its.cat2[i], "PATIENTWEIGHT": weight[s], "ISOPENBAG": np.zeros(n_),
            "CONTINUEINNEXTDEPT": np.zeros(n_), "CANCELREASON": np.zeros(n_),
            "STATUSDESCRIPTION": ["FinishedRunning"] * n_, "ORIGINALAMOUNT": amount, "ORIGINALRATE": rate}
