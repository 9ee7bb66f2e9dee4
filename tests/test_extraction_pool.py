"""Batch extraction settings: worker processes, precision, tarballs (clinical_ml.extraction.pool)."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clinical_ml.cli import main as cli
from clinical_ml.io import DataError, make_model_tarball
from clinical_ml.notes.datasets import write_jsonl
from clinical_ml.notes.toy import toy_documents

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def encoder_model(tiny_bert, tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pool")
    write_jsonl(toy_documents(12, seed=1), d / "train.jsonl")
    write_jsonl(toy_documents(4, seed=2), d / "val.jsonl")
    assert cli(["train-extractor", "--train", str(d / "train.jsonl"), "--validation", str(d / "val.jsonl"),
                "--model-dir", str(d / "model"), "--output-data-dir", str(d / "data"), "--kind", "encoder",
                "--base-model", str(tiny_bert), "--max-steps", "2", "--max-length", "64", "--threads", "1",
                "--save-merged"]) == 0
    return d / "model"


TEXTS = [d["text"] for d in toy_documents(7, seed=5)] + ["", "Aspirin 81 mg PO daily. " * 40]


def spans(anns: list[dict]) -> list[list[tuple]]:
    return [[(e["start"], e["end"], e["label"]) for e in a["entities"]] for a in anns]


def test_two_workers_give_the_one_process_result_in_order(encoder_model):
    from clinical_ml.extraction.pool import ExtractorPool, PoolSettings

    with ExtractorPool(str(encoder_model), PoolSettings(1, 1), batch_size=2) as one:
        a = one.extract(TEXTS)
    with ExtractorPool(str(encoder_model), PoolSettings(2, 1), batch_size=2) as two:
        assert two._pool is not None
        b = two.extract(TEXTS)
    assert len(a) == len(b) == len(TEXTS)
    assert spans(a) == spans(b)
    assert [x["record"] for x in a] == [x["record"] for x in b]


def test_a_tarball_is_unpacked_once_and_removed(encoder_model, tmp_path):
    from clinical_ml.extraction.pool import ExtractorPool, PoolSettings

    tar = make_model_tarball(encoder_model, tmp_path / "model.tar.gz")
    pool = ExtractorPool(str(tar), PoolSettings(1, 1))
    unpacked = Path(pool.spec)
    assert (unpacked / "metadata.json").is_file()
    assert len(pool.extract(TEXTS[:2])) == 2
    pool.close()
    assert not unpacked.exists()


def test_rules_models_run_in_one_process(tmp_path):
    from clinical_ml.extraction.artifact import save_rules
    from clinical_ml.extraction.pool import ExtractorPool, PoolSettings
    from clinical_ml.extraction.rules import RulesExtractor

    model = save_rules(RulesExtractor(), tmp_path / "rules")
    with ExtractorPool(str(model), PoolSettings(4, 1, "int8")) as pool:
        assert pool._pool is None and pool.settings.workers == 1
        assert pool.extract(["Aspirin 81 mg PO daily."])[0]["entities"]


def test_int8_quantizes_every_encoder_linear(encoder_model):
    from clinical_ml.extraction import load

    ext = load(str(encoder_model), precision="int8")
    kinds = {type(m).__module__ for m in ext.model.encoder.modules() if "Linear" in type(m).__name__}
    assert kinds and all("quantized" in k for k in kinds)  # no float nn.Linear left in the encoder
    assert isinstance(ext.model.heads.ner, torch.nn.Linear)  # the heads stay float
    anns = ext.extract(TEXTS)
    assert len(anns) == len(TEXTS) and all("record" in a for a in anns)
    with pytest.raises(DataError, match="precision='int4': use one of fp32, bf16, int8"):
        load(str(encoder_model), precision="int4")


def test_bf16_runs_the_encoder_under_autocast_and_keeps_the_weights_fp32(encoder_model):
    from clinical_ml.extraction import load

    ext = load(str(encoder_model), precision="bf16")
    assert ext.model.bf16 and all(p.dtype == torch.float32 for p in ext.model.parameters())
    ids = torch.tensor([[1, 5, 7, 2]])
    with torch.no_grad():
        h = ext.model.hidden(ids, torch.ones_like(ids))
        fp32 = load(str(encoder_model)).model.hidden(ids, torch.ones_like(ids))
    assert h.dtype == torch.float32  # the heads and span sums see fp32 states
    diff = float((h - fp32).abs().max())
    assert 0 < diff < 0.1 * float(fp32.abs().max())  # bf16 products: close, not equal
    anns = ext.extract(TEXTS)
    assert len(anns) == len(TEXTS) and all("record" in a for a in anns)


def test_cpu_bf16_reads_the_cpu_flags(tmp_path):
    from clinical_ml.extraction.precision import cpu_bf16

    (tmp_path / "zen4").write_text("processor\t: 0\nflags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni\n")
    (tmp_path / "skylake").write_text("flags\t\t: fpu avx2 avx512f avx512bw avx512_vnni\n")
    (tmp_path / "sapphire").write_text("flags\t\t: avx512f amx_bf16 amx_tile\n")
    assert cpu_bf16(tmp_path / "zen4") and cpu_bf16(tmp_path / "sapphire")
    assert not cpu_bf16(tmp_path / "skylake")  # AVX-512 without bf16 instructions: emulated


def test_extract_notes_records_the_precision_in_its_fingerprint(encoder_model):
    from processing.extract_notes import model_fingerprint

    plain = model_fingerprint(str(encoder_model))
    assert model_fingerprint(str(encoder_model), "int8") == plain + "+int8"
    assert model_fingerprint(str(encoder_model), "bf16") == plain + "+bf16"
    assert model_fingerprint("rules") == "rules"


def test_extract_notes_settings(encoder_model):
    from types import SimpleNamespace

    from processing.extract_notes import pool_settings

    def ns(**kw):
        return SimpleNamespace(**{"model": str(encoder_model), "workers": 0, "threads": 0, "precision": "fp32", **kw})

    assert pool_settings(ns(model="rules")).workers == 1
    s = pool_settings(ns(workers=2, threads=3, precision="int8"))
    assert (s.workers, s.threads, s.precision) == (2, 3, "int8")
    auto = pool_settings(ns())
    assert auto.precision == "fp32" and auto.workers * auto.threads >= 1


def test_full_precision_output_does_not_depend_on_the_batch(encoder_model):
    """What makes two shards equal one: a note's annotation is the same whichever notes share
    its batches (int8's per-batch activation scales break this; docs/extraction.md)."""
    from clinical_ml.extraction import load

    ext = load(str(encoder_model))
    together = ext.extract(TEXTS)
    alone = [ext.extract([t])[0] for t in TEXTS]
    assert spans(together) == spans(alone)


def test_length_sorted_batches_come_back_in_input_order(encoder_model):
    """The pool and the encoder both batch notes by length; each annotation must still be its
    own note's (entity offsets read the note's text back)."""
    from clinical_ml.extraction import load
    from clinical_ml.extraction.pool import ExtractorPool, PoolSettings
    from clinical_ml.extraction.spans import by_length

    texts = TEXTS[::-1]  # longest, empty and short notes interleaved
    assert by_length(["ccc", "", "a", "bb", "a"]) == [1, 2, 4, 3, 0]
    ext = load(str(encoder_model))
    alone = [ext.extract([t])[0] for t in texts]
    assert sum(bool(a["entities"]) for a in alone) >= 3  # a permutation would show
    with ExtractorPool(str(encoder_model), PoolSettings(1, 1), batch_size=2) as pool:
        pooled = pool.extract(texts)
    for got in (pooled, ext.extract(texts, chunk_docs=3)):
        assert spans(got) == spans(alone)
        assert all(e["text"] == t[e["start"]:e["end"]] for a, t in zip(got, texts) for e in a["entities"])
