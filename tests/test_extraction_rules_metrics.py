"""Rules baseline with NegEx, metrics, JSON repair/grounding, retrieval, schema validation."""
from __future__ import annotations

import json

import pytest

from clinical_ml.extraction import decoding, metrics, negation, retrieval
from clinical_ml.extraction.bio import char_spans_to_word_bio, decode_words, tags_for_offsets, words_with_offsets
from clinical_ml.extraction.rules import RulesExtractor
from clinical_ml.notes.schema import annotation_errors, record_errors
from clinical_ml.notes.toy import toy_documents


@pytest.mark.parametrize("text,span,expected", [
    ("Patient denies chest pain.", "chest pain", True),
    ("No evidence of pneumonia on imaging.", "pneumonia", True),
    ("Chest pain, but no fever.", "Chest pain", False),
    ("Chest pain, but no fever.", "fever", True),
    ("Denies nausea but reports chest pain.", "chest pain", False),
    ("Pulmonary embolism was ruled out.", "Pulmonary embolism", True),
    ("No fever. Has cough.", "cough", False),
])
def test_negex(text, span, expected):
    s = text.index(span)
    assert negation.is_negated(text, s, s + len(span)) is expected


def test_rules_extracts_meds_attributes_and_negation():
    text = "Started metoprolol 25 mg PO BID and aspirin 81 mg daily. Denies chest pain. CXR obtained."
    (ann,) = RulesExtractor().extract([text])
    assert annotation_errors({"id": 1, **ann}, text) == []
    rec = ann["record"]
    none = {"form": None, "duration": None}  # the rules seeds have no FORM/DURATION
    assert {"name": "metoprolol", "dose": "25 mg", "route": "po", "frequency": "bid", **none} in rec["medications"]
    assert {"name": "aspirin", "dose": "81 mg", "route": None, "frequency": "daily", **none} in rec["medications"]
    assert rec["problems"] == [{"name": "chest pain", "negated": True}]
    assert rec["tests"] == [{"name": "cxr", "negated": False}]


def test_rules_fit_adds_gazetteer_and_round_trips():
    docs = toy_documents(30)
    base = RulesExtractor(use_seed=False)
    fitted = RulesExtractor(use_seed=False).fit(docs)
    gold, pb, pf = docs[:10], base.extract([d["text"] for d in docs[:10]]), fitted.extract([d["text"] for d in docs[:10]])
    assert metrics.entity_scores(gold, pf)["strict"]["micro"]["f1"] > metrics.entity_scores(gold, pb)["strict"]["micro"]["f1"]
    again = RulesExtractor.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.extract([docs[0]["text"]]) == fitted.extract([docs[0]["text"]])


def test_bio_round_trip_on_words():
    doc = toy_documents(1, seed=5)[0]
    words = words_with_offsets(doc["text"])
    tags = tags_for_offsets([(s, e) for _, s, e in words], doc["entities"])
    spans = decode_words(doc["text"], [(s, e) for _, s, e in words], tags)
    assert [(e["start"], e["end"], e["label"]) for e in spans] == \
        [(e["start"], e["end"], e["label"]) for e in doc["entities"]]
    assert len(char_spans_to_word_bio(doc["text"], doc["entities"])) == len(words)


def test_metrics_perfect_partial_and_empty():
    docs = toy_documents(5)
    perfect = metrics.evaluate(docs, docs)
    assert perfect["entity_f1"] == perfect["relation_f1"] == perfect["record_f1"] == 1.0
    assert perfect["seqeval"]["f1"] == 1.0 and perfect["negation"]["accuracy"] == 1.0
    shifted = [{**d, "entities": [{**e, "end": e["end"] - 1} for e in d["entities"]]} for d in docs]
    m = metrics.evaluate(docs, shifted)
    assert m["entity_f1"] == 0.0 and m["entity_f1_lenient"] == 1.0 and m["relation_f1"] == 0.0
    empty = [{"entities": [], "relations": [], "record": {}} for _ in docs]
    assert metrics.evaluate(docs, empty)["entity_f1"] == 0.0
    per = metrics.entity_scores(docs, docs)["strict"]["per_label"]
    assert per["MEDICATION"]["f1"] == 1.0


def test_record_fields_count_attributes_and_negation():
    gold = {"medications": [{"name": "aspirin", "dose": "81 mg", "route": None, "frequency": "daily"}],
            "problems": [{"name": "fever", "negated": True}], "tests": [], "procedures": []}
    pred = {"medications": [{"name": "Aspirin", "dose": "81  mg", "route": "po", "frequency": None}],
            "problems": [{"name": "fever", "negated": False}], "tests": [], "procedures": []}
    s = metrics.record_scores([gold], [pred])
    assert (s["tp"], s["pred"], s["gold"]) == (2, 4, 4)


