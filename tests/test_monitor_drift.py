"""Drift checks, capture decoding, scenarios and the drift job end to end (local backend)."""
from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pandas as pd
import pytest
from scipy import stats as st

from clinical_ml.monitor import check, distance, formats, stats
from clinical_ml.monitor import scenarios as S
from clinical_ml.monitor.capture import capture_record, iter_frame_records, read_window, write_capture
from monitoring import baseline, drift_job
from monitoring import scenarios as scenarios_cli

CHANNELS = ["heart_rate", "respiratory_rate", "temperature", "glascow_coma_scale_total", "oxygen_saturation"]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def ref():
    return S.reference_frame(8000, seed=0, channels=CHANNELS)


@pytest.fixture(scope="module")
def base(ref):
    cols = [c for c in ref.columns if c != "y"]
    st_ = stats.dataset_statistics(ref, cols)
    return st_, stats.suggest_constraints(st_), cols


def test_cdf_linf_is_the_ks_statistic():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=3000), rng.normal(0.2, 1.1, size=700)
    d = distance.cdf_linf(np.sort(a), np.ones(a.size), b)
    assert d == pytest.approx(st.ks_2samp(a, b).statistic, abs=1e-12)


def test_categorical_distances():
    assert distance.categorical_linf({"a": 50, "b": 50}, {"a": 80, "b": 20}) == pytest.approx(0.3)
    assert distance.chi_square_pvalue({"a": 500, "b": 500}, {"a": 800, "b": 200}) < 1e-6
    assert distance.chi_square_pvalue({"a": 500, "b": 500}, {"a": 51, "b": 49}) > 0.5


def test_no_drift_window_is_quiet_and_each_scenario_is_caught(ref, base):
    st_, cons, cols = base
    fresh = S.reference_frame(8000, seed=7, channels=CHANNELS)  # same population, other draw
    quiet = check.run_checks(st_, cons, S.generate(fresh, "none", 1500, seed=1)[cols])
    assert quiet.status == "ok" and quiet.drift_score < 1 and not quiet.violations
    expected = {"covariate": "baseline_drift_check", "missingness": "completeness_check",
                "new_codes": "categorical_values_check", "units": "baseline_drift_check",
                "prevalence": "baseline_drift_check"}
    for name, check_type in expected.items():
        size = 0.6 if name == "prevalence" else None
        r = check.run_checks(st_, cons, S.generate(fresh, name, 1500, size, seed=2)[cols], with_statistics=False)
        assert r.status == "drift", name
        assert check_type in {v["constraint_check_type"] for v in r.violations}, name
    units = check.run_checks(st_, cons, S.generate(fresh, "units", 1500, seed=3)[cols], with_statistics=False)
    assert all("temperature" in f for f in units.summary()["drifted_features"])


def test_simple_method_uses_the_plain_threshold(base):
    st_, cons, cols = base
    simple = json.loads(json.dumps(cons))
    simple["monitoring_config"]["distribution_constraints"]["comparison_method"] = "Simple"
    tiny = S.generate(S.reference_frame(500, seed=3, channels=CHANNELS), "none", 20, seed=0)[cols]
    robust_r = check.run_checks(st_, cons, tiny, with_statistics=False)
    simple_r = check.run_checks(st_, simple, tiny, with_statistics=False)
    # 20 rows: sampling noise alone exceeds 0.1; Robust knows, Simple does not
    assert robust_r.status == "ok"
    assert simple_r.drift_score > robust_r.drift_score


def test_schema_and_type_violations_are_integrity_not_drift(base, ref):
    st_, cons, cols = base
    w = ref[cols].sample(500, random_state=0).copy()
    w["f_heart_rate_mean_full"] = "n/a"
    w = w.drop(columns=["f_temperature_max_full"]).assign(extra_field=1.0)
    r = check.run_checks(st_, cons, w, with_statistics=False)
    kinds = {v["constraint_check_type"] for v in r.violations}
    assert {"data_type_check", "missing_column_check", "extra_column_check"} <= kinds
    assert r.integrity_violations >= 3


