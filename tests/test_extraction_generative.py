"""Generative extractor on corpora with partial labels, on a tiny random-init llama (no
download, never the real SmolLM2): the prompt names the fields a document annotates, the
target holds only those, inference asks for every field trained on, parse_record fills the
rest."""
from __future__ import annotations

import json

import pytest

from clinical_ml.notes.schema import ENTITY_LABELS, record_errors
from clinical_ml.notes.toy import toy_documents

BC5CDR = ["MEDICATION", "PROBLEM"]
NCBI = ["PROBLEM"]
SYNTHETIC = ["MEDICATION", "DOSE", "ROUTE", "FREQUENCY", "PROBLEM", "TEST", "PROCEDURE"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _doc(text: str, spans: list[tuple[str, str]], labels: list[str] | None, rels=()) -> dict:
    from clinical_ml.notes.schema import record_from_annotations

    ents = [{"start": text.index(s), "end": text.index(s) + len(s), "label": lab, "text": s, "negated": False}
            for s, lab in spans]
    rels = [{"type": t, "head": h, "tail": m} for t, h, m in rels]
    doc = {"id": "d", "text": text, "entities": ents, "relations": rels,
           "record": record_from_annotations(ents, rels)}
    if labels is not None:
        doc["annotated_labels"] = labels
    return doc


def _decode(ext, ids: list[int]) -> str:
    """The target text (the test tokenizer splits punctuation with spaces: names here are one word
    or compared without spaces)."""
    return ext.tokenizer.decode(ids, skip_special_tokens=True).replace(" ", "")


@pytest.fixture(scope="module")
def ext(tiny_llama):
    from clinical_ml.extraction.generative import GenConfig, build_generative

    return build_generative(str(tiny_llama), GenConfig(max_prompt_tokens=96, max_target_tokens=128,
                                                       max_new_tokens=8))


def test_fields_line_and_target_follow_annotated_labels():
    from clinical_ml.extraction.generative import compact, fields_line, target_record

    assert fields_line(ENTITY_LABELS) == ("medications (dose, route, frequency, form, duration), "
                                          "problems, tests, procedures")
    assert fields_line(SYNTHETIC) == "medications (dose, route, frequency), problems, tests, procedures"
    assert fields_line(BC5CDR) == "medications, problems"
    assert fields_line(NCBI) == "problems"
    rec = {"medications": [{"name": "aspirin", "dose": None, "route": None, "frequency": None,
                            "form": None, "duration": None}],
           "problems": [{"name": "fever", "negated": False}], "tests": [], "procedures": []}
    assert target_record(rec, BC5CDR) == {"medications": [{"name": "aspirin"}], "problems": [{"name": "fever"}]}
    assert target_record(rec, NCBI) == {"problems": [{"name": "fever"}]}
    # no defaults written: null attributes and "negated":false left out, a negation kept
    neg = {**rec, "medications": [{**rec["medications"][0], "dose": "81 mg"}],
           "tests": [{"name": "ecg", "negated": True}]}
    assert compact(neg) == ('{"medications":[{"name":"aspirin","dose":"81 mg"}],"problems":[{"name":"fever"}],'
                            '"tests":[{"name":"ecg","negated":true}],"procedures":[]}')
    # ... and parse_record puts them back: the same record
    from clinical_ml.extraction.decoding import parse_record
    back, valid, repaired = parse_record(compact(neg))
    assert valid and not repaired and back == neg


def test_bc5cdr_training_pair_names_its_fields_and_targets_only_them(ext):
    doc = _doc("Cisplatin induced nephrotoxicity in rats.", [("Cisplatin", "MEDICATION"),
                                                            ("nephrotoxicity", "PROBLEM")], BC5CDR)
    [(p_ids, t_ids)] = ext.training_pairs(doc)
    prompt = ext.tokenizer.decode(p_ids)
    assert "fields : medications, problems" in prompt.lower()
    assert "tests" not in prompt.lower() and "dose" not in prompt.lower()
    assert t_ids[-1] == ext.tokenizer.eos_token_id
    target = _decode(ext, t_ids)
    assert json.loads(target) == {"medications": [{"name": "cisplatin"}], "problems": [{"name": "nephrotoxicity"}]}
    ncbi = _doc("Familial adenomatous polyposis is inherited.", [("polyposis", "PROBLEM")], NCBI)
    assert json.loads(_decode(ext, ext.training_pairs(ncbi)[0][1])) == {"problems": [{"name": "polyposis"}]}
    # a synthetic note (no annotated_labels: every label) keeps every section and attribute key
    syn = _doc("Aspirin 81 mg daily. Chest x-ray clear.", [("Aspirin", "MEDICATION"), ("81 mg", "DOSE"),
                                                           ("Chest x-ray", "TEST")], None, [("DOSE_OF", 1, 0)])
    [(p_syn, t_syn)] = ext.training_pairs(syn)
    assert "procedures" in ext.tokenizer.decode(p_syn).lower()
    assert json.loads(_decode(ext, t_syn)) == {
        "medications": [{"name": "aspirin", "dose": "81mg"}], "problems": [], "tests": [{"name": "chestx-ray"}],
        "procedures": []}


def test_parse_record_fills_fields_a_partial_target_leaves_out():
    from clinical_ml.extraction.decoding import parse_record

    rec, valid, repaired = parse_record('{"medications":[{"name":"cisplatin"}],'
                                        '"problems":[{"name":"nephrotoxicity","negated":false}]}')
    assert valid and not repaired and record_errors(rec) == []
    assert rec["tests"] == [] and rec["procedures"] == []
    assert rec["medications"] == [{"name": "cisplatin", "dose": None, "route": None, "frequency": None,
                                   "form": None, "duration": None}]
    rec, valid, _ = parse_record('{"problems":[{"name":"fever","negated":true}]}')
    assert valid and rec["medications"] == [] and rec["problems"][0]["negated"] is True
    # what is there must still fit the schema
    assert parse_record('{"problems":[{"name":"fever"}],"labs":[]}')[1] is False



def test_a_repeated_item_is_found_and_the_record_goes_on_with_the_next_section():
    from clinical_ml.extraction.decoding import next_section, parse_record, repeated_item

    loop = '{"medications":[{"name":"dopamine"},{"name":"labetalol"},{"name":"dopamine"}'
    assert repeated_item(loop) == loop.rindex('{"name":"dopamine"}')
    # the same name in another section, or with another negation, is no repeat
    assert repeated_item('{"medications":[{"name":"x"}],"problems":[{"name":"x","negated":false}') is None
    assert repeated_item('{"problems":[{"name":"x","negated":false},{"name":"x","negated":true}') is None
    assert repeated_item('{"problems":[') is None and repeated_item("no json") is None
    sections = ["medications", "problems", "tests"]
    text, done = next_section(loop, repeated_item(loop), sections)
    assert not done and text == '{"medications":[{"name":"dopamine"},{"name":"labetalol"}],"problems":['
    last = '{"medications":[],"tests":[{"name":"ecg","negated":false},{"name":"ecg","negated":false}'
    text, done = next_section(last, repeated_item(last), sections)
    assert done and parse_record(text)[1] and parse_record(text)[0]["tests"] == [{"name": "ecg", "negated": False}]


def test_write_records_writes_on_after_a_loop(ext, monkeypatch):
    """A looping row is cut, its section closed, and prompted again from the next section."""
    from clinical_ml.extraction.decoding import parse_record

    script = [['{"medications":[{"name":"a"},{"name":"a"}', '{"medications":[],"problems":[]}'],
              ['{"name":"fever","negated":false}],"tests":[],"procedures":[]}']]
    calls = []

    def fake(prompts, written=None):
        calls.append((list(prompts), list(written)))
        return script[len(calls) - 1]

    monkeypatch.setattr(ext, "generate", fake)
    monkeypatch.setattr(type(ext), "labels", property(lambda self: tuple(SYNTHETIC)))
    out = ext.write_records(["P1", "P2"])
    assert calls[1] == (['P1{"medications":[{"name":"a"}],"problems":['], ['{"medications":[{"name":"a"}],"problems":['])
    assert out[1] == '{"medications":[],"problems":[]}'
    rec, valid, _ = parse_record(out[0])
    assert valid and [m["name"] for m in rec["medications"]] == ["a"] and rec["problems"][0]["name"] == "fever"


def test_generation_stops_where_the_record_repeats_an_item(ext):
    free = ext.generate(["Aspirin for pain."])[0]
    stopped = ext.generate(["Aspirin for pain."], written=['{"problems":[{"name":"a"},{"name":"a"}'])[0]
    n = lambda t: len(ext.tokenizer(t, add_special_tokens=False)["input_ids"])  # noqa: E731
    assert n(free) > 1 and n(stopped) <= 1


def test_fit_records_the_trained_fields_and_inference_asks_for_them(tiny_llama, tmp_path):
    from clinical_ml.extraction import load
    from clinical_ml.extraction.generative import (GenConfig, build_generative, fit_generative,
                                                   save_generative)

    ext = build_generative(str(tiny_llama), GenConfig(max_prompt_tokens=64, max_target_tokens=48,
                                                      max_new_tokens=8))
    # before training: every schema label
    assert ext.labels == ENTITY_LABELS and "form, duration" in ext.prompt("x")
    bc5 = _doc("Cisplatin induced nephrotoxicity.", [("Cisplatin", "MEDICATION"), ("nephrotoxicity", "PROBLEM")],
               BC5CDR)
    ncbi = _doc("Familial polyposis.", [("polyposis", "PROBLEM")], NCBI)
    mts = {"id": "m", "text": "Consult note.", "entities": [], "relations": [], "spans_annotated": False,
           "record": {"medications": [], "problems": [], "tests": [], "procedures": []}}
    toy = [{**d, "annotated_labels": SYNTHETIC} for d in toy_documents(2)]
    stats = fit_generative(ext, [bc5, ncbi, mts] + toy, max_steps=1, batch_size=8, bf16=False)
    assert stats["examples"] == 4  # the category-only note is not a training pair
    assert ext.cfg.labels == SYNTHETIC
    assert ext.prompt("x").startswith("### Fields: medications (dose, route, frequency), problems, tests, "
                                      "procedures\n### Note:\nx\n")
    out = ext.extract(["Cisplatin induced nephrotoxicity."])
    assert record_errors(out[0]["record"]) == []

    save_generative(ext, tmp_path / "g", str(tiny_llama), tiny_llama, {})
    again = load(tmp_path / "g")
    assert again.cfg.labels == SYNTHETIC and again.prompt("x") == ext.prompt("x")
    # a model saved before the fields line: its config has no prompt_fields -> the old prompt
    meta_file = tmp_path / "g" / "metadata.json"
    meta = json.loads(meta_file.read_text())
    for key in ("prompt_fields", "labels"):
        meta["config"].pop(key)
    meta_file.write_text(json.dumps(meta))
    assert load(tmp_path / "g").prompt("x") == "### Note:\nx\n### JSON:\n"


def test_zero_shot_prompt_is_unchanged(tiny_llama):
    from clinical_ml.extraction.generative import (ZERO_SHOT_INSTRUCTION, GenConfig, GenerativeExtractor,
                                                   _load_base)

    model, tok = _load_base(str(tiny_llama))
    zs = GenerativeExtractor(model, tok, GenConfig(zero_shot=True))
    assert zs.prompt("x") == f"{ZERO_SHOT_INSTRUCTION}\n### Note:\nx\n### JSON:\n"  # no chat template here
    assert "### Fields" not in zs.prompt("x")


def test_lr_schedule_anneals_by_the_time_budget():
    from clinical_ml.extraction.optim import lr_factor

    assert lr_factor(0, 100) == 0.1  # warm-up over the first tenth
    assert lr_factor(50, 100) == 0.5
    # half the steps but the whole time budget spent: at the floor, not at half the peak
    assert lr_factor(50, 100, budget_used=1.0, floor=0.05) == 0.05  # the generative loop's floor
    assert lr_factor(20, 100, budget_used=0.5) == 0.5
