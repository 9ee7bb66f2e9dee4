"""Real annotated corpora in the pipeline: build-notes merges them into the splits, evaluation
scores each corpus on the labels it annotates, and the gate reads the real-text figure."""
from __future__ import annotations

import csv
import gzip
import io
import json

import pytest

from clinical_ml.cli import main as cli
from clinical_ml.extraction.corpus_eval import (REAL_METRIC, SYNTHETIC_METRIC, build_gate, by_corpus,
                                                gate_metrics, restrict, score)
from clinical_ml.extraction.metrics import evaluate
from clinical_ml.io import DataError
from clinical_ml.notes import datasets as ds
from clinical_ml.notes.schema import ENTITY_LABELS, annotation_errors, record_from_annotations
from clinical_ml.synth.notes import GOLD_LABELS
from clinical_ml.notes.toy import toy_documents

PUBTATOR = {  # split file -> [(pmid, title, abstract, [(mention, type)])]
    "train.pubtator": [
        ("101", "Aspirin induced asthma.", "Asthma followed aspirin 81 mg daily in two patients.",
         [("Aspirin", "Chemical"), ("asthma", "Disease"), ("Asthma", "Disease"), ("aspirin", "Chemical")]),
        ("102", "Lithium and tremor.", "Tremor was seen with lithium.",
         [("Lithium", "Chemical"), ("tremor", "Disease"), ("lithium", "Chemical")])],
    "dev.pubtator": [
        ("103", "Heparin and bleeding.", "Bleeding after heparin.",
         [("Heparin", "Chemical"), ("bleeding", "Disease")])],
    "test.pubtator": [
        ("104", "Warfarin and hemorrhage.", "A hemorrhage on warfarin 5 mg; chest x-ray normal.",
         [("Warfarin", "Chemical"), ("hemorrhage", "Disease"), ("warfarin", "Chemical")]),
        ("105", "Aspirin and asthma again.", "No asthma on lithium.",
         [("Aspirin", "Chemical"), ("asthma", "Disease"), ("lithium", "Chemical")])],
}
BRAT = {  # split folder -> {name: (text, [(surface, brat type)])}
    "train": {"r1": ("Started prednisolone 60 mg orally for fever.", [("prednisolone", "Medication"),
                                                                     ("60 mg", "Dosage"), ("fever", "Sign_symptom")]),
              "r2": ("CT scan showed a mass; aspirin given.", [("CT scan", "Diagnostic_procedure"),
                                                              ("mass", "Sign_symptom"), ("aspirin", "Medication")])},
    "test": {"r3": ("Fever resolved on prednisolone.", [("Fever", "Sign_symptom"), ("prednisolone", "Medication")])},
}


def _pubtator_lines(pmid: str, title: str, abstract: str, mentions: list[tuple[str, str]]) -> str:
    text, out, pos = title + " " + abstract, [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"], {}
    for surface, kind in mentions:
        start = text.index(surface, pos.get(surface, 0))
        pos[surface] = start + 1
        out.append(f"{pmid}\t{start}\t{start + len(surface)}\t{surface}\t{kind}\tMESH:D0")
    return "\n".join(out) + "\n\n"


def write_corpora(root):
    """root/tinychem (PubTator train/dev/test) and root/tinybrat (brat train/ and test/ folders)."""
    chem = root / "tinychem"
    chem.mkdir(parents=True)
    for name, docs in PUBTATOR.items():
        (chem / name).write_text("".join(_pubtator_lines(*d) for d in docs), encoding="utf-8")
    for split, docs in BRAT.items():
        folder = root / "tinybrat" / split
        folder.mkdir(parents=True)
        for name, (text, spans) in docs.items():
            (folder / f"{name}.txt").write_text(text, encoding="utf-8")
            ann = [f"T{i}\t{kind} {text.index(s)} {text.index(s) + len(s)}\t{s}"
                   for i, (s, kind) in enumerate(spans, 1)]
            (folder / f"{name}.ann").write_text("\n".join(ann) + "\n", encoding="utf-8")
    (root / "not-a-corpus").mkdir()  # skipped by read_corpora, named in the log
    return root


def write_mimic(root, docs):
    src = root / "mimic"
    (src / "annotations").mkdir(parents=True)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["ROW_ID", "SUBJECT_ID", "HADM_ID", "CHARTDATE", "CATEGORY", "DESCRIPTION", "ISERROR", "TEXT"])
    for d in docs:
        w.writerow([d["id"], d["subject_id"], 100 + d["id"], "2150-01-01", d["category"], "Report", "", d["text"]])
    with gzip.open(src / "NOTEEVENTS.csv.gz", "wt", encoding="utf-8", newline="") as f:
        f.write(buf.getvalue())
    with open(src / "annotations" / "notes_gold.jsonl", "w") as f:
        for d in docs:
            f.write(json.dumps({"row_id": d["id"], "entities": d["entities"], "relations": d["relations"],
                                "record": d["record"]}) + "\n")
    return src


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """build-notes on 30 synthetic notes + the two tiny corpora."""
    from processing import build_notes

    root = tmp_path_factory.mktemp("corpora-build")
    src = write_mimic(root, toy_documents(30, seed=4))
    corpora = write_corpora(root / "corpora")
    assert build_notes.main(["--input", str(src), "--output", str(root / "out"), "--corpora", str(corpora)]) == 0
    return root / "out" / "notes"


