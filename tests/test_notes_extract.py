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
    assert read_admission_ids(tmp_path / "train", ["train"]) == {10, 20}  # one split's folder, as mounted


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


# ---------------------------------------------------------------- extract-notes
@pytest.fixture(scope="module")
def rules_model(tmp_path_factory) -> Path:
    from clinical_ml.extraction.artifact import save_rules
    from clinical_ml.extraction.rules import RulesExtractor

    return save_rules(RulesExtractor(), tmp_path_factory.mktemp("rules") / "model")


@pytest.fixture(scope="module")
def built(no_gold, tmp_path_factory) -> Path:
    """build-notes over every category of the synthetic MIMIC-III without gold: 36 notes, 5 files."""
    from processing import build_notes

    out = tmp_path_factory.mktemp("built")
    assert build_notes.main(["--input", str(no_gold), "--output", str(out), "--categories", "all",
                             "--notes-per-shard", "8"]) == 0
    return out / "notes"


@pytest.fixture(scope="module")
def single(built, rules_model, no_gold, tmp_path_factory) -> Path:
    from processing import extract_notes

    out = tmp_path_factory.mktemp("single")
    assert extract_notes.main(["--model", str(rules_model), "--notes", str(built), "--output", str(out),
                               "--num-shards", "1", "--shard-index", "0", "--batch-size", "4",
                               "--fit-vocabulary", "--train-admissions", str(no_gold / "ADMISSIONS.csv.gz"),
                               "--min-admissions", "1"]) == 0
    return out


def lines_of(folder: Path) -> list[str]:
    return [line for p in sorted(folder.glob("part-*.jsonl")) for line in p.read_text(encoding="utf-8").splitlines()]


def test_extract_notes_writes_one_annotation_per_note(single, built):
    from clinical_ml.notes.schema import annotation_errors

    notes = {d["id"]: d for p in sorted((built / "extract").glob("part-*.jsonl")) for d in read_jsonl(p)}
    out = [json.loads(x) for x in lines_of(single / "extracted")]
    assert [d["id"] for d in out] == sorted(notes)  # every note once, sorted by id
    for d in out:
        assert set(d) == {"id", "entities", "relations", "record"}
        assert annotation_errors(d, notes[d["id"]]["text"]) == []
    assert sum(bool(d["entities"]) for d in out) > 20  # the rules extractor finds things in synthetic notes
    m = json.loads((single / "extracted" / "manifest-00000.json").read_text())
    assert m["notes"] == m["written"] == m["extracted"] == 36 and m["resumed"] == 0
    assert not list((single / "extracted").glob(".work-*"))


def test_two_shards_equal_one_byte_for_byte(single, built, rules_model, no_gold, tmp_path):
    import pandas as pd

    from processing import extract_notes

    for i in (0, 1):
        assert extract_notes.main(["--model", str(rules_model), "--notes", str(built), "--output", str(tmp_path),
                                   "--num-shards", "2", "--shard-index", str(i)]) == 0
    a, b = ((tmp_path / "extracted" / f"part-{i:05d}.jsonl").read_text().splitlines() for i in (0, 1))
    assert a and b and not {json.loads(x)["id"] for x in a} & {json.loads(x)["id"] for x in b}
    both = sorted(a + b, key=lambda x: json.loads(x)["id"])
    assert "\n".join(both).encode() == (single / "extracted" / "part-00000.jsonl").read_bytes().rstrip(b"\n")
    assert not (tmp_path / "features").exists()  # sharded: features run once, after every shard
    assert extract_notes.main(["--notes", str(built), "--output", str(tmp_path), "--stage", "features",
                               "--fit-vocabulary", "--train-admissions", str(no_gold / "ADMISSIONS.csv.gz"),
                               "--min-admissions", "1", "--num-shards", "1", "--shard-index", "0"]) == 0
    sharded = pd.read_parquet(tmp_path / "features" / "note_features.parquet")
    pd.testing.assert_frame_equal(sharded, pd.read_parquet(single / "features" / "note_features.parquet"))
    assert sharded["note_n"].sum() == 36 and sharded["note_medications"].sum() > 0


