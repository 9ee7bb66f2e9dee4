"""Task labels on the hand-made tiny MIMIC-III (tests/tasks_tiny_mimic.py), where the answers are known."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from clinical_ml.io import read_json
from clinical_ml.tasks.build import BuildConfig, build
from clinical_ml.tasks.io import PHENOTYPE_COLUMNS, SPLITS, feature_columns, read_split, read_timeseries
from tasks_tiny_mimic import write_tiny


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    src = write_tiny(root / "mimic")
    out = root / "out"
    build(BuildConfig(mimic=str(src), out=str(out), sample_every=1, eval_sample_every=1, threads=1))
    return out


def _all(out, task):
    return pd.concat([read_split(out / s, task).assign(split=s) for s in SPLITS], ignore_index=True)


def test_cohort_filter_counts(tree):
    m = read_json(tree / "manifest.json")
    c = m["cohort"]
    assert c["start"] == {"icustays": 17, "admissions": 15, "subjects": 15}
    assert c["remove_icu_transfers"]["icustays"] == 15           # 200003 and 200007 (care unit change)
    assert c["remove_multiple_stays_per_admission"]["icustays"] == 13  # 200004 + 200005; 200006 kept
    assert c["remove_age_under_18"]["icustays"] == 12            # 200008 (age 16)
    e = m["episodes"]
    assert e["episodes"] == 11 and e["stays_without_events"] == 1 and e["episodes_no_events_in_icu"] == 1
    assert e["episodes_without_diagnoses"] == 1                  # 200023: in no task
    for split in SPLITS:
        for task in ("ihm", "decomp", "los", "pheno", "readmit"):
            assert 200023 not in set(read_split(tree / split, task).icustay_id)


def test_data_quality_counted(tree):
    m = read_json(tree / "manifest.json")
    ev = m["events"]
    assert ev["dropped_empty_value"] == 1 and ev["dropped_bad_charttime"] == 1
    assert ev["empty_hadm"] == 2 and ev["icustay_missing_in_stays"] == 1
    assert ev["no_icustay"] == 4 and ev["recovered"] == 4
    assert m["cleaning"]["dropped_by_cleaning"] == {"Capillary refill rate": 1, "Glucose": 1}
    assert m["cleaning"]["outside_outlier_range_kept"] == {"Heart Rate": 1}


def test_ihm(tree):
    ihm = _all(tree, "ihm").set_index("icustay_id")
    # 200002 (LOS 47.9 h) is too short; transfers, double stays, children, no-event stays are out
    assert sorted(ihm.index) == [200001, 200006, 200010, 200011, 200012, 200013, 200014, 200022]
    assert ihm.loc[200001, "y"] == 1          # death exactly at 48 h: included, positive
    assert ihm.loc[200022, "y"] == 1          # death known from DOD only
    assert ihm.loc[200006, "y"] == 0
    assert (ihm.prediction_hour == 48.0).all()
    assert ihm.y.dtype == np.int8


def test_decompensation(tree):
    d = _all(tree, "decomp")
    s = d[d.icustay_id == 200001].sort_values("prediction_hour")
    assert list(s.prediction_hour) == [float(t) for t in range(5, 49)]
    assert list(s.y) == [0] * 20 + [1] * 24   # death at 48 h: positive iff 48 - t < 24
    # DEATHTIME missing (death via DOD): all negative, as in the reference
    assert d[d.icustay_id == 200022].y.sum() == 0
    # 200006: first event at 2 h, LOS 72 h -> t = 5..72
    assert sorted(d[d.icustay_id == 200006].prediction_hour) == [float(t) for t in range(5, 73)]
    m = read_json(tree / "manifest.json")
    assert sum(v["decomp"] for v in m["hourly_samples_reference"].values()) == len(d)


def test_length_of_stay(tree):
    los = _all(tree, "los")
    s = los[los.icustay_id == 200002]
    assert s.prediction_hour.max() == 47.0                  # LOS 47.899 h
    np.testing.assert_allclose(s.y, 1.9958 * 24 - s.prediction_hour, atol=1e-6)
    assert los.y.dtype == np.float64
    from clinical_ml.tasks.labels import los_bucket
    assert list(los.y_bucket) == [los_bucket(h) for h in los.y]
    assert [los_bucket(h) for h in (0, 23.9, 24, 7 * 24 + 1, 8 * 24, 13.9 * 24, 14 * 24, 900)] == [0, 0, 1, 7, 8, 8, 9, 9]


def test_phenotypes(tree):
    ph = _all(tree, "pheno").set_index("icustay_id")
    assert list(ph.columns[ph.columns.str.startswith("y_")]) == list(PHENOTYPE_COLUMNS)
    r = ph.loc[200001]
    positives = sorted(c for c in PHENOTYPE_COLUMNS if r[c] == 1)
    assert positives == ["y_essential_hypertension", "y_septicemia_except_in_labor"]
    assert ph.loc[200002, "y_pneumonia_except_that_caused_by_tuberculosis_or_sexually_transmitted_disease"] == 1
    assert ph.loc[200002, "prediction_hour"] == pytest.approx(1.9958 * 24)
    assert ph.loc[200006, list(PHENOTYPE_COLUMNS)].sum() == 0


def test_readmission(tree):
    r = _all(tree, "readmit").set_index("subject_id")
    assert r.loc[900007, "y"] == 1   # non-elective readmission on day 30
    assert r.loc[900008, "y"] == 0   # day 31
    assert r.loc[900009, "y"] == 0   # elective readmission
    assert r.loc[900010, "y"] == 0   # died after discharge, not readmitted
    assert 900011 not in r.index     # transferred to another acute hospital
    assert 900001 not in r.index and 900014 not in r.index  # died in hospital
    m = read_json(tree / "manifest.json")["readmit"]
    assert m["excluded_transfer_to_acute_hospital"] == 1
    assert m["died_after_discharge_within_30d_without_readmission_labelled_0"] == 1


def test_groups(tree):
    ihm = _all(tree, "ihm").set_index("icustay_id")
    assert ihm.loc[200006, "age"] == 90.0 and ihm.loc[200006, "age_band"] == "80+"
    assert ihm.loc[200001, ["sex", "ethnicity", "insurance", "age_band"]].tolist() == [
        "F", "BLACK", "Medicaid", "60-79"]


def test_timeseries_unit_cleaning(tree):
    ts = pd.concat([read_timeseries(tree / s) for s in SPLITS])
    s = ts[ts.icustay_id == 200001].set_index("hour")
    assert s.loc[2.0, "temperature"] == pytest.approx(37.0)                   # 98.6 F
    assert s.loc[6.0, "weight"] == pytest.approx(80.0, abs=1e-3)              # 176.37 lb
    assert s.loc[7.0, "systolic_blood_pressure"] == 120.0                      # "120/80"
    assert s.loc[8.0, "glascow_coma_scale_verbal_response"] == "Oriented"
    assert s.loc[9.0, "fraction_inspired_oxygen"] == pytest.approx(0.5)
    assert s.loc[10.0, "heart_rate"] == 400.0                                  # out of range, kept
    assert s.loc[20.0, "capillary_refill_rate"] == "0.0" and s.loc[21.0, "capillary_refill_rate"] == "1.0"
    assert 22.0 not in s.index                                                  # "Sluggish"
    assert s.index.min() > -1e-6                                              # pre-ICU lab not in window
    assert not {3.0, 4.0, 5.0} & set(s.index)      # wrong ICUSTAY_ID, no HADM_ID, empty VALUE


def test_features_match_numpy(tree):
    ts = pd.concat([read_timeseries(tree / s) for s in SPLITS])
    ihm = _all(tree, "ihm").set_index("icustay_id")
    hr = ts[(ts.icustay_id == 200001)].dropna(subset=["heart_rate"])
    x = hr[hr.hour < 48 + 1e-6].heart_rate.to_numpy()
    r = ihm.loc[200001]
    assert r.f_heart_rate_all_count == len(x)
    assert r.f_heart_rate_all_mean == pytest.approx(x.mean(), rel=1e-5)
    assert r.f_heart_rate_all_std == pytest.approx(x.std(), rel=1e-4)
    m2, m3 = ((x - x.mean()) ** 2).mean(), ((x - x.mean()) ** 3).mean()
    assert r.f_heart_rate_all_skew == pytest.approx(m3 / m2 ** 1.5, rel=1e-3)
    last = hr[(hr.hour > 36) & (hr.hour <= 48)].heart_rate
    assert r.f_heart_rate_12h_count == len(last) and r.f_heart_rate_12h_max == last.max()
    assert np.isnan(r.f_glucose_all_mean) and r.f_glucose_all_count == 0
    assert r.f_glascow_coma_scale_verbal_response_all_max == 5.0              # "Oriented"
    assert (r.f_capillary_refill_rate_all_count, r.f_capillary_refill_rate_all_mean) == (2, 0.5)
    d = _all(tree, "decomp")
    assert d[feature_columns(d)].dtypes.eq(np.float32).all()
    # decomp at t = 10 h only sees data up to 10 h
    row = d[(d.icustay_id == 200001) & (d.prediction_hour == 10.0)].iloc[0]
    assert row.f_heart_rate_all_count == len(hr[hr.hour <= 10]) and row.f_heart_rate_all_max == 400.0
    assert row.f_hours == 10.0


def test_manifest_hashes_match_files(tree):
    from clinical_ml.io import sha256_file

    m = read_json(tree / "manifest.json")
    assert m["files"] and all(sha256_file(tree / p) == v["sha256"] for p, v in m["files"].items())
    for split in SPLITS:
        sm = read_json(tree / split / "manifest-00000.json")
        assert sum(v["rows"] for v in sm["tasks"].values()) == sum(
            len(read_split(tree / split, t)) for t in sm["tasks"])
