"""Note dataset loaders (brat, CoNLL, JSONL, MTSamples), the MACCROBAT map, splits, build-notes."""
from __future__ import annotations

import gzip
import json

import pytest

from clinical_ml.extraction.bio import words_with_offsets
from clinical_ml.io import DataError
from clinical_ml.notes import datasets as ds
from clinical_ml.notes.schema import annotation_errors
from clinical_ml.notes.toy import toy_documents

BRAT_TXT = "Patient denies chest pain. Started prednisolone 60 mg orally daily.\n"
BRAT_ANN = """T1\tSign_symptom 15 25\tchest pain
E1\tSign_symptom:T1 
A1\tPOLARITY E1 NEG
T2\tMedication 35 47\tprednisolone
E2\tMedication:T2 
T3\tDosage 48 53\t60 mg
T4\tAdministration 54 60\torally
T5\tFrequency 61 66\tdaily
T6\tLab_value 48 50\t60
R1\tMODIFY Arg1:T3 Arg2:E2\t
R2\tMODIFY Arg1:T4 Arg2:E2\t
R3\tMODIFY Arg1:E2 Arg2:T5\t
R4\tBEFORE Arg1:E1 Arg2:E2\t
"""


@pytest.fixture()
def brat_dir(tmp_path):
    (tmp_path / "doc1.txt").write_text(BRAT_TXT, encoding="utf-8")
    (tmp_path / "doc1.ann").write_text(BRAT_ANN, encoding="utf-8")
    return tmp_path


def test_brat_maps_types_negation_and_relations(brat_dir):
    (doc,) = ds.read_brat(brat_dir)
    assert annotation_errors({k: doc[k] for k in ("id", "entities", "relations", "record")}, doc["text"]) == []
    labels = [(e["label"], e["text"], e["negated"]) for e in doc["entities"]]
    # Lab_value is dropped (unmapped) and does not shadow the overlapping dose
    assert labels == [("PROBLEM", "chest pain", True), ("MEDICATION", "prednisolone", False),
                      ("DOSE", "60 mg", False), ("ROUTE", "orally", False), ("FREQUENCY", "daily", False)]
    rels = {(r["type"], doc["entities"][r["head"]]["text"]) for r in doc["relations"]}
    # the reversed MODIFY (medication -> frequency) is normalized to attribute -> medication
    assert rels == {("DOSE_OF", "60 mg"), ("ROUTE_OF", "orally"), ("FREQUENCY_OF", "daily")}
    assert doc["record"]["medications"] == [{"name": "prednisolone", "dose": "60 mg", "route": "orally",
                                             "frequency": "daily", "form": None, "duration": None}]
    assert doc["record"]["problems"] == [{"name": "chest pain", "negated": True}]


def test_brat_missing_ann_is_a_data_error(tmp_path):
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(DataError, match="x.ann"):
        ds.read_brat(tmp_path)


def test_flatten_resolves_overlaps_and_reindexes_relations():
    ents = [{"start": 0, "end": 10, "label": "PROBLEM"}, {"start": 5, "end": 8, "label": "TEST"},
            {"start": 12, "end": 15, "label": "MEDICATION"}, {"start": 16, "end": 20, "label": "DOSE"}]
    rels = [{"type": "DOSE_OF", "head": 3, "tail": 2}, {"type": "DOSE_OF", "head": 1, "tail": 2}]
    kept, krels = ds.flatten_entities(ents, rels)
    assert [e["label"] for e in kept] == ["PROBLEM", "MEDICATION", "DOSE"]
    assert krels == [{"type": "DOSE_OF", "head": 2, "tail": 1}]


def test_conll_round_trip(tmp_path):
    docs = toy_documents(5, seed=3)
    path = ds.write_conll(docs, tmp_path / "toy.conll")
    back = ds.read_conll(path)
    assert len(back) == 5
    for orig, new in zip(docs, back):
        # CoNLL text is the words joined by single spaces: "chest x-ray" comes back "chest x - ray"
        expected = [(e["label"], " ".join(w for w, _, _ in words_with_offsets(e["text"])))
                    for e in orig["entities"]]
        assert [(e["label"], e["text"]) for e in new["entities"]] == expected
        assert annotation_errors({k: new[k] for k in ("id", "entities", "relations", "record")}, new["text"]) == []


def test_conll_unknown_label(tmp_path):
    p = tmp_path / "bad.conll"
    p.write_text("aspirin\tB-DRUG\n")
    with pytest.raises(DataError, match="DRUG"):
        ds.read_conll(p)