def _write_requests(root, frame, start, content_type="application/json", batch=4):
    return write_capture(root, "ep", "AllTraffic",
                         iter_frame_records(frame, start, start + timedelta(hours=1), batch, content_type,
                                            outputs=np.full(len(frame), 0.2)))


def test_capture_reader_decodes_json_csv_base64_and_counts_bad_records(tmp_path, ref, base):
    _, _, cols = base
    frame = ref[cols].head(40).reset_index(drop=True)
    _write_requests(tmp_path, frame.iloc[:20], T0)
    _write_requests(tmp_path, frame.iloc[20:36].drop(columns=["icd9_code"]).assign(icd9_code=frame["icd9_code"].iloc[20:36].values)[cols],
                    T0, content_type="text/csv")
    b64 = capture_record(frame.iloc[36:40].to_dict("records"), [0.5] * 4, T0 + timedelta(minutes=5))
    b64["captureData"]["endpointInput"].update(
        data=base64.b64encode(b64["captureData"]["endpointInput"]["data"].encode()).decode(), encoding="BASE64")
    path = write_capture(tmp_path, "ep", "AllTraffic", [b64])[0]
    with open(path, "ab") as fh:
        fh.write(b'{"captureData": {"endpointInput": {"data": "{not json", "encoding": "JSON"}},'
                 b' "eventMetadata": {"eventId": "x", "inferenceTime": "2026-01-01T00:10:00Z"}}\n')
    later = capture_record(frame.iloc[:3].to_dict("records"), None, T0 + timedelta(hours=2))
    write_capture(tmp_path, "ep", "AllTraffic", [later])
    win = read_window(tmp_path, cols, T0, T0 + timedelta(hours=1))
    assert len(win.frame) == 40 and win.undecodable == 1   # the later record is outside the window
    got = win.frame.sort_values("f_heart_rate_mean_full").reset_index(drop=True)
    want = frame.sort_values("f_heart_rate_mean_full").reset_index(drop=True)
    np.testing.assert_allclose(pd.to_numeric(got["f_heart_rate_mean_full"]), want["f_heart_rate_mean_full"], rtol=1e-6)
    assert sorted(got["icd9_code"].astype(str)) == sorted(want["icd9_code"].astype(str))
    # files are read in name (uuid) order, so compare the predictions as a multiset
    assert sorted(np.round(win.predictions, 6)) == [0.2] * 36 + [0.5] * 4