def test_build_notes_merges_corpus_splits_and_keeps_annotated_labels(built):
    splits = {s: ds.read_jsonl(built / f"{s}.jsonl") for s in ds.SPLITS}
    by = {s: by_corpus(docs) for s, docs in splits.items()}
    # each corpus keeps its own splits: PubTator train/dev/test -> train/val/test
    assert [len(by[s]["tinychem"]) for s in ds.SPLITS] == [2, 1, 2]
    assert len(by["train"].get("tinybrat", [])) + len(by["val"].get("tinybrat", [])) == 2  # val carved from train
    assert [d["id"] for d in by["test"]["tinybrat"]] == ["tinybrat/r3"]
    assert sum(len(by[s]["synthetic"]) for s in ds.SPLITS) == 30
    from clinical_ml.notes.corpora import read_corpora

    loaded = {d["id"]: d["annotated_labels"] for c in read_corpora(built.parents[1] / "corpora").values()
              for docs in c.values() for d in docs}
    for s, docs in splits.items():
        for d in docs:
            assert annotation_errors(d, d["text"]) == [], d["id"]
            if d["corpus"] == "synthetic":
                assert d["annotated_labels"] == list(GOLD_LABELS)  # the generator's labels, no FORM/DURATION
            else:  # the loader's labels, kept as they are
                assert d["id"].startswith(d["corpus"] + "/") and d["annotated_labels"] == loaded[d["id"]]
    assert {d["annotated_labels"] == ["MEDICATION", "PROBLEM"] for d in by["test"]["tinychem"]} == {True}
    manifest = json.loads((built / "manifest.json").read_text())
    assert manifest["corpora"]["tinychem"] == {"train": 2, "val": 1, "test": 2, "rejected": 0,
                                               "annotated_labels": ["MEDICATION", "PROBLEM"]}
    # a corpus's labels in the manifest: every label any of its documents annotates
    assert manifest["corpora"]["tinybrat"]["annotated_labels"] == ["MEDICATION", "DOSE", "PROBLEM", "TEST"]
    assert sum(manifest["corpora"]["synthetic"][s] for s in ds.SPLITS) == 30 == manifest["notes"]
    assert manifest["documents"] == {s: len(v) for s, v in splits.items()}


def test_build_notes_logs_counts_never_text(tmp_path, caplog):
    from processing import build_notes

    src = write_mimic(tmp_path, toy_documents(10, seed=5))
    corpora = write_corpora(tmp_path / "corpora")
    with caplog.at_level("INFO"):
        assert build_notes.main(["--input", str(src), "--output", str(tmp_path / "out"),
                                 "--corpora", str(corpora)]) == 0
    logged = caplog.text
    assert "corpus tinychem: train 2, val 1, test 2" in logged
    for docs in PUBTATOR.values():
        for _, title, abstract, _ in docs:
            assert title not in logged and abstract not in logged


def test_build_notes_without_corpora_is_synthetic_only(tmp_path):
    from processing import build_notes

    src = write_mimic(tmp_path, toy_documents(10, seed=6))
    assert build_notes.main(["--input", str(src), "--output", str(tmp_path / "out"), "--corpora", ""]) == 0
    docs = [d for s in ds.SPLITS for d in ds.read_jsonl(tmp_path / "out" / "notes" / f"{s}.jsonl")]
    assert len(docs) == 10 and {d["corpus"] for d in docs} == {"synthetic"}
    manifest = json.loads((tmp_path / "out" / "notes" / "manifest.json").read_text())
    assert list(manifest["corpora"]) == ["synthetic"] and manifest["corpora_source"] is None


