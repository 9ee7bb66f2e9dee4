"""Corpus loaders on small fixtures written here: PubTator (BC5CDR, NCBI-disease), brat in the
MACCROBAT (flat) and n2c2 2018 Track 2 (train/ and test/ folders) layouts, JSONL corpus folders;
their splits, per-document ``annotated_labels`` and errors on malformed input."""
from __future__ import annotations

import json

import pytest

from clinical_ml.io import DataError
from clinical_ml.notes import corpora
from clinical_ml.notes import datasets as ds
from clinical_ml.notes.schema import ENTITY_LABELS, annotated_labels, annotation_errors
from clinical_ml.notes.toy import toy_documents


def _check_offsets(docs):
    """Every span slices its own text out of the document, and the document is schema-valid."""
    assert docs
    for d in docs:
        for e in d["entities"]:
            assert d["text"][e["start"]:e["end"]] == e["text"], (d["id"], e)
        core = {k: d[k] for k in ("id", "entities", "relations", "record")}
        assert annotation_errors(core, d["text"]) == [], d["id"]


def _span(text, surface, nth=0):
    start = -1
    for _ in range(nth + 1):
        start = text.index(surface, start + 1)
    return start, start + len(surface)


# ---------------------------------------------------------------- PubTator
BC5_TITLE = "Naloxone reverses the antihypertensive effect of clonidine."
BC5_ABSTRACT = ("In spontaneously hypertensive rats clonidine lowered blood pressure; ovarian and "
                "breast cancer patients were not studied.")


def _bc5cdr(pmid="227508", title=BC5_TITLE, abstract=BC5_ABSTRACT):
    text = title + " " + abstract
    rows = [f"{pmid}|t|{title}", f"{pmid}|a|{abstract}"]
    for surface, kind, ident, nth in [("Naloxone", "Chemical", "D009270", 0),
                                      ("clonidine", "Chemical", "D003000", 0),
                                      ("hypertensive", "Disease", "D006973", 1),
                                      ("clonidine", "Chemical", "D003000", 1)]:
        s, e = _span(text, surface, nth)
        rows.append(f"{pmid}\t{s}\t{e}\t{surface}\t{kind}\t{ident}")
    # composite mention: 7th column lists the individual mentions
    s, e = _span(text, "ovarian and breast cancer")
    rows.append(f"{pmid}\t{s}\t{e}\tovarian and breast cancer\tDisease\tD010051|D001943\t"
                "ovarian cancer|breast cancer")
    rows.append(f"{pmid}\tCID\tD003000\tD006973")  # a chemical-induced-disease relation, not a span
    return "\n".join(rows) + "\n\n", text


def test_pubtator_offsets_over_title_and_abstract_relation_and_composite_lines():
    body, text = _bc5cdr()
    (doc,) = corpora.parse_pubtator(body.splitlines(True), "bc5.pubtator")
    assert doc["id"] == "227508" and doc["text"] == text
    _check_offsets([doc])
    got = [(e["label"], e["text"]) for e in doc["entities"]]
    assert got == [("MEDICATION", "Naloxone"), ("MEDICATION", "clonidine"), ("PROBLEM", "hypertensive"),
                   ("MEDICATION", "clonidine"), ("PROBLEM", "ovarian and breast cancer")]
    # the abstract's mentions are offset by the title and the joining space
    assert doc["entities"][2]["start"] > len(BC5_TITLE)
    assert doc["relations"] == [] and doc["annotated_labels"] == ["MEDICATION", "PROBLEM"]
    assert annotated_labels(doc) == ("MEDICATION", "PROBLEM")
    assert {m["name"] for m in doc["record"]["medications"]} == {"naloxone", "clonidine"}


def test_read_pubtator_ncbi_disease_types_are_problems_only(tmp_path):
    title, abstract = "A common MSH2 mutation in hereditary nonpolyposis colorectal cancer.", \
        "Germline mutations cause HNPCC and other cancers of the colon and rectum."
    text = title + " " + abstract
    rows = [f"9|t|{title}", f"9|a|{abstract}"]
    for surface, kind in [("hereditary nonpolyposis colorectal cancer", "SpecificDisease"), ("HNPCC", "Modifier"),
                          ("cancers", "DiseaseClass"), ("cancers of the colon and rectum", "CompositeMention")]:
        s, e = _span(text, surface)
        rows.append(f"9\t{s}\t{e}\t{surface}\t{kind}\tD003123")
    p = tmp_path / "ncbi.txt"
    p.write_text("\n".join(rows) + "\n", encoding="utf-8")
    (doc,) = corpora.read_pubtator(p)
    _check_offsets([doc])
    # "cancers" is inside the composite mention: the earliest, longest span wins
    assert [(e["label"], e["text"]) for e in doc["entities"]] == [
        ("PROBLEM", "hereditary nonpolyposis colorectal cancer"), ("PROBLEM", "HNPCC"),
        ("PROBLEM", "cancers of the colon and rectum")]
    assert doc["annotated_labels"] == ["PROBLEM"] and annotated_labels(doc) == ("PROBLEM",)


