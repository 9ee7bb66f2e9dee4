"""Sharded runs == one run; demo layout == release layout; sampling; splits; bad input errors."""
from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest

from clinical_ml.io import DataError, read_json, sagemaker_shard
from clinical_ml.tasks.build import BuildConfig, build
from clinical_ml.tasks.io import SPLITS, TASKS, read_split, read_timeseries
from clinical_ml.tasks.splits import shard_of
from processing import build_tasks
from tasks_tiny_mimic import build_tiny, write_tiny

KEYS = ["subject_id", "icustay_id", "prediction_hour"]


@pytest.fixture(scope="module")
def src(tmp_path_factory):
    return write_tiny(tmp_path_factory.mktemp("tiny") / "mimic")


@pytest.fixture(scope="module")
def single(src, tmp_path_factory):
    out = tmp_path_factory.mktemp("single")
    build(BuildConfig(mimic=str(src), out=str(out), threads=1, sample_every=1))
    return out


def _frame(out, split, task):
    df = read_timeseries(out / split) if task == "timeseries" else read_split(out / split, task)
    keys = ["icustay_id", "hour"] if task == "timeseries" else KEYS
    return df.sort_values(keys).reset_index(drop=True)


def test_sharded_union_equals_single_run(src, single, tmp_path):
    out = tmp_path / "sharded"
    k = 3
    manifests = [build(BuildConfig(mimic=str(src), out=str(out), num_shards=k, shard_index=i,
                                   threads=1, sample_every=1))
                 for i in range(k)]
    for split in SPLITS:
        for task in (*TASKS, "timeseries"):
            assert len(list((out / split / task).glob("part-*.parquet"))) == k
            pd.testing.assert_frame_equal(_frame(out, split, task), _frame(single, split, task))
    one = read_json(single / "manifest.json")
    # where the time went, phase by phase (the scale benchmark reads it): every phase, and
    # together no more than the whole build
    assert list(one["step_seconds"]) == ["cohort", "events_scan", "events_clean", "episodes", "labels",
                                         "features", "write"]
    assert 0 < sum(one["step_seconds"].values()) <= one["seconds"]
    for step, counts in one["cohort"].items():
        for key, n in counts.items():
            assert sum(m["cohort"][step][key] for m in manifests) == n, (step, key)
    assert sum(m["events"]["n_events"] for m in manifests) == one["events"]["n_events"]
    # each shard holds only its own subjects
    for i in range(k):
        subj = read_split(out / "train", "los").subject_id
        parts = sorted((out / "train" / "los").glob("part-*.parquet"))
        assert set(pd.read_parquet(parts[i]).subject_id.map(lambda s: shard_of(s, k))) <= {i}
        assert len(subj)


def _counts(m: dict) -> dict:
    """A manifest without what legitimately differs between runs (time, memory, files, config)."""
    return {k: v for k, v in m.items() if k not in ("seconds", "step_seconds", "step_peak_rss_mib",
                                                    "files", "config", "batches", "shard")}


@pytest.mark.parametrize("num_shards", [1, 2])
def test_subject_batches_equal_one_pass(src, single, tmp_path, num_shards):
    """--batch-stays cuts a shard into subject batches after one scan: same rows, same counts."""
    out = tmp_path / "batched"
    ms = [build(BuildConfig(mimic=str(src), out=str(out), threads=1, sample_every=1, batch_stays=2,
                            num_shards=num_shards, shard_index=i)) for i in range(num_shards)]
    assert all(m["batches"]["count"] >= 2 for m in ms)
    assert not list(out.rglob("batch-*"))  # batch outputs were appended, not left behind
    for split in SPLITS:
        for task in (*TASKS, "timeseries"):
            assert len(list((out / split / task).glob("part-*.parquet"))) == num_shards
            pd.testing.assert_frame_equal(_frame(out, split, task), _frame(single, split, task))
    if num_shards == 1:
        assert _counts(ms[0]) == _counts(read_json(single / "manifest.json"))
        assert list(ms[0]["step_peak_rss_mib"]) == list(ms[0]["step_seconds"])
    else:
        from clinical_ml.tasks import manifest
        assert _counts(manifest.load(out)) == _counts(manifest.load(single))


def test_negative_batch_stays_is_a_data_error(src, tmp_path):
    with pytest.raises(DataError, match="--batch-stays"):
        build(BuildConfig(mimic=str(src), out=str(tmp_path / "o"), batch_stays=-1))


def test_demo_layout_gives_same_result(tmp_path, single):
    """Uncompressed ``table.csv`` with lower-case headers (the PhysioNet demo layout)."""
    src = tmp_path / "demo"
    build_tiny().write(src, gz=False)
    for p in src.glob("*.csv"):
        lines = p.read_text().split("\n", 1)
        p.with_name(p.name.lower()).write_text(lines[0].lower() + "\n" + lines[1])
        p.unlink()
    out = tmp_path / "out"
    build(BuildConfig(mimic=str(src), out=str(out), threads=1, tasks=("ihm", "readmit")))
    for task in ("ihm", "readmit"):
        for split in SPLITS:
            pd.testing.assert_frame_equal(_frame(out, split, task), _frame(single, split, task))


