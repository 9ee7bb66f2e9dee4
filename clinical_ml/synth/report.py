"""``clinical-ml synth-report``: synthetic vs reference MIMIC-III marginals, pass/fail per row.

    clinical-ml synth-report --mimic data/synth --reference ../shared/data/mimic3-demo

Compares what both sources have (the demo lacks CHARTEVENTS and LABEVENTS: those rows are
reported against published MIMIC-III v1.4 figures only). Each row has a tolerance (absolute
for rates and medians, overlap for top-code lists); ``--strict`` makes a failed row exit 1.
The 100-patient demo is small and sicker than the full release (its mortality is far above
11%), so rows with a published full-release figure are checked against that figure instead.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

import numpy as np
import pandas as pd

from clinical_ml.io import write_json
from clinical_ml.mimic import files
from clinical_ml.mimic.loader import age_years, read_table

# Johnson et al., "MIMIC-III, a freely accessible critical care database", Sci Data 2016 (Table 2,
# adult critical care units): used where the 100-patient demo is not representative.
PUBLISHED = {"in-hospital mortality": 0.115, "ICU LOS median (days)": 2.1,
             "hospital LOS median (days)": 6.9, "age median (adults)": 65.8, "male share": 0.559}


@dataclass
class Row:
    metric: str
    synthetic: float | str
    reference: float | str | None
    source: str
    tolerance: str
    ok: bool | None


def _marginals(src: str) -> dict:
    have = files.list_tables(src)
    pts = read_table(src, "PATIENTS", ["SUBJECT_ID", "GENDER", "DOB"])
    adm = read_table(src, "ADMISSIONS", ["SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "ADMISSION_TYPE",
                                         "HOSPITAL_EXPIRE_FLAG"])
    m: dict = {}
    first = adm.sort_values("ADMITTIME").groupby("SUBJECT_ID", as_index=False).first().merge(pts, on="SUBJECT_ID")
    age = age_years(first["DOB"], first["ADMITTIME"])
    adults = age[age >= 18]
    m["age median (adults)"] = float(adults.median())
    m["share aged > 89"] = float((adults > 89).mean())
    m["male share"] = float((pts["GENDER"] == "M").mean())
    types = adm["ADMISSION_TYPE"].value_counts(normalize=True)
    for t in ("EMERGENCY", "ELECTIVE", "URGENT"):
        m[f"admission type {t}"] = float(types.get(t, 0.0))
    m["in-hospital mortality"] = float(adm["HOSPITAL_EXPIRE_FLAG"].astype(float).mean())
    m["hospital LOS median (days)"] = float(((adm["DISCHTIME"] - adm["ADMITTIME"]).dt.total_seconds() / 86400).median())
    m["admissions per patient"] = float(len(adm) / max(len(pts), 1))
    a = adm.sort_values(["SUBJECT_ID", "ADMITTIME"])
    gap = (a.groupby("SUBJECT_ID")["ADMITTIME"].shift(-1) - a["DISCHTIME"]).dt.total_seconds() / 86400
    m["30-day readmission (per discharge alive)"] = float(((gap <= 30) & (a["HOSPITAL_EXPIRE_FLAG"] == 0)).sum()
                                                          / max((a["HOSPITAL_EXPIRE_FLAG"] == 0).sum(), 1))
    if "ICUSTAYS" in have:
        icu = read_table(src, "ICUSTAYS", ["HADM_ID", "ICUSTAY_ID", "DBSOURCE", "LOS"])
        m["ICU LOS median (days)"] = float(icu["LOS"].median())
        m["ICU LOS 90th percentile (days)"] = float(icu["LOS"].quantile(0.9))
        m["ICU stays per admission"] = float(len(icu) / max(len(adm), 1))
        icu_days = float(icu["LOS"].sum())
        for t in ("OUTPUTEVENTS", "INPUTEVENTS_MV", "CHARTEVENTS"):
            if t in have:
                n = sum(len(c) for c in _iter_ids(src, t))
                m[f"{t} rows per ICU day"] = n / max(icu_days, 1e-9)
    for t, col in (("DIAGNOSES_ICD", "ICD9_CODE"), ("PRESCRIPTIONS", "DRUG"), ("PROCEDURES_ICD", "ICD9_CODE")):
        if t in have:
            df = read_table(src, t, ["HADM_ID", col])
            m[f"{t} rows per admission"] = float(len(df) / max(len(adm), 1))
            m[f"top {t}"] = df[col].value_counts().index.tolist()[:50]
    return m


def _iter_ids(src: str, table: str):
    from clinical_ml.mimic.loader import iter_table

    yield from iter_table(src, table, ["ROW_ID"])


def _num(metric: str, syn: dict, ref: dict, tol: float, rel: bool = False) -> list[Row]:
    rows = []
    s = syn.get(metric)
    if s is None:
        return rows
    r = ref.get(metric)
    if r is not None and metric not in PUBLISHED:
        bound = tol * abs(r) if rel else tol
        rows.append(Row(metric, round(s, 3), round(r, 3), "reference", f"±{tol:.0%} rel" if rel else f"±{tol:g}",
                        bool(abs(s - r) <= bound)))
    if metric in PUBLISHED:
        p = PUBLISHED[metric]
        bound = tol * abs(p) if rel else tol
        rows.append(Row(metric, round(s, 3), p, "MIMIC-III v1.4 paper", f"±{tol:.0%} rel" if rel else f"±{tol:g}",
                        bool(abs(s - p) <= bound)))
        if r is not None:
            rows.append(Row(metric, round(s, 3), round(r, 3), "reference (info: demo not representative)", "-", None))
    return rows


def compare(synthetic: str, reference: str) -> list[Row]:
    syn, ref = _marginals(synthetic), _marginals(reference)
    rows: list[Row] = []
    rows += _num("age median (adults)", syn, ref, 6)
    rows += _num("share aged > 89", syn, ref, 0.06)
    rows += _num("male share", syn, ref, 0.08)
    for t in ("EMERGENCY", "ELECTIVE", "URGENT"):
        rows += _num(f"admission type {t}", syn, ref, 0.15)
    rows += _num("in-hospital mortality", syn, ref, 0.03)
    rows += _num("hospital LOS median (days)", syn, ref, 0.35, rel=True)
    rows += _num("ICU LOS median (days)", syn, ref, 0.35, rel=True)
    rows += _num("ICU LOS 90th percentile (days)", syn, ref, 0.6, rel=True)
    rows += _num("ICU stays per admission", syn, ref, 0.25, rel=True)
    rows += _num("admissions per patient", syn, ref, 0.5, rel=True)
    rows += _num("30-day readmission (per discharge alive)", syn, ref, 0.1)
    for t in ("OUTPUTEVENTS", "INPUTEVENTS_MV"):
        rows += _num(f"{t} rows per ICU day", syn, ref, 0.6, rel=True)
    for t in ("DIAGNOSES_ICD", "PRESCRIPTIONS", "PROCEDURES_ICD"):
        rows += _num(f"{t} rows per admission", syn, ref, 0.6, rel=True)
    if "CHARTEVENTS rows per ICU day" in syn and "CHARTEVENTS rows per ICU day" not in ref:
        rows.append(Row("CHARTEVENTS rows per ICU day", round(syn["CHARTEVENTS rows per ICU day"], 1), None,
                        "reference lacks CHARTEVENTS", "-", None))
    for t in ("DIAGNOSES_ICD", "PRESCRIPTIONS", "PROCEDURES_ICD"):
        key = f"top {t}"
        if key in syn and key in ref and ref[key]:
            top = syn[key][:10]
            share = float(np.mean([c in set(ref[key]) for c in top])) if top else 0.0
            rows.append(Row(f"{t}: synthetic top-10 found in reference top-50", round(share, 2),
                            ", ".join(map(str, ref[key][:5])), "reference", ">= 0.4", share >= 0.4))
    return rows


VITALS = {211: "hr", 220045: "hr", 646: "spo2", 220277: "spo2", 618: "rr", 220210: "rr",
          52: "map", 456: "map", 220052: "map", 220181: "map"}


def mortality_features(src: str, hours: float = 24.0) -> pd.DataFrame:
    """Per admission: min/max/mean of HR, SpO2, RR, MAP over the first ``hours`` of the first
    ICU stay, age, and HOSPITAL_EXPIRE_FLAG; a quick probe of whether outcomes are learnable."""
    adm = read_table(src, "ADMISSIONS", ["SUBJECT_ID", "HADM_ID", "ADMITTIME", "HOSPITAL_EXPIRE_FLAG"])
    pts = read_table(src, "PATIENTS", ["SUBJECT_ID", "DOB"])
    icu = read_table(src, "ICUSTAYS", ["HADM_ID", "ICUSTAY_ID", "INTIME"]).sort_values("INTIME")
    first = icu.groupby("HADM_ID", as_index=False).first()
    parts = []
    for ce in _iter_chart(src):
        ce = ce[ce["ITEMID"].isin(list(VITALS)) & ce["VALUENUM"].between(1, 299)].merge(first, on="ICUSTAY_ID")
        parts.append(ce[(ce["CHARTTIME"] - ce["INTIME"]) <= pd.Timedelta(hours=hours)])
    ce = pd.concat(parts, ignore_index=True)
    ce["var"] = ce["ITEMID"].map(VITALS)
    feats = ce.pivot_table(index="HADM_ID", columns="var", values="VALUENUM", aggfunc=["min", "max", "mean"])
    feats.columns = [f"{a}_{b}" for a, b in feats.columns]
    df = adm.merge(pts, on="SUBJECT_ID").merge(feats.reset_index(), on="HADM_ID")
    df["age"] = age_years(df["DOB"], df["ADMITTIME"])
    return df.fillna(df.median(numeric_only=True))


def _iter_chart(src: str):
    from clinical_ml.mimic.loader import iter_table

    yield from iter_table(src, "CHARTEVENTS", ["ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUENUM"])


def learnability(src: str) -> dict:
    """Cross-validated AUROC for in-hospital mortality: vitals+age (good) vs age alone (weak)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    df = mortality_features(src)
    y = df["HOSPITAL_EXPIRE_FLAG"].astype(int).to_numpy()

    def auroc(cols):
        X = df[cols].to_numpy(dtype=float)
        X = (X - X.mean(0)) / (X.std(0) + 1e-9)
        p = cross_val_predict(LogisticRegression(max_iter=2000), X, y, cv=5, method="predict_proba")[:, 1]
        return float(roc_auc_score(y, p))

    phys = [c for c in df.columns if c.split("_")[0] in ("min", "max", "mean")] + ["age"]
    return {"admissions": int(len(df)), "mortality": float(y.mean()),
            "auroc_vitals_age": auroc(phys), "auroc_age_only": auroc(["age"])}


