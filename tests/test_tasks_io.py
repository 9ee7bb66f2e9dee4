"""Task tree readers/writers, column names, stable hashes (Python == SQL), manifest merge, compare-reference."""
from __future__ import annotations

import csv

import duckdb
import pandas as pd
import pytest

from clinical_ml.io import DataError, write_json
from clinical_ml.sql import render
from clinical_ml.tasks import io as tio
from clinical_ml.tasks import manifest, splits
from clinical_ml.tasks.features import feature_names
from processing import compare_reference


def test_read_split_concatenates_parts_in_order(tmp_path):
    tio.write_part(pd.DataFrame({"subject_id": [2], "y": [1], "f_a": [0.5]}), tmp_path, "ihm", 1, 2)
    tio.write_part(pd.DataFrame({"subject_id": [1], "y": [0], "f_a": [0.1]}), tmp_path, "ihm", 0, 2)
    df = tio.read_split(tmp_path, "ihm")
    assert list(df.subject_id) == [1, 2]
    assert list(tio.read_split(tmp_path, "ihm", columns=["y"]).columns) == ["y"]
    assert not list(tmp_path.rglob(".*tmp*"))


def test_read_split_errors(tmp_path):
    with pytest.raises(DataError, match="no part"):
        tio.read_split(tmp_path, "los")
    with pytest.raises(DataError, match="unknown task"):
        tio.read_split(tmp_path, "mortality")
    with pytest.raises(DataError, match="shard index"):
        tio.write_part(pd.DataFrame({"a": [1]}), tmp_path, "ihm", 3, 2)


def test_names():
    assert tio.TASKS == ("ihm", "decomp", "los", "pheno", "readmit")
    assert len(tio.PHENOTYPES) == 25 and len(set(tio.PHENOTYPE_COLUMNS)) == 25
    assert tio.label_columns("ihm") == ["y"] and tio.label_columns("pheno")[0] == "y_acute_and_unspecified_renal_failure"
    assert tio.feature_columns(["subject_id", "f_x", "y", "f_y"]) == ["f_x", "f_y"]
    names = feature_names()
    assert len(names) == 17 * 2 * 6 + 1 and all(n.startswith("f_") for n in names)
    assert "f_heart_rate_all_mean" in names and "f_glascow_coma_scale_total_12h_max" in names


def test_hashes_agree_between_python_and_sql():
    ids = [1, 2, 3, 99, 100, 12345, 99999, 10 ** 9 + 7]
    con = duckdb.connect()
    rows = con.execute(render("SELECT s, {shard}, {split} FROM (SELECT unnest(?::BIGINT[]) AS s) ORDER BY s",
                              shard=splits.shard_sql("s", 5), split=splits.hash_split_sql("s")), [ids]).fetchall()
    for s, shard, split in rows:
        assert shard == splits.shard_of(s, 5)
        assert split == splits.hash_split(s)


def test_hash_split_proportions_and_published():
    counts = pd.Series([splits.hash_split(s) for s in range(200000, 220000)]).value_counts(normalize=True)
    assert abs(counts["test"] - 0.15) < 0.02 and abs(counts["val"] - 0.15) < 0.02
    pub = splits.published_splits()
    assert len(pub) == 33798 and set(pub.values()) == {"train", "val", "test"}
    sid = next(s for s, v in pub.items() if v == "val")
    assert splits.split_of(sid) == "val" and splits.split_of(10 ** 7, "published") is None


def _fake_manifest(shard, count, rows):
    return {"schema_version": 1, "shard": {"index": shard, "count": count}, "config": {}, "features": [],
            "cohort": {"remove_age_under_18": {"icustays": rows}}, "episodes": {"episodes": rows},
            "splits": {"source": "auto", "subjects": rows, "subjects_in_published_lists": rows},
            "hourly_samples_reference": {"train": {"decomp": 10 * rows, "decomp_positives": rows, "los": 10 * rows}},
            "tasks": {"train": {"ihm": {"rows": rows, "positives": 1, "prevalence": 1 / rows},
                                "los": {"rows": 10 * rows, "sum_y": 100.0 * rows, "mean_y": 10.0}},
                      "test": {"ihm": {"rows": 0, "positives": 0, "prevalence": None}}}}


def test_manifest_merge_sums_shards(tmp_path):
    write_json(tmp_path / "manifest-00000.json", _fake_manifest(0, 2, 4))
    with pytest.raises(DataError, match="shard manifests"):
        manifest.load(tmp_path)
    write_json(tmp_path / "manifest-00001.json", _fake_manifest(1, 2, 6))
    m = manifest.load(tmp_path)
    assert m["cohort"]["remove_age_under_18"]["icustays"] == 10
    assert m["tasks"]["train"]["ihm"] == {"rows": 10, "positives": 2, "prevalence": 0.2}
    assert m["tasks"]["train"]["los"]["mean_y"] == 10.0
    with pytest.raises(DataError, match="no manifest"):
        manifest.load(tmp_path / "nothing")


def _listfile(path, header, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


def test_compare_reference_counts(tmp_path):
    ours = tmp_path / "ours"
    write_json(ours / "manifest-00000.json", _fake_manifest(0, 1, 4))
    ref = tmp_path / "ref"
    _listfile(ref / "root" / "all_stays.csv", ["ICUSTAY_ID"], [[i] for i in range(4)])
    for part in ("train", "test"):
        (ref / "root" / part / "1").mkdir(parents=True)
    for i in range(4):
        (ref / "root" / "train" / "1" / f"episode{i + 1}_timeseries.csv").write_text("Hours\n")
    _listfile(ref / "in-hospital-mortality" / "train" / "listfile.csv", ["stay", "y_true"],
              [["a", 1], ["b", 0], ["c", 0], ["d", 0]])
    _listfile(ref / "in-hospital-mortality" / "test" / "listfile.csv", ["stay", "y_true"], [])
    assert compare_reference.main(["--reference-root", str(ref), "--ours", str(ours),
                                   "--out", str(tmp_path / "r.json")]) == 0
    _listfile(ref / "in-hospital-mortality" / "test" / "listfile.csv", ["stay", "y_true"], [["e", 1]])
    assert compare_reference.main(["--reference-root", str(ref), "--ours", str(ours)]) == 1
