"""The demo's retraining story helpers: labelled traffic, its ground truth, the timeline."""
from __future__ import annotations

import datetime as dt

import numpy as np
import orjson
import pandas as pd

from clinical_ml.io import write_json
from clinical_ml.monitor import quality
from pipelines.local import demo_story


def _rows(n=60):
    rng = np.random.default_rng(0)
    return pd.DataFrame({"subject_id": range(n), "hadm_id": range(n), "icustay_id": range(n)[::-1],
                         "prediction_hour": 48, "y": rng.integers(0, 2, n), "f_hr_mean": rng.normal(80, 10, n),
                         "f_age": rng.normal(60, 10, n)})


def test_traffic_carries_no_identifiers_and_its_labels_join_by_inference_id(tmp_path):
    rows = _rows()
    payloads, truth = demo_story.write_traffic(rows, tmp_path, "new-period")
    lines = [orjson.loads(x) for x in payloads.read_bytes().splitlines()]
    assert len(lines) == len(rows) and set(lines[0]["instances"][0]) == {"f_hr_mean", "f_age"}
    labels = quality.read_ground_truth(truth)
    assert labels["new-period-0"] == [float(rows["y"][0])] and len(labels) == len(rows)
    # the drift job's join: the n-th request's InferenceId is <window>-<n>
    ids = [f"new-period-{i}" for i in range(len(rows))]
    p = np.where(rows["y"] == 1, 0.8, 0.2)
    q = quality.evaluate(ids, np.zeros(len(rows), dtype=int), p, labels, {}, inference_ids=ids)
    assert q["model_auroc"] == 1.0 and q["model_auroc_ci"] == [1.0, 1.0]


def test_timeline_entry_and_promotion(tmp_path):
    drift = {"status": "drift", "drift_score": 0.4, "violations": 3, "rows_analyzed": 300,
             "model_quality": {"status": "ok", "model_auroc": 0.81, "model_auroc_ci": [0.75, 0.86], "labelled_rows": 300}}
    e = demo_story.timeline_entry("new-period", "new", "before promotion", "outcomes v1", drift, 0.1)
    assert (e["drift_score"], e["auroc"], e["auroc_ci"], e["labelled"]) == (0.4, 0.81, [0.75, 0.86], 300)
    none = demo_story.timeline_entry("x", "x", "after promotion", "v2", {"status": "ok", "model_quality": None}, 0.1)
    assert none["auroc"] is None and none["auroc_ci"] is None
    assert demo_story.promotion(tmp_path) is None
    f = tmp_path / "steps" / "CompareModels" / "output" / "comparison" / "comparison.json"
    write_json(f, {"decision": {"promote": True, "reason": "not worse"}, "tasks": {"ihm": {
        "n": 50, "champion": {"auroc": {"value": 0.8}}, "challenger": {"auroc": {"value": 0.9}},
        "difference": {"auroc": {"value": 0.1, "ci_low": -0.02, "ci_high": 0.2}}}}})
    got = demo_story.promotion(tmp_path)
    assert got["promoted"] and (got["champion_auroc"], got["challenger_auroc"], got["ci_low"]) == (0.8, 0.9, -0.02)


def test_held_out_rows_are_sorted_and_limited(tmp_path):
    root = tmp_path / "tasks"
    for split in ("val", "test"):
        d = root / split / "ihm"
        d.mkdir(parents=True)
    _rows(10).to_parquet(root / "val" / "ihm" / "part-00000.parquet")
    _rows(5).to_parquet(root / "test" / "ihm" / "part-00000.parquet")
    got = demo_story.held_out_rows(root, ("val", "test"), 12)
    assert len(got) == 12 and list(got["icustay_id"]) == sorted(got["icustay_id"])


def test_the_demo_waits_for_exactly_its_windows_capture(tmp_path):
    """wait_for_capture replaces a fixed sleep: it returns once every request of the window is
    on disk (the writer flushes in the background), counting only that window's InferenceIds."""
    from inference.capture import CaptureWriter, Event
    from pipelines.local.demo_endpoint import captured, wait_for_capture

    cap = CaptureWriter(tmp_path, "ep", percent=100)
    now = dt.datetime.now(dt.timezone.utc)
    for i in range(30):
        cap.submit(Event("A", now, f"{'normal' if i < 10 else 'new-period'}-{i}", "application/json",
                         b"{}", "application/json", b"{}"))
    assert wait_for_capture(tmp_path / "ep", "new-period", 20, timeout_s=10) == 20
    assert captured(tmp_path / "ep", "normal") == 10
    (tmp_path / "ep" / "A" / "partial.jsonl").write_text('{"eventMetadata": {"inferenceId": "normal-99"}}\n{"event')
    assert captured(tmp_path / "ep", "normal") == 11  # the half-written line is not counted
    assert wait_for_capture(tmp_path / "ep", "after-promotion", 5, timeout_s=0.3) == 0  # gives up
    cap.close()
