"""Clinical information extraction: rules baseline, LoRA encoder (NER + relations + note
category), LoRA generative JSON extractor, zero-shot prompting, entity-based retrieval,
JSON repair and metrics. ``load(model_dir)`` returns an object with
``extract(texts) -> list[annotation dict]`` for any extractor kind."""
from __future__ import annotations


def load(model_dir, precision: str | None = None):
    """The extractor in ``model_dir`` (a train-extractor output, its model.tar.gz, or
    ``"rules"`` for the seed-lexicon rules baseline, which needs no training); ``precision``:
    the encoder's arithmetic on CPU, ``fp32`` (default), ``bf16`` or ``int8``
    (``clinical_ml.extraction.precision``)."""
    if str(model_dir) == "rules":
        from clinical_ml.extraction.rules import RulesExtractor

        return RulesExtractor()
    from transformers.utils import logging as hf_logging

    from clinical_ml.extraction.artifact import load as _load

    hf_logging.set_verbosity_error()
    return _load(model_dir, precision)


def finalize(text: str, annotation: dict, doc_id=None) -> dict:
    """An extract() result as a schema annotation line: id, entities, relations, record."""
    out = {"id": doc_id, "entities": annotation.get("entities", []),
           "relations": annotation.get("relations", []), "record": annotation.get("record")}
    if annotation.get("category") is not None:
        out["category"] = annotation["category"]
    return out