def test_drift_job_end_to_end_and_empty_window(tmp_path, ref, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.delenv("CLINICAL_ML_RUN_DIR", raising=False)
    train = tmp_path / "train" / "ihm"
    train.mkdir(parents=True)
    ref.to_parquet(train / "part-00000.parquet")
    assert baseline.main(["--train", str(tmp_path / "train"), "--output", str(tmp_path / "baseline")]) == 0
    assert scenarios_cli.main(["--reference", str(tmp_path / "train"), "--scenario", "none", "--rows", "800",
                               "--start", "2026-01-01T00:00:00Z", "--out", str(tmp_path / "cap"), "--batch", "8"]) == 0
    assert scenarios_cli.main(["--reference", str(tmp_path / "train"), "--scenario", "units", "--rows", "800",
                               "--start", "2026-01-01T01:00:00Z", "--out", str(tmp_path / "cap"),
                               "--content-type", "text/csv"]) == 0
    metrics_file = tmp_path / "metrics.jsonl"
    common = ["--capture", str(tmp_path / "cap"), "--baseline", str(tmp_path / "baseline"),
              "--metrics-file", str(metrics_file), "--schedule", "sched"]
    for end, out in (("2026-01-01T01:00:00Z", "ok"), ("2026-01-01T02:00:00Z", "drift"), ("2026-01-01T05:00:00Z", "empty")):
        assert drift_job.main(common + ["--window-end", end, "--output", str(tmp_path / out)]) == 0
    ok = json.loads((tmp_path / "ok" / "drift_summary.json").read_text())
    assert ok["status"] == "ok" and ok["rows_analyzed"] == 800 and ok["drift_score"] < 1
    drift = json.loads((tmp_path / "drift" / "drift_summary.json").read_text())
    assert drift["status"] == "drift" and drift["rows_analyzed"] == 800
    viol = formats.validate_violations(json.loads((tmp_path / "drift" / "constraint_violations.json").read_text()))
    assert any(v["constraint_check_type"] == "baseline_drift_check" and "temperature" in v["feature_name"]
               for v in viol["violations"])
    formats.validate_statistics(json.loads((tmp_path / "drift" / "statistics.json").read_text()))
    empty = json.loads((tmp_path / "empty" / "drift_summary.json").read_text())
    assert empty["status"] == "no_data" and empty["drift_score"] is None and "no data" in empty["message"]
    assert json.loads((tmp_path / "empty" / "constraint_violations.json").read_text()) == {"violations": []}
    lines = [orjson.loads(x) for x in metrics_file.read_bytes().splitlines()]
    by_end = {}
    for p in lines:
        by_end.setdefault(p["Timestamp"][:13], {})[p["MetricName"]] = p["Value"]
    assert by_end["2026-01-01T05"] == {"rows_analyzed": 0.0}      # empty: no drift datapoints
    assert by_end["2026-01-01T02"]["drift_score"] > 1 and by_end["2026-01-01T01"]["drift_score"] < 1
    assert "feature_baseline_drift_f_temperature_mean_full" in by_end["2026-01-01T02"]
    assert {d["Name"] for d in lines[0]["Dimensions"]} == {"Endpoint", "MonitoringSchedule"}
    assert lines[0]["Namespace"] == "clinical-ml/DataDrift"


def test_missing_capture_folder_is_an_empty_window(tmp_path, base, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    st_, cons, _ = base
    formats.write_baseline(tmp_path / "b", st_, cons)
    assert drift_job.main(["--capture", str(tmp_path / "nope"), "--baseline", str(tmp_path / "b"),
                           "--output", str(tmp_path / "o"), "--no-metrics", "--endpoint", "ep"]) == 0
    assert json.loads((tmp_path / "o" / "drift_summary.json").read_text())["status"] == "no_data"


def test_model_quality_with_ground_truth(tmp_path, monkeypatch, base):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    st_, cons, cols = base
    formats.write_baseline(tmp_path / "b", st_, cons)
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    scores = np.clip(0.5 + (y - 0.5) * 0.1 + rng.normal(0, 0.3, 400), 0, 1)  # a weak model now
    frame = S.reference_frame(400, seed=5, channels=CHANNELS)[cols]
    recs = list(iter_frame_records(frame, T0, T0 + timedelta(hours=1), batch=4, outputs=scores))
    write_capture(tmp_path / "cap", "ep", "v", recs)
    gt = [{"groundTruthData": {"data": ",".join(str(int(v)) for v in y[i * 4:(i + 1) * 4]), "encoding": "CSV"},
           "eventMetadata": {"eventId": r["eventMetadata"]["eventId"]}, "eventVersion": "0"}
          for i, r in enumerate(recs)]
    (tmp_path / "gt").mkdir()
    (tmp_path / "gt" / "labels.jsonl").write_bytes(b"\n".join(orjson.dumps(g) for g in gt))
    (tmp_path / "evaluation.json").write_text(json.dumps({"gate": {"ihm_auroc": 0.85},
                                                          "tasks": {"ihm": {"xgboost": {"brier": {"value": 0.08}}}}}))
    assert drift_job.main(["--capture", str(tmp_path / "cap"), "--baseline", str(tmp_path / "b"),
                           "--output", str(tmp_path / "o"), "--window-end", "2026-01-01T01:00:00Z",
                           "--ground-truth", str(tmp_path / "gt"), "--registered-metrics",
                           str(tmp_path / "evaluation.json"), "--metrics-file", str(tmp_path / "m.jsonl")]) == 0
    q = json.loads((tmp_path / "o" / "drift_summary.json").read_text())["model_quality"]
    assert q["status"] == "ok" and q["labelled_rows"] == 400
    from sklearn.metrics import roc_auc_score
    assert q["model_auroc"] == pytest.approx(roc_auc_score(y, scores))
    assert q["auroc_drop"] == pytest.approx(0.85 - q["model_auroc"]) and q["auroc_drop"] > 0.05
    assert len(q["violations"]) == 2
    names = {orjson.loads(x)["MetricName"] for x in (tmp_path / "m.jsonl").read_bytes().splitlines()}
    assert {"model_auroc", "model_brier", "auroc_drop", "brier_increase"} <= names


def test_unknown_scenario_is_a_data_error(ref):
    from clinical_ml.io import DataError
    with pytest.raises(DataError, match="unknown scenario"):
        S.generate(ref, "gremlins", 10)
    with pytest.raises(DataError, match="label"):
        S.generate(ref.drop(columns=["y"]), "prevalence", 10)


def test_reads_the_serving_capture_writer_records(tmp_path):
    """Records written by inference.capture (the endpoint's writer) decode here, ids dropped."""
    cap = pytest.importorskip("inference.capture")
    t = datetime(2026, 1, 1, 0, 30, tzinfo=timezone.utc)
    body = orjson.dumps({"instances": [{"f_a": 1.5, "f_b": None, "id": "r1"}, {"f_a": 2.5, "f_b": 3.0}]})
    out = orjson.dumps({"model_version": "v1", "predictions": [{"ihm": 0.25, "decomp": 0.1, "id": "r1"},
                                                                {"ihm": 0.75, "decomp": 0.2}]})
    csv_body = b"4.5,\n5.5,6.0\n"
    recs = [cap.record(cap.Event("AllTraffic", t, "inf-1", "application/json", body, "application/json", out)),
            cap.record(cap.Event("AllTraffic", t, None, "text/csv", csv_body, "text/csv", b"0.5,0.1\n0.6,0.2\n"))]
    write_capture(tmp_path, "ep", "AllTraffic", recs)
    win = read_window(tmp_path, ["f_a", "f_b"], T0, T0 + timedelta(hours=1))
    assert list(win.frame.columns) == ["f_a", "f_b"] and win.undecodable == 0
    np.testing.assert_allclose(win.frame["f_a"].astype(float), [1.5, 2.5, 4.5, 5.5])
    assert win.frame["f_b"].isna().tolist() == [True, False, True, False]
    np.testing.assert_allclose(win.predictions, [0.25, 0.75, 0.5, 0.6])


def test_discrete_feature_at_full_precision_is_not_drift():
    """A point mass stored with 7 significant digits matches traffic's full-precision values."""
    import numpy as np

    from clinical_ml.monitor.distance import cdf_linf
    from clinical_ml.monitor.stats import sketch, sketch_values

    rng = np.random.default_rng(0)
    levels = np.array([0.0, 0.5, np.sqrt(1 / 3), np.sqrt(0.5)], dtype=np.float32)
    base = rng.choice(levels, 5000, p=[0.5, 0.2, 0.2, 0.1]).astype(np.float64)
    x, w = sketch_values(sketch(base))
    same = rng.choice(levels, 300, p=[0.5, 0.2, 0.2, 0.1]).astype(np.float64)
    shifted = rng.choice(levels, 300, p=[0.1, 0.2, 0.2, 0.5]).astype(np.float64)
    assert cdf_linf(x, w, same) < 0.1
    assert cdf_linf(x, w, shifted) > 0.3