def format_rows(rows: list[Row]) -> str:
    header = ("metric", "synthetic", "reference", "source", "tolerance", "result")
    table = [header] + [(r.metric, str(r.synthetic), "-" if r.reference is None else str(r.reference), r.source,
                         r.tolerance, "-" if r.ok is None else ("PASS" if r.ok else "FAIL")) for r in rows]
    widths = [min(max(len(x[i]) for x in table), 60) for i in range(len(header))]
    lines = ["  ".join(x[i][:60].ljust(widths[i]) for i in range(len(header))) for x in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    checked = [r for r in rows if r.ok is not None]
    lines.append(f"\n{sum(r.ok for r in checked)}/{len(checked)} checked rows pass")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="clinical-ml synth-report", description=__doc__.splitlines()[0])
    ap.add_argument("--mimic", required=True, help="synthetic MIMIC-III folder")
    ap.add_argument("--reference", required=True, help="reference MIMIC-III folder (e.g. the demo)")
    ap.add_argument("--out", default=None, help="also write the rows as JSON")
    ap.add_argument("--strict", action="store_true", help="exit 1 when a checked row fails")
    args = ap.parse_args(argv)
    rows = compare(args.mimic, args.reference)
    print(format_rows(rows))
    if args.out:
        write_json(args.out, {"rows": [r.__dict__ for r in rows]})
    failed = [r for r in rows if r.ok is False]
    return 1 if (args.strict and failed) else 0


if __name__ == "__main__":
    sys.exit(main())