def test_read_corpus_pubtator_folder_train_dev_test(tmp_path):
    folder = tmp_path / "bc5cdr"
    folder.mkdir()
    for name, pmid in (("train", "1"), ("dev", "2"), ("test", "3")):
        (folder / f"{name}.pubtator").write_text(_bc5cdr(pmid)[0], encoding="utf-8")
    splits = corpora.read_corpus(folder)
    assert {s: [d["id"] for d in v] for s, v in splits.items()} == \
        {"train": ["bc5cdr/1"], "val": ["bc5cdr/2"], "test": ["bc5cdr/3"]}
    for docs in splits.values():
        _check_offsets(docs)
        assert all(d["corpus"] == "bc5cdr" and d["annotated_labels"] == ["MEDICATION", "PROBLEM"] for d in docs)


@pytest.mark.parametrize("lines,where,what", [
    (["5|t|Title.", "5|a|Abstract.", "5\t0\t5"], "x.pubtator:3", "malformed PubTator line"),
    (["5\t0\t5\tTitle\tChemical\tD1"], "x.pubtator:1", "outside its document"),
    (["5|t|Title.", "5|a|Abstract.", "5\t0\t99\tTitle\tChemical\tD1"], "x.pubtator:3", "outside the document"),
])
def test_pubtator_malformed_names_file_and_line(tmp_path, lines, where, what):
    p = tmp_path / "x.pubtator"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=f"{where}.*{what}"):
        corpora.read_pubtator(p)


def test_read_corpus_refuses_a_file_without_a_split_name(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "abstracts.pubtator").write_text(_bc5cdr()[0], encoding="utf-8")
    with pytest.raises(DataError, match="abstracts.pubtator.*train"):
        corpora.read_corpus(folder)


# ---------------------------------------------------------------- brat, MACCROBAT layout
MAC_TXT = "A 60-year-old man had fever for 3 days. He was given prednisolone 60 mg orally daily.\n"


def _maccrobat_ann(text=MAC_TXT):
    items = [("T1", "Sign_symptom", "fever"), ("T2", "Duration", "for 3 days"), ("T3", "Medication", "prednisolone"),
             ("T4", "Dosage", "60 mg"), ("T5", "Administration", "orally"), ("T6", "Frequency", "daily"),
             ("T7", "Age", "60-year-old")]
    lines = [f"{tid}\t{kind} {' '.join(map(str, _span(text, s)))}\t{s}" for tid, kind, s in items]
    lines += ["E1\tSign_symptom:T1 ", "E2\tMedication:T3 ", "R1\tMODIFY Arg1:T2 Arg2:E1\t",
              "R2\tMODIFY Arg1:T4 Arg2:E2\t", "R3\tMODIFY Arg1:T5 Arg2:E2\t", "R4\tMODIFY Arg1:E2 Arg2:T6\t"]
    return "\n".join(lines) + "\n"


def test_read_corpus_maccrobat_flat_folder(tmp_path):
    folder = tmp_path / "maccrobat2020"
    folder.mkdir()
    for i in range(6):
        (folder / f"{1000 + i}.txt").write_text(MAC_TXT, encoding="utf-8")
        (folder / f"{1000 + i}.ann").write_text(_maccrobat_ann(), encoding="utf-8")
    splits = corpora.read_corpus(folder)
    docs = [d for s in ds.SPLITS for d in splits[s]]
    assert sorted(d["id"] for d in docs) == [f"maccrobat2020/{1000 + i}" for i in range(6)]
    # split by a salted hash of the file name, as split_of says
    for s in ds.SPLITS:
        assert all(ds.split_of(d["id"].split("/")[1]) == s for d in splits[s])
    _check_offsets(docs)
    d = docs[0]
    # MACCROBAT's Duration is a symptom's ("fever for 3 days"), not a drug's: dropped
    assert [(e["label"], e["text"]) for e in d["entities"]] == [
        ("PROBLEM", "fever"), ("MEDICATION", "prednisolone"), ("DOSE", "60 mg"), ("ROUTE", "orally"),
        ("FREQUENCY", "daily")]
    assert d["record"]["medications"] == [{"name": "prednisolone", "dose": "60 mg", "route": "orally",
                                           "frequency": "daily", "form": None, "duration": None}]
    assert d["annotated_labels"] == ["MEDICATION", "DOSE", "ROUTE", "FREQUENCY", "PROBLEM"]


