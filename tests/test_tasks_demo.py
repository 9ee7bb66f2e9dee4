"""Cohort filters on the real MIMIC-III demo (100 patients) against an independent pandas
re-statement of mimic3-benchmarks' extract_subjects steps. Skips without ../shared/data."""
from __future__ import annotations

import duckdb
import pandas as pd

from clinical_ml.tasks import cohort
from conftest import shared_subdir


def _reference_steps(demo) -> dict:
    icu = pd.read_csv(demo / "ICUSTAYS.csv", parse_dates=["intime", "outtime"])
    adm = pd.read_csv(demo / "ADMISSIONS.csv", parse_dates=["admittime", "dischtime", "deathtime"])
    pat = pd.read_csv(demo / "PATIENTS.csv", parse_dates=["dob", "dod"])
    counts = {"start": len(icu)}
    s = icu[(icu.first_wardid == icu.last_wardid) & (icu.first_careunit == icu.last_careunit)]
    counts["remove_icu_transfers"] = len(s)
    s = s.merge(adm, on=["subject_id", "hadm_id"]).merge(pat, on="subject_id")
    n = s.groupby("hadm_id").icustay_id.count()
    s = s[s.hadm_id.isin(n[n == 1].index)]
    counts["remove_multiple_stays_per_admission"] = len(s)
    age = s.apply(lambda r: (r.intime.to_pydatetime() - r.dob.to_pydatetime()).total_seconds() / 3600 / 24 / 365,
                  axis=1)
    age[age < 0] = 90
    s = s[age >= 18]
    counts["remove_age_under_18"] = len(s)
    mort = (s.dod.notna() & (s.admittime <= s.dod) & (s.dischtime >= s.dod)) | (
        s.deathtime.notna() & (s.admittime <= s.deathtime) & (s.dischtime >= s.deathtime))
    return {"counts": counts, "stays": sorted(s.icustay_id), "deaths": int(mort.sum())}


def test_demo_cohort_matches_reference_steps(shared_data):
    demo = shared_subdir(shared_data, "mimic3-demo")
    con = duckdb.connect()
    con.execute("SET disabled_optimizers='type_pushdown'")
    cohort.load_tables(con, str(demo), 1, 0)
    ours = cohort.build_stays(con)
    ref = _reference_steps(demo)
    assert {k: v["icustays"] for k, v in ours.items() if k != "merge_admissions_patients"} == ref["counts"]
    got = con.execute("SELECT icustay_id, mortality FROM stays ORDER BY 1").fetchall()
    assert [g[0] for g in got] == ref["stays"]
    assert sum(g[1] for g in got) == ref["deaths"]
