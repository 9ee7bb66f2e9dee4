"""Outcomes are caused by the simulated physiology: a model on vitals/labs beats one on age."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import cross_val_predict

from clinical_ml.mimic.loader import age_years, read_table
from clinical_ml.synth.generate import generate

VITALS = {211: "hr", 220045: "hr", 646: "spo2", 220277: "spo2", 618: "rr", 220210: "rr",
          52: "map", 456: "map", 220052: "map", 220181: "map"}


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "mimic"
    generate(out, patients=400, seed=21)
    src = str(out)
    adm = read_table(src, "ADMISSIONS", ["SUBJECT_ID", "HADM_ID", "ADMITTIME", "HOSPITAL_EXPIRE_FLAG"])
    pts = read_table(src, "PATIENTS", ["SUBJECT_ID", "DOB"])
    icu = read_table(src, "ICUSTAYS", ["HADM_ID", "ICUSTAY_ID", "INTIME"]).sort_values("INTIME")
    first = icu.groupby("HADM_ID", as_index=False).first()
    ce = read_table(src, "CHARTEVENTS", ["ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUENUM"])
    ce = ce[ce["ITEMID"].isin(list(VITALS))].merge(first, on="ICUSTAY_ID")
    ce = ce[(ce["CHARTTIME"] - ce["INTIME"]) <= pd.Timedelta(hours=24)]
    ce["var"] = ce["ITEMID"].map(VITALS)
    ce = ce[ce["VALUENUM"].between(1, 299)]
    feats = ce.pivot_table(index="HADM_ID", columns="var", values="VALUENUM", aggfunc=["min", "max", "mean"])
    feats.columns = [f"{a}_{b}" for a, b in feats.columns]
    df = adm.merge(pts, on="SUBJECT_ID").merge(feats.reset_index(), on="HADM_ID")
    df["age"] = age_years(df["DOB"], df["ADMITTIME"])
    dx = read_table(src, "DIAGNOSES_ICD", ["HADM_ID", "ICD9_CODE"])
    lab = read_table(src, "LABEVENTS", ["HADM_ID", "ITEMID", "VALUENUM"])
    return df.fillna(df.median(numeric_only=True)), dx, lab


def test_mortality_rate_and_learnability(cohort):
    df, _, _ = cohort
    y = df["HOSPITAL_EXPIRE_FLAG"].astype(int).to_numpy()
    assert 0.06 <= y.mean() <= 0.2
    phys = [c for c in df.columns if c.split("_")[0] in ("min", "max", "mean")] + ["age"]

    def auroc(cols):
        X = df[cols].to_numpy(dtype=float)
        X = (X - X.mean(0)) / (X.std(0) + 1e-9)
        p = cross_val_predict(LogisticRegression(max_iter=2000), X, y, cv=5, method="predict_proba")[:, 1]
        return roc_auc_score(y, p)

    strong, weak = auroc(phys), auroc(["age"])
    assert strong > 0.75 and strong > weak + 0.08, (strong, weak)


def test_coded_electrolyte_disorders_follow_lab_values(cohort):
    _, dx, lab = cohort
    na = lab[lab["ITEMID"] == 50983].groupby("HADM_ID")["VALUENUM"].min()
    coded = set(dx.loc[dx["ICD9_CODE"] == "2761", "HADM_ID"])
    assert coded and all(na[h] < 133 for h in coded if h in na.index)
    assert na[~na.index.isin(coded)].min() >= 133