# ---------------------------------------------------------------- brat, n2c2 2018 Track 2 layout
N2C2_TXT = ("Discharge Medications:\n"
            "1. Aspirin 81 mg Tablet, Chewable Sig: One (1) Tablet, Chewable PO DAILY (Daily).\n"
            "2. Cephalexin 500 mg Capsule Sig: One (1) Capsule PO Q6H (every 6 hours) for 7 days: "
            "for cellulitis.\nHe developed a rash on vancomycin.\n")


def _n2c2_ann(text=N2C2_TXT):
    items = [("T1", "Drug", "Aspirin", 0), ("T2", "Strength", "81 mg", 0), ("T3", "Form", "Tablet, Chewable", 0),
             ("T4", "Dose", "One (1)", 0), ("T5", "Form", "Tablet, Chewable", 1), ("T6", "Route", "PO", 0),
             ("T7", "Frequency", "DAILY", 0), ("T8", "Drug", "Cephalexin", 0), ("T9", "Strength", "500 mg", 0),
             ("T10", "Form", "Capsule", 0), ("T11", "Dose", "One (1)", 1), ("T12", "Route", "PO", 1),
             ("T13", "Frequency", "Q6H", 0), ("T14", "Duration", "for 7 days", 0), ("T15", "Reason", "cellulitis", 0),
             ("T16", "ADE", "rash", 0), ("T17", "Drug", "vancomycin", 0)]
    lines = [f"{tid}\t{kind} {' '.join(map(str, _span(text, s, nth)))}\t{s}" for tid, kind, s, nth in items]
    rels = [("Strength", "T2", "T1"), ("Form", "T3", "T1"), ("Dose", "T4", "T1"), ("Form", "T5", "T1"),
            ("Route", "T6", "T1"), ("Frequency", "T7", "T1"), ("Strength", "T9", "T8"), ("Form", "T10", "T8"),
            ("Dose", "T11", "T8"), ("Route", "T12", "T8"), ("Frequency", "T13", "T8"), ("Duration", "T14", "T8"),
            ("Reason", "T15", "T8"), ("ADE", "T16", "T17")]
    lines += [f"R{i}\t{kind}-Drug Arg1:{a} Arg2:{b}" for i, (kind, a, b) in enumerate(rels, 1)]
    lines.append("#1\tAnnotatorNotes T16\tpruritic")  # brat notes lines are ignored
    return "\n".join(lines) + "\n"


@pytest.fixture()
def n2c2_dir(tmp_path):
    root = tmp_path / "n2c2_2018_track2"
    for sub, n in (("training_20180910", 30), ("test", 3)):
        (root / sub).mkdir(parents=True)
        for i in range(n):
            (root / sub / f"{sub[:2]}{100 + i}.txt").write_text(N2C2_TXT, encoding="utf-8")
            (root / sub / f"{sub[:2]}{100 + i}.ann").write_text(_n2c2_ann(), encoding="utf-8")
    return root


def test_n2c2_document_maps_types_and_x_drug_relations(n2c2_dir):
    doc = ds.brat_document(n2c2_dir / "test" / "te100.txt")
    _check_offsets([doc])
    ents = doc["entities"]
    # Reason and ADE are dropped (only drug-related problems are marked: not PROBLEM-complete)
    assert [(e["label"], e["text"]) for e in ents][:7] == [
        ("MEDICATION", "Aspirin"), ("DOSE", "81 mg"), ("FORM", "Tablet, Chewable"), ("DOSE", "One (1)"),
        ("FORM", "Tablet, Chewable"), ("ROUTE", "PO"), ("FREQUENCY", "DAILY")]
    assert "PROBLEM" not in {e["label"] for e in ents}
    assert ents[-1]["label"] == "MEDICATION" and ents[-1]["text"] == "vancomycin"
    rels = sorted((r["type"], ents[r["head"]]["text"], ents[r["tail"]]["text"]) for r in doc["relations"])
    assert rels == sorted([
        ("DOSE_OF", "81 mg", "Aspirin"), ("FORM_OF", "Tablet, Chewable", "Aspirin"), ("DOSE_OF", "One (1)", "Aspirin"),
        ("FORM_OF", "Tablet, Chewable", "Aspirin"), ("ROUTE_OF", "PO", "Aspirin"), ("FREQUENCY_OF", "DAILY", "Aspirin"),
        ("DOSE_OF", "500 mg", "Cephalexin"), ("FORM_OF", "Capsule", "Cephalexin"), ("DOSE_OF", "One (1)", "Cephalexin"),
        ("ROUTE_OF", "PO", "Cephalexin"), ("FREQUENCY_OF", "Q6H", "Cephalexin"),
        ("DURATION_OF", "for 7 days", "Cephalexin")])
    # Strength and Dose are both DOSE: the record keeps the first in text order
    assert doc["record"]["medications"] == [
        {"name": "aspirin", "dose": "81 mg", "route": "po", "frequency": "daily", "form": "tablet, chewable",
         "duration": None},
        {"name": "cephalexin", "dose": "500 mg", "route": "po", "frequency": "q6h", "form": "capsule",
         "duration": "for 7 days"},
        {"name": "vancomycin", "dose": None, "route": None, "frequency": None, "form": None, "duration": None}]
    assert doc["record"]["problems"] == []