def test_sample_every_thins_train_only(src, single, tmp_path):
    out = tmp_path / "thin"
    m = build(BuildConfig(mimic=str(src), out=str(out), tasks=("decomp",), sample_every=6,
                          eval_sample_every=2, threads=1, timeseries=False))
    full = read_json(single / "manifest.json")
    assert m["hourly_samples_reference"] == full["hourly_samples_reference"]
    tr = read_split(out / "train", "decomp")
    assert len(tr) and (tr.prediction_hour % 6 == 0).all()
    te = read_split(out / "test", "decomp")
    assert (te.prediction_hour % 2 == 0).all()
    ref = _frame(single, "train", "decomp")
    assert len(tr) == (ref.prediction_hour % 6 == 0).sum()
    assert not (out / "train" / "ihm").exists() and not (out / "train" / "timeseries").exists()


def test_published_split_used_for_listed_subjects(tmp_path):
    from clinical_ml.tasks.splits import published_splits

    pub = published_splits()
    test_id = next(s for s, v in pub.items() if v == "test")
    t = build_tiny()
    for table in t.rows.values():  # rename subject 900014 to a published test subject
        for r in table:
            if r.get("SUBJECT_ID") == 900014:
                r["SUBJECT_ID"] = test_id
    src = t.write(tmp_path / "mimic")
    m = build(BuildConfig(mimic=str(src), out=str(tmp_path / "out"), tasks=("ihm",), threads=1,
                          timeseries=False))
    assert m["splits"]["subjects_in_published_lists"] == 1
    assert test_id in set(read_split(tmp_path / "out" / "test", "ihm").subject_id)
    m = build(BuildConfig(mimic=str(src), out=str(tmp_path / "pub"), tasks=("ihm",), threads=1,
                          timeseries=False, split_source="published"))
    assert m["splits"]["subjects_dropped_unlisted"] == m["splits"]["subjects"] - 1


def test_missing_table_is_a_data_error(src, tmp_path):
    bad = tmp_path / "mimic"
    shutil.copytree(src, bad)
    (bad / "LABEVENTS.csv.gz").unlink()
    with pytest.raises(DataError, match="ihm needs LABEVENTS"):  # no asked task can be built
        build(BuildConfig(mimic=str(bad), out=str(tmp_path / "out"), tasks=("ihm",), threads=1))
    assert not (tmp_path / "out" / "train").exists()
    # all tasks asked: the buildable one is built, the others named (tests/test_tasks_missing_tables.py)
    m = build(BuildConfig(mimic=str(bad), out=str(tmp_path / "out"), threads=1))
    assert m["task_plan"]["built"] == ["readmit"]
    assert m["task_plan"]["not_built"]["ihm"] == {"missing_tables": ["LABEVENTS"]}


def test_wrong_header_is_a_data_error(src, tmp_path):
    bad = tmp_path / "mimic"
    shutil.copytree(src, bad)
    with gzip.open(bad / "ICUSTAYS.csv.gz", "wt") as f:
        f.write("ROW_ID,SUBJECT_ID,ICUSTAY_ID\n1,2,3\n")
    with pytest.raises(DataError, match="ICUSTAYS.*header"):
        build(BuildConfig(mimic=str(bad), out=str(tmp_path / "out"), threads=1))


def test_bad_rows_are_counted_not_fatal(src, tmp_path):
    bad = tmp_path / "mimic"
    shutil.copytree(src, bad)
    with gzip.open(src / "ICUSTAYS.csv.gz", "rt") as f:
        text = f.read()
    with gzip.open(bad / "ICUSTAYS.csv.gz", "wt") as f:
        f.write(text + "99,900099,,,metavision,MICU,MICU,1,1,2150-13-45 99:00:00,,\r\n")
    m = build(BuildConfig(mimic=str(bad), out=str(tmp_path / "out"), threads=1, tasks=("ihm",)))
    assert m["input"]["rows_dropped_bad_keys_or_timestamps"]["icustays"] == 1


@pytest.mark.parametrize("argv, msg", [
    (["--tasks", "ihm,mortality"], "unknown task"),
    (["--num-shards", "2", "--shard-index", "2"], "shard-index"),
    (["--sample-every", "0"], "sample-every"),
])
def test_cli_rejects_bad_arguments(src, tmp_path, argv, msg):
    with pytest.raises(DataError, match=msg):
        build_tasks.main(["--mimic", str(src), "--out", str(tmp_path / "o"), *argv])


def test_cli_missing_folder_exits_2(tmp_path, capsys):
    from clinical_ml.cli import main

    assert main(["build-tasks", "--mimic", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 2
    assert "not found" in capsys.readouterr().err


def test_sagemaker_resource_config(tmp_path):
    cfg = tmp_path / "resourceconfig.json"
    cfg.write_text('{"current_host": "algo-2", "hosts": ["algo-3", "algo-1", "algo-2"]}')
    assert sagemaker_shard(str(cfg)) == (3, 1)
    assert sagemaker_shard(str(tmp_path / "absent.json")) == (1, 0)
