"""Model quality (issue 16's bar): labels for 1,000 inferences captured as the server writes
them give the window's AUROC/Brier exactly as scikit-learn computes them on the same rows; a
window without labels reports ``none``, publishes no quality datapoint and never alarms."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import numpy as np
import orjson
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from clinical_ml.monitor import alarms, formats, metrics, quality, stats
from clinical_ml.monitor import scenarios as S
from clinical_ml.monitor.capture import write_capture
from clinical_ml.outcomes.metrics import ece
from inference.capture import Event, record
from monitoring import drift_job

CHANNELS = ["heart_rate", "respiratory_rate", "temperature"]
T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
N = 1000


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """1,000 requests as inference.app captures them: JSON bodies of 1-3 instances, an
    InferenceId on most (the runtime API's), none on some (eventId joins those)."""
    root = tmp_path_factory.mktemp("quality")
    ref = S.reference_frame(4000, seed=0, channels=CHANNELS)
    cols = [c for c in ref.columns if c != "y"]
    st_ = stats.dataset_statistics(ref, cols)
    formats.write_baseline(root / "baseline", st_, stats.suggest_constraints(st_))
    rng = np.random.default_rng(7)
    frame = S.reference_frame(N, seed=3, channels=CHANNELS)
    y = rng.integers(0, 2, N)
    scores = np.clip(0.3 + 0.35 * y + rng.normal(0, 0.2, N), 0.001, 0.999)
    recs, gt, i, k = [], [], 0, 0
    while i < N:
        size = min(int(rng.integers(1, 4)), N - i)
        rows = frame.iloc[i:i + size][cols].to_dict("records")
        body = orjson.dumps({"instances": rows}, option=orjson.OPT_SERIALIZE_NUMPY)
        out = orjson.dumps({"model_version": "1", "predictions": [{"ihm": float(s), "decomp": 0.1}
                                                                   for s in scores[i:i + size]]})
        inf_id = None if k % 5 == 0 else f"req-{k}"
        ev = Event("AllTraffic", T0 + timedelta(seconds=3 * k), inf_id, "application/json", body,
                   "application/json", out)
        rec = record(ev)
        recs.append(rec)
        key = inf_id or rec["eventMetadata"]["eventId"]
        gt.append({"groundTruthData": {"data": ",".join(str(int(v)) for v in y[i:i + size]),
                                       "encoding": "CSV"},
                   "eventMetadata": {"eventId": key}, "eventVersion": "0"})
        i, k = i + size, k + 1
    write_capture(root / "cap", "ep", "AllTraffic", recs)
    (root / "gt").mkdir()
    (root / "gt" / "labels.jsonl").write_bytes(b"\n".join(orjson.dumps(g) for g in gt))
    (root / "nogt").mkdir()
    (root / "evaluation.json").write_text(json.dumps({"gate": {"ihm_auroc": 0.85}}))
    return root, y, scores


def _run(root, out, gt, end="2026-01-01T01:00:00Z"):
    assert drift_job.main(["--capture", str(root / "cap"), "--baseline", str(root / "baseline"),
                           "--output", str(root / out), "--window-end", end, "--endpoint", "ep",
                           "--schedule", "sched", "--ground-truth", str(root / gt),
                           "--registered-metrics", str(root / "evaluation.json"),
                           "--metrics-backend", "local",
                           "--metrics-file", str(root / f"{out}.jsonl")]) == 0
    summary = json.loads((root / out / "drift_summary.json").read_text())
    return summary, metrics.read_local(root / f"{out}.jsonl")


def test_window_auroc_and_brier_equal_sklearns_on_the_same_rows(served):
    root, y, scores = served
    summary, points = _run(root, "labelled", "gt")
    q = summary["model_quality"]
    assert summary["rows_analyzed"] == N and q["status"] == "ok" and q["labelled_rows"] == N
    assert q["model_auroc"] == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
    assert q["model_brier"] == pytest.approx(brier_score_loss(y, scores), abs=1e-12)
    assert 0 <= q["model_ece"] < 1 and q["calibration_slope"] > 0
    got = {p["MetricName"]: p["Value"] for p in points}
    assert got["model_auroc"] == pytest.approx(q["model_auroc"])
    assert set(metrics.QUALITY_METRICS) - {"brier_increase"} <= set(got) and got["labelled_rows"] == N


def test_calibration_figures():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.01, 0.99, 20000)
    y = (rng.uniform(size=p.size) < p).astype(float)            # calibrated by construction
    assert ece(y, p) < 0.02
    slope, intercept = quality.calibration_line(y, p)
    assert slope == pytest.approx(1, abs=0.08) and intercept == pytest.approx(0, abs=0.08)
    sharp = np.clip(0.5 + 2 * (p - 0.5), 0.001, 0.999)             # over-confident: slope < 1
    assert quality.calibration_line(y, sharp)[0] < 0.8
    assert ece(y, sharp) > 0.1


def test_a_window_without_labels_reports_none_and_never_alarms(served):
    root, _, _ = served
    specs = alarms.alarm_specs("ep", "sched")
    quality_alarm = next(s for s in specs if s.get("MetricName") == "auroc_drop")
    for gt, end in (("nogt", "2026-01-01T01:00:00Z"), ("gt", "2026-01-01T05:00:00Z")):
        summary, points = _run(root, f"unlabelled-{gt}", gt, end)   # no labels / no traffic
        q = summary["model_quality"]
        assert q["status"] == "none" and q["labelled_rows"] == 0 and q["model_auroc"] is None
        assert not {p["MetricName"] for p in points} & set(metrics.QUALITY_METRICS)
        assert alarms.evaluate(quality_alarm, points, now=T0 + timedelta(hours=5)) != "ALARM"
    # the same alarm does fire on a labelled window whose AUROC fell (the rule is live)
    bad = [{**p, "Value": 0.3} for p in _run(root, "labelled2", "gt")[1] if p["MetricName"] == "auroc_drop"]
    assert alarms.evaluate(quality_alarm, bad) == "ALARM"