def test_read_corpus_n2c2_split_folders_carve_val_from_train(n2c2_dir):
    splits = corpora.read_corpus(n2c2_dir)
    name = n2c2_dir.name
    assert sorted(d["id"] for d in splits["test"]) == [f"{name}/te{100 + i}" for i in range(3)]
    train_ids = {d["id"] for d in splits["train"]}
    val_ids = {d["id"] for d in splits["val"]}
    assert val_ids and not train_ids & val_ids
    assert train_ids | val_ids == {f"{name}/tr{100 + i}" for i in range(30)}
    for docs in splits.values():
        _check_offsets(docs)
        for d in docs:
            assert d["corpus"] == name and len(d["relations"]) == 12
            assert d["annotated_labels"] == ["MEDICATION", "DOSE", "ROUTE", "FREQUENCY", "FORM", "DURATION"]
            assert "PROBLEM" not in annotated_labels(d)


def test_brat_malformed_line_names_file_and_line(tmp_path):
    (tmp_path / "d.txt").write_text("Aspirin 81 mg\n", encoding="utf-8")
    (tmp_path / "d.ann").write_text("T1\tDrug 0 7\tAspirin\nT2\tStrength eight 13\t81 mg\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d\.ann:2: malformed brat line"):
        ds.read_brat(tmp_path)


# ---------------------------------------------------------------- JSONL corpus folder
def test_read_corpus_jsonl_folder(tmp_path):
    folder = tmp_path / "local_notes"
    folder.mkdir()
    docs = toy_documents(6, seed=4)
    for i, split in enumerate(("train", "val", "test")):
        rows = docs[2 * i:2 * i + 2]
        if split == "test":
            rows = [{**rows[0], "annotated_labels": ["PROBLEM", "MEDICATION"]}, rows[1]]
        ds.write_jsonl(rows, folder / f"{split}.jsonl")
    splits = corpora.read_corpus(folder)
    assert {s: [d["id"] for d in v] for s, v in splits.items()} == \
        {s: [f"local_notes/{d['id']}" for d in docs[2 * i:2 * i + 2]] for i, s in enumerate(ds.SPLITS)}
    for v in splits.values():
        _check_offsets(v)
    # rows without annotated_labels annotate every label; a row that names some keeps them
    assert annotated_labels(splits["train"][0]) == ENTITY_LABELS
    assert annotated_labels(splits["test"][0]) == ("MEDICATION", "PROBLEM")


def test_read_corpus_jsonl_malformed_names_file_and_line(tmp_path):
    folder = tmp_path / "c"
    folder.mkdir()
    (folder / "train.jsonl").write_text(json.dumps({"id": 1, "text": "x"}) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"train\.jsonl:2: not valid JSON"):
        corpora.read_corpus(folder)


def test_read_corpora_reads_each_corpus_and_skips_other_folders(tmp_path, n2c2_dir):
    (tmp_path / "bc5cdr").mkdir()
    (tmp_path / "bc5cdr" / "train.pubtator").write_text(_bc5cdr()[0], encoding="utf-8")
    (tmp_path / "mimic-iii").mkdir()
    (tmp_path / "mimic-iii" / "NOTEEVENTS.csv").write_text("ROW_ID\n", encoding="utf-8")
    out = corpora.read_corpora(tmp_path)
    assert sorted(out) == ["bc5cdr", n2c2_dir.name]
    with pytest.raises(DataError, match="not found"):
        corpora.read_corpora(tmp_path / "missing")


# ---------------------------------------------------------------- schema.annotated_labels
def test_annotated_labels_rejects_unknown_and_honours_spans_annotated():
    assert annotated_labels({"id": 1}) == ENTITY_LABELS
    assert annotated_labels({"id": 1, "annotated_labels": ["PROBLEM", "FORM"]}) == ("FORM", "PROBLEM")
    assert annotated_labels({"id": 1, "spans_annotated": False}) == ()
    assert annotated_labels({"id": 1, "spans_annotated": False, "annotated_labels": ["PROBLEM"]}) == ()
    with pytest.raises(ValueError, match=r"'doc-7'.*annotated_labels.*\['DRUG'\]"):
        annotated_labels({"id": "doc-7", "annotated_labels": ["MEDICATION", "DRUG"]})