def test_features_need_every_shard(built, rules_model, no_gold, tmp_path):
    from processing import extract_notes

    assert extract_notes.main(["--model", str(rules_model), "--notes", str(built), "--output", str(tmp_path),
                               "--num-shards", "2", "--shard-index", "1"]) == 0
    with pytest.raises(DataError, match="have no extraction.*part-00001.jsonl"):
        extract_notes.main(["--notes", str(built), "--output", str(tmp_path), "--stage", "features",
                            "--fit-vocabulary", "--train-admissions", str(no_gold / "ADMISSIONS.csv.gz")])
    with pytest.raises(DataError, match="--train-admissions"):
        extract_notes.main(["--notes", str(built), "--output", str(tmp_path), "--stage", "features",
                            "--fit-vocabulary"])
    with pytest.raises(DataError, match="vocabulary not found"):
        extract_notes.main(["--notes", str(built), "--output", str(tmp_path), "--stage", "features"])


def test_killed_shard_redone_leaves_no_duplicates(single, built, rules_model, tmp_path, monkeypatch):
    from processing import extract_notes

    real = extract_notes.load_extractor

    class Killed(RuntimeError):
        pass

    def dying(spec, *settings):
        ext, calls = real(spec, *settings), {"n": 0}

        class Dying:
            def extract(self, texts):
                calls["n"] += 1
                if calls["n"] == 3:
                    raise Killed("instance lost")
                return ext.extract(texts)

            def close(self):
                ext.close()
        return Dying()

    args = ["--model", str(rules_model), "--notes", str(built), "--output", str(tmp_path),
            "--num-shards", "1", "--shard-index", "0", "--checkpoint-every", "5", "--batch-size", "5"]
    monkeypatch.setattr(extract_notes, "load_extractor", dying)
    with pytest.raises(Killed):
        extract_notes.main(args)
    work = tmp_path / "extracted" / ".work-00000"
    assert len(list(work.glob("chunk-*.jsonl"))) == 2 and not (tmp_path / "extracted" / "part-00000.jsonl").exists()
    # a partial chunk the kill left behind (never renamed into place) is ignored
    first = (work / "chunk-000000.jsonl").read_text().splitlines()[0]
    (work / ".chunk-000002.jsonl.tmp-1-abc").write_text(first + "\n" + first[: len(first) // 2])
    monkeypatch.setattr(extract_notes, "load_extractor", real)
    assert extract_notes.main(args) == 0
    part = tmp_path / "extracted" / "part-00000.jsonl"
    ids = [json.loads(x)["id"] for x in part.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == 36
    assert part.read_bytes() == (single / "extracted" / "part-00000.jsonl").read_bytes()
    m = json.loads((tmp_path / "extracted" / "manifest-00000.json").read_text())
    assert m["resumed"] == 10 and m["extracted"] == 26 and not work.exists()
    assert extract_notes.main(args) == 0  # a complete shard rerun: nothing extracted, same bytes
    assert json.loads((tmp_path / "extracted" / "manifest-00000.json").read_text())["extracted"] == 0
    assert part.read_bytes() == (single / "extracted" / "part-00000.jsonl").read_bytes()


# ---------------------------------------------------------------- time cut, vocabulary
T0 = "2150-01-01 00:00:00"


def _cut_fixture(root: Path) -> tuple[Path, Path]:
    """Three admissions; times in hours after ICU INTIME (IHM predicts at INTIME + 48 h).

    100 (train): INTIME = ADMITTIME; aspirin at 47 h, heparin at 49 h, pneumonia on day 1 (date only),
        metoprolol dated day 3 (date only: end of day, after the cut), warfarin in the discharge summary.
    200 (train): the ICU stay began 2 h before ADMITTIME; heparin at 47 h, metoprolol at 49 h
        (= ADMITTIME + 47 h: only the earlier reference time keeps it out).
    300 (test): warfarin and a CT scan at 1 h: never in a vocabulary fitted on train only."""
    mimic = root / "mimic"
    mimic.mkdir()
    (mimic / "ADMISSIONS.csv").write_text(
        "ROW_ID,SUBJECT_ID,HADM_ID,ADMITTIME,DISCHTIME\n"
        "1,1,100,2150-01-01 00:00:00,2150-01-05 12:00:00\n"
        "2,2,200,2150-02-01 02:00:00,2150-02-06 12:00:00\n"
        "3,3,300,2150-03-01 00:00:00,2150-03-04 12:00:00\n")
    (mimic / "ICUSTAYS.csv").write_text(
        "ROW_ID,SUBJECT_ID,HADM_ID,ICUSTAY_ID,INTIME\n"
        "1,1,100,1000,2150-01-01 00:00:00\n2,2,200,2000,2150-02-01 00:00:00\n3,3,300,3000,2150-03-01 00:00:00\n")

    def note(i, hadm, text, cdate, ctime=None, cat="Nursing"):
        return {"id": i, "text": text, "category": cat, "subject_id": hadm // 100, "hadm_id": hadm,
                "chartdate": cdate, "charttime": ctime}
    notes = [
        note(1, 100, "Started aspirin 81 mg PO daily.", "2150-01-02", "2150-01-02 23:00:00"),     # 47 h
        note(2, 100, "Given heparin drip. Denies chest pain.", "2150-01-03", "2150-01-03 01:00:00"),  # 49 h
        note(3, 100, "Patient has pneumonia. No fever.", "2150-01-01"),                           # day 1
        note(4, 100, "Metoprolol 25 mg BID.", "2150-01-03"),                                      # day 3
        note(5, 100, "Warfarin 5 mg PO daily.", "2150-01-05", cat="Discharge summary"),
        note(6, 200, "Given heparin drip.", "2150-02-02", "2150-02-02 23:00:00"),                 # 47 h
        note(7, 200, "Metoprolol 25 mg BID. Diabetes mellitus.", "2150-02-03", "2150-02-03 01:00:00"),  # 49 h
        note(8, 300, "Warfarin 5 mg PO daily. CT scan of the head.", "2150-03-01", "2150-03-01 01:00:00"),
    ]
    ext = root / "notes" / "extract"
    ext.mkdir(parents=True)
    (ext / "part-00000.jsonl").write_text("".join(json.dumps(n) + "\n" for n in notes))
    import pandas as pd

    for split, ids in (("train", [100, 200]), ("test", [300])):
        (root / "tasks" / split / "ihm").mkdir(parents=True)
        pd.DataFrame({"subject_id": [i // 100 for i in ids], "hadm_id": ids, "icustay_id": [i * 10 for i in ids],
                      "prediction_hour": [48.0] * len(ids)}).to_parquet(root / "tasks" / split / "ihm" / "part-00000.parquet")
    return mimic, root / "notes"


def _features(out: Path):
    import pandas as pd

    return pd.read_parquet(out / "features" / "note_features.parquet").set_index("hadm_id")


def test_no_ihm_note_feature_comes_from_after_the_prediction_time(tmp_path):
    from processing import extract_notes

    mimic, notes = _cut_fixture(tmp_path)
    out = tmp_path / "out"
    assert extract_notes.main(["--model", "rules", "--notes", str(notes), "--output", str(out),
                               "--num-shards", "1", "--shard-index", "0", "--cut-hours", "48", "--mimic", str(mimic),
                               "--fit-vocabulary", "--train-admissions", str(tmp_path / "tasks"),
                               "--min-admissions", "1"]) == 0
    f = _features(out)
    concept_cols = [c for c in f.columns if c not in (
        "subject_id", "note_n", "note_medications", "note_problems", "note_problems_negated", "note_tests",
        "note_procedures")]
    # fitted on train (100, 200) after the cut: no heparin of 49 h, no metoprolol, no discharge warfarin
    assert concept_cols == ["note_med_aspirin", "note_med_heparin", "note_problem_pneumonia"]
    assert f.loc[100, ["note_n", "note_med_aspirin", "note_med_heparin", "note_problem_pneumonia"]].tolist() == [2, 1, 0, 1]
    assert f.loc[100, ["note_medications", "note_problems", "note_problems_negated"]].tolist() == [1, 2, 1]
    assert f.loc[200, ["note_n", "note_med_heparin", "note_medications", "note_problems"]].tolist() == [1, 1, 1, 0]
    assert f.loc[300, ["note_n", "note_medications", "note_tests"]].tolist() == [1, 1, 1]
    m = json.loads((out / "features" / "manifest.json").read_text())
    assert m["excluded"] == {"after_cut": 3, "discharge_summary": 1} and m["notes_used"] == 4
    assert f["note_n"].dtype == "int32" and f["note_med_aspirin"].dtype == "int8"
    # no cut: every note counts (heparin of 49 h, the discharge summary's warfarin)
    out2 = tmp_path / "nocut"
    assert extract_notes.main(["--model", "rules", "--notes", str(notes), "--output", str(out2),
                               "--num-shards", "1", "--shard-index", "0", "--vocabulary",
                               str(out / "features" / "vocabulary.json")]) == 0
    g = _features(out2)
    assert g.loc[100, ["note_n", "note_med_heparin", "note_medications"]].tolist() == [5, 1, 4]


def test_feature_sets_one_folder_per_task(tmp_path):
    """ihm:48 has the 48 h cut (no discharge summary); readmit:all every note, the summary too."""
    import pandas as pd

    from processing import extract_notes

    mimic, notes = _cut_fixture(tmp_path)
    out = tmp_path / "out"
    assert extract_notes.main(["--model", "rules", "--notes", str(notes), "--output", str(out), "--mimic", str(mimic),
                               "--fit-vocabulary", "--train-admissions", str(tmp_path / "tasks"), "--min-admissions", "1",
                               "--feature-sets", "ihm:48,readmit:all"]) == 0
    ihm = pd.read_parquet(out / "features" / "ihm" / "note_features.parquet").set_index("hadm_id")
    readmit = pd.read_parquet(out / "features" / "readmit" / "note_features.parquet").set_index("hadm_id")
    assert "note_med_heparin" in ihm.columns and "note_med_warfarin" not in ihm.columns
    assert ihm.loc[100, "note_n"] == 2 and readmit.loc[100, "note_n"] == 5
    assert readmit.loc[100, "note_med_warfarin"] == 1  # from the discharge summary: readmission only
    m = {n: json.loads((out / "features" / n / "manifest.json").read_text()) for n in ("ihm", "readmit")}
    assert (m["ihm"]["cut_hours"], m["ihm"]["allow_discharge_summary"]) == (48.0, False)
    assert (m["readmit"]["cut_hours"], m["readmit"]["allow_discharge_summary"]) == (None, True)
    assert (out / "features" / "ihm" / "vocabulary.json").is_file() and not (out / "features" / "note_features.parquet").exists()
    # read back per set with --vocabulary FOLDER: the same columns
    assert extract_notes.main(["--model", "rules", "--notes", str(notes), "--output", str(tmp_path / "again"),
                               "--mimic", str(mimic), "--vocabulary", str(out / "features"),
                               "--feature-sets", "ihm:48,readmit:all"]) == 0
    again = pd.read_parquet(tmp_path / "again" / "features" / "ihm" / "note_features.parquet")
    assert list(again.columns) == list(ihm.reset_index().columns)


@pytest.mark.parametrize("bad", ["ihm", "ihm:soon", "ihm:48,ihm:all", "1x:48"])
def test_feature_sets_refuse_bad_values(bad):
    from processing.extract_notes import parse_feature_sets

    with pytest.raises(DataError, match="--feature-sets"):
        parse_feature_sets(bad)


def test_vocabulary_is_fitted_on_the_training_split_only(tmp_path):
    from processing import extract_notes

    mimic, notes = _cut_fixture(tmp_path)
    base = ["--model", "rules", "--notes", str(notes), "--num-shards", "1", "--shard-index", "0",
            "--min-admissions", "1"]
    assert extract_notes.main(base + ["--output", str(tmp_path / "a"), "--fit-vocabulary",
                                      "--train-admissions", str(tmp_path / "tasks")]) == 0
    vocab = json.loads((tmp_path / "a" / "features" / "vocabulary.json").read_text())
    names = {c["name"] for cs in vocab["concepts"].values() for c in cs}
    # test admission 300's CT scan is in no training note; warfarin only via train's discharge summary
    assert "ct scan" not in names and {"aspirin", "heparin", "metoprolol", "warfarin", "pneumonia"} <= names
    assert vocab["fitted_on"] == {"train_admissions": 2, "train_admissions_with_notes": 2}
    assert "note_test_ct_scan" not in _features(tmp_path / "a").columns
    # the same vocabulary read back (e.g. for a later run) gives the same columns
    assert extract_notes.main(base + ["--output", str(tmp_path / "b"), "--vocabulary",
                                      str(tmp_path / "a" / "features" / "vocabulary.json")]) == 0
    assert list(_features(tmp_path / "b").columns) == list(_features(tmp_path / "a").columns)
    # with 300 among the training admissions its concepts become columns
    (tmp_path / "train.csv").write_text("HADM_ID\n100\n300\n")
    assert extract_notes.main(base + ["--output", str(tmp_path / "c"), "--fit-vocabulary",
                                      "--train-admissions", str(tmp_path / "train.csv")]) == 0
    assert "note_test_ct_scan" in _features(tmp_path / "c").columns
    assert "note_med_heparin" in _features(tmp_path / "c").columns  # admission 100's heparin (no cut)
    # min-admissions: a concept of one training admission is left out by default (5)
    assert extract_notes.main(base[:-2] + ["--output", str(tmp_path / "d"), "--fit-vocabulary",
                                           "--train-admissions", str(tmp_path / "tasks")]) == 0
    assert json.loads((tmp_path / "d" / "features" / "vocabulary.json").read_text())["concepts"]["MEDICATION"] == []


def test_extract_notes_logs_counts_never_text(built, rules_model, tmp_path, caplog):
    from clinical_ml.cli import main as cli

    with caplog.at_level("INFO"):
        assert cli(["extract-notes", "--model", str(rules_model), "--notes", str(built), "--output", str(tmp_path),
                    "--num-shards", "1", "--shard-index", "0"]) == 0
    assert "shard 0/1: 36 notes (0 done before), extracted 36" in caplog.text
    assert "no note features" in caplog.text
    for p in sorted((built / "extract").glob("part-*.jsonl")):
        for d in read_jsonl(p):
            assert d["text"][:40] not in caplog.text
    assert cli(["extract-notes", "--model", str(tmp_path / "nowhere"), "--notes", str(built),
                "--output", str(tmp_path / "x")]) == 2


def test_extract_notes_runs_as_a_file():
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "processing/extract_notes.py", "--help"], capture_output=True, text=True,
                       timeout=120, cwd=Path(__file__).resolve().parents[1])
    assert r.returncode == 0 and "--num-shards" in r.stdout, r.stderr


def test_feature_functions_are_small_and_pure():
    from datetime import datetime

    from clinical_ml.notes import features as F
    from clinical_ml.notes.noteevents import parse_categories

    assert F.normalize_concept("  Aspirin, ") == "aspirin" and F.normalize_concept(None) == ""
    assert F.note_time("2150-01-02", None) == datetime(2150, 1, 2, 23, 59, 59)
    assert F.note_time("2150-01-02 00:00:00", "2150-01-02 07:30:00") == datetime(2150, 1, 2, 7, 30)
    assert F.note_time("", "") is None
    ref = F.reference_time(datetime(2150, 1, 1, 2), [datetime(2150, 1, 1, 0), None])
    assert ref == datetime(2150, 1, 1, 0)
    assert F.exclusion("Nursing", datetime(2150, 1, 3, 0), ref, 48) is None  # exactly at the cut: counts
    assert F.exclusion("Nursing", datetime(2150, 1, 3, 0, 0, 1), ref, 48) == "after_cut"
    assert F.exclusion("Discharge summary ", datetime(2150, 1, 1, 1), ref, 48) == "discharge_summary"
    assert F.exclusion("Discharge summary", datetime(2150, 1, 1, 1), ref, 48, allow_discharge_summary=True) is None
    assert F.exclusion("Nursing", None, ref, 48) == "no_time" and F.exclusion("Nursing", None, None, None) is None
    acc = F.add_note(F.empty_admission(), {"medications": [{"name": "X-Ray dye"}],
                                           "problems": [{"name": "fever", "negated": True}]})
    assert acc["counts"]["MEDICATION"] == 1 and acc["negated_problems"] == 1 and acc["concepts"]["PROBLEM"] == set()
    acc2 = F.add_note(F.empty_admission(), {"medications": [{"name": "x ray dye"}, {"name": "x-ray dye"}]})
    vocab = F.fit_vocabulary({1: acc, 2: acc2}, [1, 2], top_k=5, min_admissions=1)
    cols = [c["column"] for c in vocab["concepts"]["MEDICATION"]]
    assert [c["name"] for c in vocab["concepts"]["MEDICATION"]] == ["x-ray dye", "x ray dye"]  # 2 admissions, 1
    assert cols == ["note_med_x_ray_dye", "note_med_x_ray_dye_2"]  # one column name each
    assert parse_categories("all") is None
    assert parse_categories("Radiology, discharge SUMMARY,radiology") == ["discharge summary", "radiology"]
    with pytest.raises(DataError, match="--categories"):
        parse_categories(" , ")


def test_parts_are_merged_by_streaming_in_rounds(tmp_path):
    """merge_sorted: the id-sorted union of sorted chunks, each id once (the first source's
    line wins), filtered, with at most fan_in files open per round; an unsorted chunk is refused."""
    import json as _json
    import random

    from clinical_ml.io import DataError
    from clinical_ml.notes.extracted import id_key, merge_sorted, sorted_lines

    rng = random.Random(3)
    ids = list(range(200)) + ["n-a", "n-b"]
    chunks, expected = [], {}
    for c in range(7):
        picked = rng.sample(ids, 40)
        lines = [(id_key(i), _json.dumps({"id": i, "chunk": c}) + "\n") for i in picked]
        for key, line in lines:
            expected.setdefault(key, line)
        path = tmp_path / f"chunk-{c:06d}.jsonl"
        path.write_text("".join(sorted_lines(lines)))
        chunks.append(path)
    keep = {k for k in expected if k[0] == 1 or k[1] % 3}
    out = tmp_path / "part-00000.jsonl"
    assert merge_sorted(chunks, out, keep=keep.__contains__, fan_in=2) == len(keep)
    assert out.read_text() == "".join(expected[k] for k in sorted(keep))
    assert not list(tmp_path.glob(".merge-*"))  # round files cleaned up
    chunks[3].write_text('{"id": 5}\n{"id": 4}\n')
    with pytest.raises(DataError, match="not sorted by note id"):
        merge_sorted(chunks, tmp_path / "again.jsonl")
    assert not (tmp_path / "again.jsonl").exists()  # nothing half-written
