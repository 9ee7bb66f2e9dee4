"""The extractor model directory (docs/contracts.md "Extractor model directory"): save and load.

```
metadata.json      {"model_type": "extractor", "kind": "encoder|generative|rules", "base_model",
                    "labels", "relation_types", "categories", "config", "training", "created"}
schema.json        schema version, entity labels, relation types, record JSON schema
adapter/           peft LoRA adapter (generative; encoder trained with tuning "lora")
encoder/           the fine-tuned encoder's weights (encoder trained with tuning "full")
heads.safetensors  encoder heads: NER, relation, category (encoder)
gazetteer.json     training-split names added where the encoder tagged nothing (encoder)
tokenizer/         the tokenizer the adapter was trained with
base/              base weights, only when the base is not an offline package alias
lexicon.json       rules extractor lexicon (rules)
```

Shared files (metadata.json, schema.json, base/) are written by ``modeldir``; this module
imports ``generative`` (lazily, to load that kind) and never the other way round.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from clinical_ml.extraction.modeldir import base_weights_dir, copy_base, schema_spec, write_common
from clinical_ml.extraction.precision import check as check_precision, quantize_int8
from clinical_ml.io import DataError, read_json, write_json
from clinical_ml.notes.schema import ENTITY_LABELS, SCHEMA_VERSION

# SCHEMA_VERSION and schema_spec stay importable from here
__all__ = ["SCHEMA_VERSION", "schema_spec", "save_encoder", "load_encoder", "save_rules", "load"]


def save_encoder(extractor, out: str | Path, base_model: str, base_dir: Path,
                 training: dict[str, Any] | None = None) -> Path:
    from safetensors.torch import save_file

    from clinical_ml.extraction.base_models import is_alias

    out = Path(out)
    model = extractor.model
    # LoRA: the adapter alone (the base comes from its package or base/); full: the weights
    model.encoder.save_pretrained(out / ("adapter" if model.cfg.tuning == "lora" else "encoder"))
    save_file({k: v.detach().cpu().contiguous() for k, v in model.heads.state_dict().items()},
              str(out / "heads.safetensors"))
    extractor.tokenizer.save_pretrained(out / "tokenizer")
    if model.cfg.tuning == "lora" and not is_alias(base_model):
        copy_base(base_dir, out)
    if extractor.gazetteer is not None:
        write_json(out / "gazetteer.json", extractor.gazetteer.terms)
    write_common(out, "encoder", base_model, {
        "categories": list(model.cfg.categories), "config": dataclasses.asdict(model.cfg),
        "training": training or {}})
    return out


def load_encoder(model_dir: Path, meta: dict, precision: str | None = None):
    from safetensors.torch import load_file
    from transformers import AutoTokenizer

    from clinical_ml.extraction.encoder import (EncoderConfig, EncoderExtractor,
                                                EncoderExtractorModel, load_base)

    labels = meta.get("labels")
    if labels is not None and list(labels) != list(ENTITY_LABELS):
        raise DataError(f"{model_dir}/metadata.json: this encoder was trained with labels "
                        f"{', '.join(labels)} (schema {meta.get('schema_version', '1.0')}); this code's "
                        f"schema {SCHEMA_VERSION} has {', '.join(ENTITY_LABELS)}, so its NER head does "
                        "not fit; retrain it with train-extractor")
    if (model_dir / "encoder").is_dir():  # fully fine-tuned
        encoder = load_base(str(model_dir / "encoder"))
    else:
        from peft import PeftModel  # only here: importing peft costs 6 s, more than the model

        base = load_base(str(base_weights_dir(model_dir, meta)))
        # LoRA folded into the base weights: the same function, without the adapter's extra
        # matmuls on every linear layer (inference only; training saves the adapter itself)
        encoder = PeftModel.from_pretrained(base, str(model_dir / "adapter")).merge_and_unload()
    precision = check_precision(precision)
    if precision == "int8":
        encoder = quantize_int8(encoder)
    # loaded weights are plain (an adapter is merged above): re-saving writes encoder/
    cfg = EncoderConfig(**{**meta["config"], "tuning": "full"})
    model = EncoderExtractorModel(encoder, cfg)
    model.heads.load_state_dict(load_file(str(model_dir / "heads.safetensors")))
    model.bf16 = precision == "bf16"
    tok = AutoTokenizer.from_pretrained(str(model_dir / "tokenizer"))  # nosec B615 - local directory, offline
    gazetteer = read_json(model_dir / "gazetteer.json") if (model_dir / "gazetteer.json").is_file() else None
    return EncoderExtractor(model, tok, gazetteer=gazetteer)


def save_rules(extractor, out: str | Path, training: dict[str, Any] | None = None) -> Path:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / "lexicon.json", extractor.to_dict())
    write_common(out, "rules", None, {"training": training or {}})
    return out


def load(model_dir: str | Path, precision: str | None = None):
    """An extractor with ``extract(texts) -> list[annotation dict]`` from a model directory
    (or a directory holding ``model.tar.gz``, or the tarball itself). ``precision``: the
    encoder's arithmetic, fp32 (default), bf16 or int8 (``clinical_ml.extraction.precision``;
    other kinds ignore it)."""
    from clinical_ml.io import resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    meta = read_json(model_dir / "metadata.json")
    if meta.get("model_type") != "extractor":
        raise DataError(f"{model_dir}/metadata.json: model_type is {meta.get('model_type')!r}, "
                        "not 'extractor'; pass a train-extractor output directory")
    kind = meta.get("kind")
    if kind == "encoder":
        ext = load_encoder(model_dir, meta, precision)
    elif kind == "rules":
        from clinical_ml.extraction.rules import RulesExtractor

        ext = RulesExtractor.from_dict(read_json(model_dir / "lexicon.json"))
    elif kind in ("generative", "zero-shot"):
        from clinical_ml.extraction.generative import load_generative

        ext = load_generative(model_dir, meta, base_weights_dir(model_dir, meta))
    else:
        raise DataError(f"{model_dir}/metadata.json: unknown extractor kind {kind!r}")
    ext.metadata = meta
    return ext
