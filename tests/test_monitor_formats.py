"""Model Monitor file formats: what we write parses as Model Monitor's, and theirs parses here."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from clinical_ml.io import DataError
from clinical_ml.monitor import formats, stats
from clinical_ml.monitor.scenarios import reference_frame
from monitoring import baseline

# Shaped exactly as the AWS docs' "Schema for Statistics" / "Schema for Constraints" examples.
MM_STATISTICS = {
    "version": 0.0,
    "dataset": {"item_count": 4},
    "features": [
        {"name": "f_heart_rate_mean_full", "inferred_type": "Fractional",
         "numerical_statistics": {"common": {"num_present": 3, "num_missing": 1},
                                  "mean": 80.0, "sum": 240.0, "std_dev": 8.16, "min": 70.0, "max": 90.0,
                                  "distribution": {"kll": {
                                      "buckets": [{"lower_bound": 70.0, "upper_bound": 80.0, "count": 1},
                                                  {"lower_bound": 80.0, "upper_bound": 90.0, "count": 2}],
                                      "sketch": {"parameters": {"c": 0.64, "k": 2048.0},
                                                 "data": [[70.0, 80.0, 90.0]]}}}}},
        {"name": "icd9_code", "inferred_type": "String",
         "string_statistics": {"common": {"num_present": 4, "num_missing": 0}, "distinct_count": 2,
                               "distribution": {"categorical": {"buckets": [{"value": "401.9", "count": 3},
                                                                            {"value": "428.0", "count": 1}]}}}},
    ],
}
MM_CONSTRAINTS = {
    "version": 0.0,
    "features": [
        {"name": "f_heart_rate_mean_full", "inferred_type": "Fractional", "completeness": 0.75,
         "num_constraints": {"is_non_negative": True}},
        {"name": "icd9_code", "inferred_type": "String", "completeness": 1.0,
         "string_constraints": {"domains": ["401.9", "428.0"]}},
    ],
    "monitoring_config": {"evaluate_constraints": "Enabled", "emit_metrics": "Enabled",
                          "datatype_check_threshold": 0.1, "domain_content_threshold": 0.1,
                          "distribution_constraints": {"perform_comparison": "Enabled",
                                                       "comparison_threshold": 0.1,
                                                       "comparison_method": "Simple",
                                                       "categorical_comparison_threshold": 0.1,
                                                       "categorical_drift_method": "LInfinity"}},
}


@pytest.fixture(scope="module")
def train_split(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks") / "train"
    df = reference_frame(3000, seed=0, channels=["heart_rate", "temperature", "glucose"])
    (root / "ihm").mkdir(parents=True)
    df.to_parquet(root / "ihm" / "part-00000.parquet")
    return root, df


def test_model_monitor_documented_files_parse():
    formats.validate_statistics(MM_STATISTICS)
    formats.validate_constraints(MM_CONSTRAINTS)
    formats.validate_violations({"violations": [{"feature_name": "x", "constraint_check_type":
                                                 "baseline_drift_check",
                                                 "description": "Baseline drift distance: 0.2 exceeds threshold: 0.1"}]})


def test_baseline_step_writes_model_monitor_files(train_split, tmp_path):
    root, df = train_split
    assert baseline.main(["--train", str(root), "--output", str(tmp_path / "b")]) == 0
    st = json.loads((tmp_path / "b" / "statistics.json").read_text())
    cons = json.loads((tmp_path / "b" / "constraints.json").read_text())
    formats.validate_statistics(st)
    formats.validate_constraints(cons)
    assert set(st) == {"version", "dataset", "features"} and st["dataset"]["item_count"] == len(df)
    feats = {f["name"]: f for f in st["features"]}
    assert "y" not in feats and "icd9_code" in feats  # labels never monitored, codes are
    hr = feats["f_heart_rate_mean_full"]
    assert hr["inferred_type"] == "Fractional"
    ns = hr["numerical_statistics"]
    assert set(ns) == {"common", "mean", "sum", "std_dev", "min", "max", "distribution"}
    col = df["f_heart_rate_mean_full"].astype("float64")
    assert ns["common"] == {"num_present": int(col.notna().sum()), "num_missing": int(col.isna().sum())}
    assert ns["mean"] == pytest.approx(col.mean(), rel=1e-6)
    assert ns["min"] == pytest.approx(col.min()) and ns["max"] == pytest.approx(col.max())
    kll = ns["distribution"]["kll"]
    assert len(kll["buckets"]) == 10 and sum(b["count"] for b in kll["buckets"]) == col.notna().sum()
    assert set(kll["sketch"]["parameters"]) == {"c", "k"}
    code = feats["icd9_code"]
    assert code["inferred_type"] == "String"  # "401.9"-like codes stay text
    assert sum(b["count"] for b in code["string_statistics"]["distribution"]["categorical"]["buckets"]) == len(df)
    cf = {f["name"]: f for f in cons["features"]}
    assert cf["f_heart_rate_mean_full"]["completeness"] == pytest.approx(col.notna().mean())
    assert "domains" in cf["icd9_code"]["string_constraints"]
    dc = cons["monitoring_config"]["distribution_constraints"]
    assert dc["comparison_method"] == "Robust" and dc["comparison_threshold"] == 0.1
    formats.read_baseline(tmp_path / "b")


def test_sketch_cdf_tracks_data():
    rng = np.random.default_rng(0)
    v = rng.normal(size=50_000)
    sk = stats.sketch(v)
    x, w = stats.sketch_values(sk)
    assert len(sk["data"]) > 1 and all(not lvl for lvl in sk["data"][:-1])  # compacted level
    assert x.size <= stats.SKETCH_K
    for q in (-1.5, 0.0, 0.7):
        sketch_cdf = w[x <= q].sum() / w.sum()
        assert sketch_cdf == pytest.approx((v <= q).mean(), abs=2.0 / stats.SKETCH_K)


def test_type_inference():
    assert stats.infer_type(pd.Series([1, 2, None]))[0] == "Integral"
    assert stats.infer_type(pd.Series([1.5, 2.0]))[0] == "Fractional"
    assert stats.infer_type(pd.Series(["1.5", "2", None], dtype=object))[0] == "Fractional"
    assert stats.infer_type(pd.Series(["a", "b"], dtype=object))[0] == "String"
    assert stats.infer_type(pd.Series(["401.9"], dtype="string"))[0] == "String"
    assert stats.infer_type(pd.Series([None, None], dtype=object))[0] == "Unknown"


@pytest.mark.parametrize("doc,field", [
    ({"dataset": {"item_count": 1}, "features": []}, "version"),
    ({"version": 0, "dataset": {"item_count": 1}, "features": [{"name": "a", "inferred_type": "Weird"}]},
     "inferred_type"),
    ({"version": 0, "dataset": {"item_count": 1}, "features": [{"name": "a", "inferred_type": "Fractional"}]},
     "numerical_statistics"),
])
def test_malformed_statistics_name_the_field(doc, field):
    with pytest.raises(DataError, match=field):
        formats.validate_statistics(doc)


def test_bad_violation_type_rejected():
    with pytest.raises(DataError, match="constraint_check_type"):
        formats.validate_violations({"violations": [{"feature_name": "a", "constraint_check_type": "vibes",
                                                     "description": ""}]})


def test_baseline_without_training_data_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="build-tasks"):
        baseline.main(["--train", str(tmp_path), "--output", str(tmp_path / "out")])