def test_classification_macro_f1():
    s = metrics.classification_scores(["a", "a", "b", "b"], ["a", "a", "b", "a"])
    assert s["accuracy"] == 0.75 and 0.7 < s["macro_f1"] < 0.8


@pytest.mark.parametrize("bad", [
    {"medications": [{"name": "x"}], "problems": [], "tests": [], "procedures": []},  # missing keys
    {"medications": [], "problems": [{"name": "x", "negated": "no"}], "tests": [], "procedures": []},
    {"medications": [], "problems": [], "tests": []},
    {"medications": [], "problems": [], "tests": [], "procedures": [], "extra": 1},
    [], "not json",
])
def test_schema_validator_rejects_bad_records(bad):
    assert record_errors(bad)


def test_annotation_validator_rejects_bad_spans():
    text = "aspirin 81 mg"
    good = {"id": 1, "entities": [{"start": 0, "end": 7, "label": "MEDICATION", "text": "aspirin", "negated": False}],
            "relations": [], "record": {"medications": [], "problems": [], "tests": [], "procedures": []}}
    assert annotation_errors(good, text) == []
    assert annotation_errors({**good, "entities": [{**good["entities"][0], "end": 6}]}, text)
    assert annotation_errors({**good, "relations": [{"type": "DOSE_OF", "head": 0, "tail": 3}]}, text)
    assert annotation_errors({**good, "entities": [{**good["entities"][0], "label": "DRUG"}]}, text)


@pytest.mark.parametrize("raw,valid,n_meds", [
    ('{"medications":[{"name":"aspirin","dose":"81 mg","route":null,"frequency":null}],'
     '"problems":[],"tests":[],"procedures":[]}', True, 1),
    ('```json\n{"medications":[{"name":"aspirin","dose":"81 mg","route":null,"frequency":null}],'
     '"problems":[],"tests":[],"procedures":[]}\n```', True, 1),
    ('Sure! {"medications":[{"name":"aspirin","dose":"81 mg","route":null,"frequency":null},{"name":"hep',
     False, 1),
    ('{"medications":[{"name":"aspirin"}],"problems":["fever"]}', False, 1),
    ("I cannot help with that.", False, 0),
    ('{"medications": "oops"', False, 0),
])
def test_parse_record_repairs_and_reports(raw, valid, n_meds):
    rec, ok, repaired = decoding.parse_record(raw)
    assert record_errors(rec) == []
    assert ok is valid and repaired is (not valid)
    assert len(rec["medications"]) == n_meds


def test_ground_finds_spans_and_drops_hallucinations():
    text = "Aspirin 81 mg PO daily. Denies chest pain."
    rec = {"medications": [{"name": "aspirin", "dose": "81 mg", "route": "po", "frequency": "daily"},
                           {"name": "warfarin", "dose": None, "route": None, "frequency": None}],
           "problems": [{"name": "chest pain", "negated": True}], "tests": [], "procedures": []}
    ents, rels = decoding.ground(text, rec)
    assert [(e["label"], e["text"]) for e in ents] == [("MEDICATION", "Aspirin"), ("DOSE", "81 mg"),
                                                       ("ROUTE", "PO"), ("FREQUENCY", "daily"),
                                                       ("PROBLEM", "chest pain")]
    assert len(rels) == 3 and ents[-1]["negated"] is True
    assert annotation_errors({"id": 0, "entities": ents, "relations": rels, "record": rec}, text) == []


def test_retrieval_keeps_entity_sentences_only():
    text = "The weather was nice. Started aspirin 81 mg daily. Family visited today. Denies fever."
    reduced, frac = retrieval.reduce_note(text, RulesExtractor())
    assert "aspirin" in reduced and "fever" in reduced and "weather" not in reduced
    assert frac < 0.7
    assert retrieval.reduce_note("", RulesExtractor()) == ("", 1.0)


def test_bio_decoding_takes_each_word_from_its_first_subword():
    text = "Started prednisolone today"
    # subword units: "pred" "##nis" "##olone"
    offsets = [(0, 7), (8, 12), (12, 15), (15, 20), (21, 26)]
    (ent,) = decode_words(text, offsets, ["O", "B-MEDICATION", "O", "B-PROBLEM", "O"])
    assert ent["text"] == "prednisolone" and (ent["start"], ent["end"]) == (8, 20)
    assert ent["label"] == "MEDICATION"
    # a tag on a later piece only says nothing about the word
    assert decode_words(text, offsets, ["O", "O", "B-MEDICATION", "O", "O"]) == []