def test_build_notes_bad_corpora_folder_is_a_data_error(tmp_path):
    from processing import build_notes

    src = write_mimic(tmp_path, toy_documents(5, seed=7))
    with pytest.raises(DataError, match="nowhere.*folder not found"):
        build_notes.main(["--input", str(src), "--output", str(tmp_path / "out"),
                          "--corpora", str(tmp_path / "nowhere")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no annotated corpus"):
        build_notes.main(["--input", str(src), "--output", str(tmp_path / "out"), "--corpora", str(tmp_path / "empty")])


def test_corpora_s3_uri_maps_to_the_local_stand_in(tmp_path, monkeypatch):
    from clinical_ml.notes.merge import fetch_corpora

    write_corpora(tmp_path / "s3" / "bucket" / "corpora")
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_S3_ROOT", str(tmp_path / "s3"))
    assert fetch_corpora("s3://bucket/corpora") == tmp_path / "s3" / "bucket" / "corpora"


# ---------------------------------------------------------------- scoring on annotated labels
def _chem_doc():
    text = "Aspirin 81 mg for asthma; chest x-ray normal."
    ents = [{"start": 0, "end": 7, "label": "MEDICATION", "text": "Aspirin", "negated": False},
            {"start": 18, "end": 24, "label": "PROBLEM", "text": "asthma", "negated": False}]
    return {"id": "c/1", "text": text, "entities": ents, "relations": [], "record": record_from_annotations(ents, []),
            "corpus": "chem", "annotated_labels": ["MEDICATION", "PROBLEM"]}


def _prediction_with_unannotated_labels(doc):
    ents = [doc["entities"][0], {"start": 8, "end": 13, "label": "DOSE", "text": "81 mg", "negated": False},
            doc["entities"][1], {"start": 26, "end": 37, "label": "TEST", "text": "chest x-ray", "negated": False}]
    rels = [{"type": "DOSE_OF", "head": 1, "tail": 0}]
    return {"entities": ents, "relations": rels, "record": record_from_annotations(ents, rels)}


def test_score_drops_predictions_of_labels_the_corpus_does_not_annotate():
    doc = _chem_doc()
    pred = _prediction_with_unannotated_labels(doc)
    unfair = evaluate([doc], [pred])
    assert unfair["entity_f1"] < 1.0 and unfair["record_f1"] < 1.0  # charged for DOSE/TEST nobody annotated
    m = score([doc], [pred])
    assert m["entity_f1"] == m["entity_f1_lenient"] == m["record_f1"] == 1.0
    assert m["labels"] == ["MEDICATION", "PROBLEM"]
    assert set(m["entities"]["strict"]["per_label"]) == {"MEDICATION", "PROBLEM"}
    # a document without annotated_labels (synthetic) is scored on every label
    synthetic = {k: v for k, v in doc.items() if k not in ("corpus", "annotated_labels")}
    assert score([synthetic], [pred])["labels"] == list(ENTITY_LABELS)
    assert score([synthetic], [pred])["entity_f1"] < 1.0


def test_restrict_reindexes_relations_and_record():
    pred = _prediction_with_unannotated_labels(_chem_doc())
    kept = restrict(pred, ["MEDICATION", "DOSE"])
    assert [e["label"] for e in kept["entities"]] == ["MEDICATION", "DOSE"]
    assert kept["relations"] == [{"type": "DOSE_OF", "head": 1, "tail": 0}]
    (med,) = kept["record"]["medications"]
    assert med["name"] == "aspirin" and med["dose"] == "81 mg"
    assert all(v is None for k, v in med.items() if k not in ("name", "dose"))
    assert kept["record"]["problems"] == [] and kept["record"]["tests"] == []
    no_dose = restrict(pred, ["MEDICATION", "PROBLEM"])
    assert no_dose["relations"] == [] and no_dose["record"]["medications"][0]["dose"] is None


def test_restricted_record_merges_medications_that_differ_only_in_unannotated_fields():
    """A drug found twice, once with a dose, is one medication to a corpus without DOSE."""
    from clinical_ml.extraction.corpus_eval import restrict_record
    from clinical_ml.notes.schema import empty_record

    record = empty_record()
    base = {"name": "cisplatin", "dose": None, "route": None, "frequency": None, "form": None, "duration": None}
    record["medications"] = [{**base, "dose": "10 mg"}, dict(base), {**base, "name": "aspirin"}]
    meds = restrict_record(record, ["MEDICATION", "PROBLEM"])["medications"]
    assert [m["name"] for m in meds] == ["cisplatin", "aspirin"]
    assert [m["dose"] for m in restrict_record(record, ["MEDICATION", "DOSE"])["medications"]] == ["10 mg", None, None]


# ---------------------------------------------------------------- the gate
def _metrics(strict: float, lenient: float, relation_gold: int = 0, labels=ENTITY_LABELS) -> dict:
    return {"n_docs": 10, "entity_f1": strict, "entity_f1_lenient": lenient, "relation_f1": 0.5,
            "record_f1": strict, "json_validity": 1.0, "relations": {"gold": relation_gold}, "labels": list(labels)}


def test_gate_reads_real_corpora_when_present():
    gate = build_gate({"synthetic": _metrics(0.99, 0.995, 40),
                       "bc5cdr": _metrics(0.5, 0.7, 0, ["MEDICATION", "PROBLEM"]),
                       "maccrobat2020": _metrics(0.4, 0.6, 12)})
    assert gate["source"] == "real" and gate["metric"] == REAL_METRIC
    assert gate["corpora"] == ["bc5cdr", "maccrobat2020"]
    assert gate["entity_f1"] == 0.65  # mean lenient F1 over the real corpora, not the synthetic 0.99
    assert gate["relation_f1"] == 0.5 and gate["relation_corpora"] == ["maccrobat2020"]
    assert gate["record_f1"] == 0.45 and gate["json_validity"] == 1.0
    assert set(gate["per_corpus"]) == {"synthetic", "bc5cdr", "maccrobat2020"}
    assert gate["per_corpus"]["bc5cdr"]["labels"] == ["MEDICATION", "PROBLEM"]
    assert gate_metrics(gate) == {"entity_f1": 0.65, "relation_f1": 0.5, "json_validity": 1.0, "record_f1": 0.45}


def test_gate_reads_synthetic_strict_f1_without_a_real_corpus():
    gate = build_gate({"synthetic": _metrics(0.9, 0.95, 40)})
    assert gate["source"] == "synthetic" and gate["metric"] == SYNTHETIC_METRIC
    assert gate["corpora"] == ["synthetic"] and gate["entity_f1"] == 0.9
    assert gate_metrics(gate) == {"entity_f1": 0.9, "relation_f1": 0.5, "json_validity": 1.0, "record_f1": 0.9}
    # real corpora without relations: relation_f1 is absent, never a made-up number
    only_ner = build_gate({"ncbi-disease": _metrics(0.5, 0.6, 0, ["PROBLEM"])})
    assert "relation_f1" not in only_ner and only_ner["entity_f1"] == 0.6
    with pytest.raises(DataError):
        build_gate({})


# ---------------------------------------------------------------- evaluate-extractor per corpus
def test_evaluate_scores_each_corpus_and_gates_on_real_text(built, tmp_path):
    assert cli(["train-extractor", "--train", str(built / "train.jsonl"), "--model-dir", str(tmp_path / "m"),
                "--kind", "rules"]) == 0
    assert cli(["evaluate-extractor", "--model", str(tmp_path / "m"), "--test", str(built),
                "--train", str(built / "train.jsonl"), "--output", str(tmp_path / "out"), "--max-docs", "1"]) == 0
    report = json.loads((tmp_path / "out" / "evaluation" / "extraction_evaluation.json").read_text())
    assert list(report["models"]) == ["synthetic", "tinybrat", "tinychem"]
    assert all(by["fine_tuned"]["n_docs"] == 1 for by in report["models"].values())  # --max-docs per corpus
    gate = report["gate"]
    assert gate["source"] == "real" and gate["corpora"] == ["tinybrat", "tinychem"]
    lenient = [report["models"][c]["fine_tuned"]["entity_f1_lenient"] for c in gate["corpora"]]
    assert gate["entity_f1"] == round(sum(lenient) / 2, 4)
    # the rules baseline of each corpus is fitted on that corpus's training documents
    assert report["models"]["tinychem"]["rules"]["gazetteer_train_docs"] == 2
    rows = {(r["dataset"], r["extractor"]): r for r in report["table"]}
    assert {k for k in rows[("tinychem", "rules")] if k.startswith("f1_")} == {"f1_medication", "f1_problem"}
    assert len(rows) == 6
    mm = json.loads((tmp_path / "out" / "evaluation" / "model_metrics.json").read_text())
    assert mm["extraction_metrics"]["entity_f1"]["value"] == gate["entity_f1"]
    assert all(isinstance(v["value"], float) for v in mm["extraction_metrics"].values())


def test_evaluate_synthetic_only_gates_on_synthetic_strict_f1(tmp_path):
    notes = tmp_path / "notes"
    ds.write_jsonl(toy_documents(12, seed=1), notes / "train.jsonl")
    ds.write_jsonl(toy_documents(4, seed=3), notes / "test.jsonl")
    assert cli(["train-extractor", "--train", str(notes / "train.jsonl"), "--model-dir", str(tmp_path / "m"),
                "--kind", "rules"]) == 0
    # --rules-train still works (the older name of --train)
    assert cli(["evaluate-extractor", "--model", str(tmp_path / "m"), "--test", str(notes / "test.jsonl"),
                "--rules-train", str(notes / "train.jsonl"), "--output", str(tmp_path / "out")]) == 0
    report = json.loads((tmp_path / "out" / "evaluation" / "extraction_evaluation.json").read_text())
    gate = report["gate"]
    assert gate["source"] == "synthetic" and gate["corpora"] == ["synthetic"]
    assert gate["entity_f1"] == report["models"]["synthetic"]["fine_tuned"]["entity_f1"]
    assert report["models"]["synthetic"]["rules"]["gazetteer_train_docs"] == 12