def test_jsonl_round_trip_and_plain_text(tmp_path):
    docs = toy_documents(4)
    ds.write_jsonl(docs, tmp_path / "a.jsonl")
    assert ds.read_documents(tmp_path / "a.jsonl") == docs
    (tmp_path / "plain.jsonl").write_text(json.dumps({"id": "x", "text": "no labels here"}) + "\n")
    (doc,) = ds.read_documents(tmp_path / "plain.jsonl")
    assert doc["entities"] == [] and doc["record"]["medications"] == []
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="bad.jsonl:1"):
        ds.read_jsonl(tmp_path / "bad.jsonl")


def test_splits_are_deterministic_and_disjoint_by_key():
    docs = toy_documents(200)
    a = ds.split_documents(docs, key="subject_id")
    b = ds.split_documents(list(reversed(docs)), key="subject_id")
    assert {k: sorted(d["id"] for d in v) for k, v in a.items()} == \
        {k: sorted(d["id"] for d in v) for k, v in b.items()}
    subjects = {k: {d["subject_id"] for d in v} for k, v in a.items()}
    assert not subjects["train"] & subjects["test"] and not subjects["train"] & subjects["val"]
    assert len(a["train"]) > len(a["test"]) > 0


def test_mtsamples_loader(tmp_path):
    p = tmp_path / "mtsamples.csv"
    p.write_text('note_id,description,medical_specialty,sample_name,transcription,keywords\n'
                 '1,d, Surgery,s,"Pre-op, with a comma",k\n2,d,Surgery,s,text two,k\n'
                 '3,d,Urology,s,text three,k\n4,d,Urology,s,,k\n')
    docs = ds.read_mtsamples(p, min_per_class=2)
    assert [(d["id"], d["category"]) for d in docs] == [("1", "Surgery"), ("2", "Surgery")]


def test_maccrobat_real(shared_data):
    folder = shared_data / "maccrobat2020"
    if not folder.is_dir():
        pytest.skip("maccrobat2020 not present")
    docs = ds.read_brat(folder)
    assert len(docs) > 100
    for d in docs[:30]:
        assert annotation_errors({k: d[k] for k in ("id", "entities", "relations", "record")}, d["text"]) == []
    labels = {e["label"] for d in docs for e in d["entities"]}
    assert {"MEDICATION", "DOSE", "PROBLEM", "TEST", "PROCEDURE"} <= labels
    assert sum(len(d["relations"]) for d in docs) > 100


def _write_mimic(tmp_path, docs):
    src = tmp_path / "mimic"
    (src / "annotations").mkdir(parents=True)
    import csv
    import io

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                "DESCRIPTION", "CGID", "ISERROR", "TEXT"])
    for d in docs:
        w.writerow([d["id"], d["subject_id"], 100 + d["id"], "2150-01-01", "", "", d["category"], "Report",
                    "", "", d["text"]])
    w.writerow([9999, 1, 1, "2150-01-01", "", "", "Nursing", "Report", "", "1", "error note"])
    with gzip.open(src / "NOTEEVENTS.csv.gz", "wt", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    with open(src / "annotations" / "notes_gold.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps({"row_id": d["id"], "id": d["id"], "entities": d["entities"],
                                "relations": d["relations"], "record": d["record"]}) + "\n")
    return src


def test_build_notes_end_to_end(tmp_path):
    from processing import build_notes

    docs = toy_documents(60, seed=1)
    src = _write_mimic(tmp_path, docs)
    assert build_notes.main(["--input", str(src), "--output", str(tmp_path / "out")]) == 0
    out = tmp_path / "out" / "notes"
    splits = {s: ds.read_jsonl(out / f"{s}.jsonl") for s in ds.SPLITS}
    assert sum(len(v) for v in splits.values()) == 60
    subj = {s: {d["subject_id"] for d in v} for s, v in splits.items()}
    assert not subj["train"] & subj["test"]
    row = splits["train"][0]
    assert set(row) >= {"id", "text", "category", "entities", "relations", "record", "subject_id"}
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["notes"] == 60 and manifest["rejected_gold"] == 0


def test_build_notes_rejects_mismatched_gold(tmp_path):
    from processing import build_notes

    docs = toy_documents(10, seed=2)
    for d in docs:
        d["entities"][0]["end"] += 3  # offsets no longer match the text
    src = _write_mimic(tmp_path, docs)
    with pytest.raises(DataError, match="do not match"):
        build_notes.main(["--input", str(src), "--output", str(tmp_path / "out")])