# ---------------------------------------------------------------- FORM / DURATION (schema 1.1)
def _n2c2_like():
    text = "Cephalexin 500 mg Capsule PO Q6H for 7 days."
    spans = [("Cephalexin", "MEDICATION"), ("500 mg", "DOSE"), ("Capsule", "FORM"), ("PO", "ROUTE"),
             ("Q6H", "FREQUENCY"), ("for 7 days", "DURATION")]
    ents = [{"start": text.index(s), "end": text.index(s) + len(s), "label": lab, "text": s, "negated": False}
            for s, lab in spans]
    rels = [{"type": f"{lab}_OF", "head": i, "tail": 0} for i, (_, lab) in enumerate(spans) if i]
    return text, ents, rels


def test_record_has_form_and_duration_and_first_attribute_in_text_wins():
    from clinical_ml.notes.schema import record_from_annotations

    text, ents, rels = _n2c2_like()
    rec = record_from_annotations(ents, rels)
    assert rec["medications"] == [{"name": "cephalexin", "dose": "500 mg", "route": "po", "frequency": "q6h",
                                   "form": "capsule", "duration": "for 7 days"}]
    assert record_errors(rec) == []
    # a second DOSE ("One (1)" next to the strength): the first in the text is kept, whatever the
    # order of the relations
    text2 = text + " One (1) capsule."
    ents2 = ents + [{"start": text2.index("One (1)"), "end": text2.index("One (1)") + 7, "label": "DOSE",
                     "text": "One (1)", "negated": False}]
    for order in (rels + [{"type": "DOSE_OF", "head": 6, "tail": 0}],
                  [{"type": "DOSE_OF", "head": 6, "tail": 0}] + rels):
        assert record_from_annotations(ents2, order)["medications"][0]["dose"] == "500 mg"


def test_records_without_form_duration_stay_valid():
    from clinical_ml.notes.schema import complete_record

    old = {"medications": [{"name": "aspirin", "dose": "81 mg", "route": None, "frequency": "daily"}],
           "problems": [], "tests": [], "procedures": []}
    assert record_errors(old) == []  # a record written before schema 1.1
    full = complete_record(old)
    assert full["medications"][0] == {**old["medications"][0], "form": None, "duration": None}
    bad = {**old, "medications": [{**old["medications"][0], "form": 3}]}
    assert record_errors(bad)


def test_parse_record_fills_missing_form_duration_and_ground_links_them():
    raw = ('{"medications":[{"name":"cephalexin","dose":"500 mg","route":"po","frequency":"q6h",'
           '"form":"capsule","duration":"for 7 days"},{"name":"aspirin","dose":null,"route":null,'
           '"frequency":null}],"problems":[],"tests":[],"procedures":[]}')
    rec, valid, repaired = decoding.parse_record(raw)
    assert valid and not repaired
    assert rec["medications"][1] == {"name": "aspirin", "dose": None, "route": None, "frequency": None,
                                     "form": None, "duration": None}
    text, gold_ents, gold_rels = _n2c2_like()
    ents, rels = decoding.ground(text, rec)
    assert [(e["label"], e["text"]) for e in ents] == [(e["label"], e["text"]) for e in gold_ents]
    assert sorted(r["type"] for r in rels) == sorted(r["type"] for r in gold_rels)
    coerced = decoding.coerce_record({"medications": [{"name": "x", "form": "tablet", "duration": 7}]})
    assert coerced["medications"] == [{"name": "x", "dose": None, "route": None, "frequency": None,
                                       "form": "tablet", "duration": None}]


def test_record_fields_score_form_and_duration():
    from clinical_ml.notes.schema import record_from_annotations

    _, ents, rels = _n2c2_like()
    gold = record_from_annotations(ents, rels)
    no_form = {**gold, "medications": [{**gold["medications"][0], "form": None}]}
    s = metrics.record_scores([gold], [no_form])
    assert (s["tp"], s["pred"], s["gold"]) == (5, 5, 6)  # name + 5 attributes, form missed


def test_rules_learn_form_and_duration_only_from_training_gold():
    text, ents, rels = _n2c2_like()
    doc = {"id": 1, "text": text, "entities": ents, "relations": rels}
    assert not {e["label"] for e in RulesExtractor().extract([text])[0]["entities"]} & {"FORM", "DURATION"}
    fitted = RulesExtractor().fit([doc])
    (ann,) = fitted.extract(["Then cephalexin 250 mg Capsule PO QID for 7 days."])
    got = {(e["label"], e["text"]) for e in ann["entities"]}
    assert {("FORM", "Capsule"), ("DURATION", "for 7 days")} <= got
    assert ann["record"]["medications"][0]["form"] == "capsule"
    again = RulesExtractor.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert again.extract([text]) == fitted.extract([text])
