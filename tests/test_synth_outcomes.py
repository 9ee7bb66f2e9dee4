"""Outcomes are caused by the simulated physiology: a model on vitals/labs beats one on age."""
from __future__ import annotations

import pytest

from clinical_ml.mimic.loader import read_table
from clinical_ml.synth import report
from clinical_ml.synth.generate import generate

@pytest.fixture(scope="module")
def src(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "mimic"
    generate(out, patients=400, seed=21)
    return str(out)


def test_mortality_rate_and_learnability(src):
    r = report.learnability(src)
    assert 0.06 <= r["mortality"] <= 0.2, r
    assert r["auroc_vitals_age"] > 0.75 and r["auroc_vitals_age"] > r["auroc_age_only"] + 0.08, r


def test_coded_electrolyte_disorders_follow_lab_values(src):
    dx = read_table(src, "DIAGNOSES_ICD", ["HADM_ID", "ICD9_CODE"])
    lab = read_table(src, "LABEVENTS", ["HADM_ID", "ITEMID", "VALUENUM"])
    na = lab[lab["ITEMID"] == 50983].groupby("HADM_ID")["VALUENUM"].min()
    coded = set(dx.loc[dx["ICD9_CODE"] == "2761", "HADM_ID"])
    assert coded and all(na[h] < 133 for h in coded if h in na.index)
    assert na[~na.index.isin(coded)].min() >= 133
