"""Notes of a MIMIC-III without gold: build-notes writes note shards (notes/extract/), extract-notes
runs an extractor over them (sharded, resumable) and writes per-admission note features with a
time cut and a vocabulary fitted on the training split only. The rules extractor keeps it fast."""
from __future__ import annotations

import csv
import gzip
import io
import json
import shutil
from pathlib import Path

import pytest

from clinical_ml.io import DataError
from clinical_ml.notes.datasets import read_jsonl
from conftest import shared_subdir


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    """A tiny synthetic MIMIC-III (6 patients, 36 notes: radiology, nursing, discharge)."""
    from clinical_ml.synth.generate import generate

    out = tmp_path_factory.mktemp("synth") / "mimic"
    generate(out, patients=6, seed=3, workers=1)
    return out


@pytest.fixture(scope="module")
def no_gold(synth, tmp_path_factory) -> Path:
    """The same MIMIC-III with annotations/ removed (as the real database has none)."""
    out = tmp_path_factory.mktemp("nogold") / "mimic"
    shutil.copytree(synth, out)
    shutil.rmtree(out / "annotations")
    return out


def noteevents_rows(src: Path) -> list[dict]:
    with gzip.open(src / "NOTEEVENTS.csv.gz", "rt", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def shard_lines(notes_out: Path) -> list[dict]:
    return [d for p in sorted((notes_out / "notes" / "extract").glob("part-*.jsonl")) for d in read_jsonl(p)]


# ---------------------------------------------------------------- build-notes without gold
def test_build_notes_without_gold_writes_note_shards(no_gold, tmp_path, caplog):
    from processing import build_notes

    with caplog.at_level("INFO"):
        assert build_notes.main(["--input", str(no_gold), "--output", str(tmp_path), "--categories", "all",
                                 "--notes-per-shard", "7"]) == 0
    rows = noteevents_rows(no_gold)
    lines = shard_lines(tmp_path)
    assert len(lines) == len(rows) == 36
    parts = sorted((tmp_path / "notes" / "extract").glob("part-*.jsonl"))
    assert [p.name for p in parts] == [f"part-{i:05d}.jsonl" for i in range(6)]  # 36 notes, 7 a file
    assert set(lines[0]) == {"id", "text", "category", "subject_id", "hadm_id", "chartdate", "charttime"}
    # discharge summaries first, then the other categories
    cats = [d["category"] for d in lines]
    n_ds = cats.count("Discharge summary")
    assert n_ds and set(cats[:n_ds]) == {"Discharge summary"}
    by_id = {int(r["ROW_ID"]): r for r in rows}
    for d in lines:
        r = by_id[d["id"]]
        assert d["text"] == r["TEXT"] and d["hadm_id"] == int(r["HADM_ID"])
        assert d["chartdate"] == r["CHARTDATE"][:10] and d["charttime"] == (r["CHARTTIME"] or None)
    # no gold: empty splits, and the step says what it did (counts, never text)
    for s in ("train", "val", "test"):
        assert (tmp_path / "notes" / f"{s}.jsonl").read_text() == ""
    manifest = json.loads((tmp_path / "notes" / "manifest.json").read_text())
    assert manifest["gold"] is None and manifest["notes"] == 0 and manifest["extract"]["notes"] == 36
    assert "no gold annotations" in caplog.text and "notes/extract: 36 notes in 6 shard file(s)" in caplog.text
    for d in lines:
        assert d["text"][:60] not in caplog.text


def test_build_notes_categories_errors_and_cohort(no_gold, tmp_path):
    from processing import build_notes

    rows = noteevents_rows(no_gold)
    # ISERROR rows are dropped; a cohort of two admissions keeps only their notes
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), quoting=csv.QUOTE_MINIMAL)
    w.writeheader()
    for i, r in enumerate(rows):
        w.writerow({**r, "ISERROR": "1" if i == 0 else r["ISERROR"]})
    src = tmp_path / "mimic"
    shutil.copytree(no_gold, src)
    with gzip.open(src / "NOTEEVENTS.csv.gz", "wt", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    hadms = sorted({int(r["HADM_ID"]) for r in rows})[:2]
    (tmp_path / "cohort.csv").write_text("SUBJECT_ID,HADM_ID\n" + "".join(f"1,{h}\n" for h in hadms))
    assert build_notes.main(["--input", str(src), "--output", str(tmp_path / "out"), "--chunk-rows", "5",
                             "--categories", "nursing,Discharge summary", "--admissions",
                             str(tmp_path / "cohort.csv")]) == 0
    lines = shard_lines(tmp_path / "out")
    want = [r for i, r in enumerate(rows) if i > 0 and int(r["HADM_ID"]) in hadms
            and r["CATEGORY"] in ("Nursing", "Discharge summary")]
    assert sorted(d["id"] for d in lines) == sorted(int(r["ROW_ID"]) for r in want)
    assert lines[0]["category"] == "Discharge summary"  # listed second, written first
    m = json.loads((tmp_path / "out" / "notes" / "extract" / "manifest.json").read_text())
    assert m["cohort_admissions"] == 2 and m["notes"] == len(want)
    with pytest.raises(DataError, match="HADM_ID"):
        (tmp_path / "bad.csv").write_text("SUBJECT_ID\n1\n")
        build_notes.main(["--input", str(src), "--output", str(tmp_path / "o2"), "--admissions",
                          str(tmp_path / "bad.csv")])
    assert not (tmp_path / "o2" / "notes" / "extract").exists()


def test_build_notes_cohort_from_a_build_tasks_tree(no_gold, tmp_path):
    import pandas as pd

    from clinical_ml.notes.noteevents import read_admission_ids

    for split, ids in (("train", [1, 2]), ("test", [3])):
        (tmp_path / split / "ihm").mkdir(parents=True)
        pd.DataFrame({"subject_id": ids, "hadm_id": [10 * i for i in ids]}).to_parquet(
            tmp_path / split / "ihm" / "part-00000.parquet")
    (tmp_path / "train" / "timeseries").mkdir()
    pd.DataFrame({"icustay_id": [5]}).to_parquet(tmp_path / "train" / "timeseries" / "part-00000.parquet")
    assert read_admission_ids(tmp_path) == {10, 20, 30}
    assert read_admission_ids(tmp_path, ["train"]) == {10, 20}


def test_build_notes_with_gold_also_writes_note_shards(synth, tmp_path):
    from processing import build_notes

    assert build_notes.main(["--input", str(synth), "--output", str(tmp_path)]) == 0
    docs = [d for s in ("train", "val", "test") for d in read_jsonl(tmp_path / "notes" / f"{s}.jsonl")]
    assert len(docs) == 36  # today's behaviour: every gold note in the splits
    lines = shard_lines(tmp_path)
    assert lines and {d["category"] for d in lines} == {"Discharge summary"}  # the default category


def test_build_notes_on_the_real_demo(shared_data, tmp_path, caplog):
    """The PhysioNet demo's NOTEEVENTS is header-only: 0 notes, exit 0, and the step says so."""
    from processing import build_notes

    demo = shared_subdir(shared_data, "mimic3-demo")
    with caplog.at_level("INFO"):
        assert build_notes.main(["--input", str(demo), "--output", str(tmp_path)]) == 0
    parts = sorted((tmp_path / "notes" / "extract").glob("part-*.jsonl"))
    assert [p.name for p in parts] == ["part-00000.jsonl"] and parts[0].read_text() == ""
    assert "the table has no notes" in caplog.text and "0 notes in 1 shard" in caplog.text
