"""Evaluate extractors on note test sets: the trained model against the rules baseline (and,
when asked, zero-shot prompting of a generative base), on the synthetic test notes and, when
given, on real MACCROBAT test documents.

Processing contract: ``input/model`` (extractor dir or model.tar.gz), ``input/test`` (notes
JSONL); writes ``output/evaluation/extraction_evaluation.json`` (PropertyFile
``ExtractionReport``; the pipeline's condition reads ``gate.*``) and ``model_metrics.json``
(registry model-quality metrics).

    python -m processing.evaluate_extractor --model DIR --test notes/test.jsonl --output OUT
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, write_json
from clinical_ml.logs import get_logger

log = get_logger("evaluate_extractor")
PROC = "/opt/ml/processing"
GATE_KEYS = ("entity_f1", "relation_f1", "json_validity", "record_f1")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=f"{PROC}/input/model")
    p.add_argument("--test", default=f"{PROC}/input/test", help="notes JSONL file or folder")
    p.add_argument("--output", default=f"{PROC}/output", help="writes OUTPUT/evaluation/")
    p.add_argument("--rules-train", default=None,
                   help="fit the rules baseline's gazetteer on this training set (default: seed lexicon)")
    p.add_argument("--maccrobat", default=None, help="MACCROBAT brat folder: also evaluate on its test split")
    p.add_argument("--maccrobat-model", default=None,
                   help="extractor trained with MACCROBAT's train split (default: --model)")
    p.add_argument("--zero-shot", default=None, help="generative base (e.g. smollm2) to prompt zero-shot")
    p.add_argument("--max-docs", type=int, default=200, help="evaluate on at most N test notes (0: all)")
    p.add_argument("--max-zero-shot-docs", type=int, default=20)
    return p.parse_args(argv)


def run_extractor(ext, docs: list[dict]) -> tuple[dict[str, Any], list[dict]]:
    from clinical_ml.extraction.metrics import classification_scores, evaluate

    t0 = time.time()
    preds = ext.extract([d["text"] for d in docs])
    dt = max(time.time() - t0, 1e-9)
    m = evaluate(docs, preds, [p.get("valid_json", True) for p in preds])
    m["notes_per_s"] = round(len(docs) / dt, 3)
    gold_cat = [d.get("category") for d in docs]
    pred_cat = [p.get("category") for p in preds]
    if any(pred_cat) and all(gold_cat):
        m["classification"] = classification_scores(gold_cat, [c or "" for c in pred_cat])
    if any("prompt_tokens" in p for p in preds):
        m["prompt_tokens"] = sum(p.get("prompt_tokens", 0) for p in preds)
    return m, preds


def summary_row(dataset: str, name: str, m: dict[str, Any]) -> dict[str, Any]:
    per = m["entities"]["strict"]["per_label"]
    row = {"dataset": dataset, "extractor": name, "n_docs": m["n_docs"],
           **{k: m[k] for k in ("entity_f1", "entity_f1_lenient", "relation_f1", "record_f1", "json_validity")},
           **{f"f1_{lab.lower()}": v["f1"] for lab, v in per.items()}}
    if "classification" in m:
        row["category_macro_f1"] = m["classification"]["macro_f1"]
    return row


def limit(docs: list[dict], n: int) -> list[dict]:
    return docs[:n] if n else docs


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    from clinical_ml.extraction import load
    from clinical_ml.extraction.rules import RulesExtractor
    from clinical_ml.notes.datasets import read_brat, read_documents, split_documents

    hf_logging.set_verbosity_error()
    test_path = Path(args.test)
    if not test_path.exists():
        raise DataError(f"{test_path}: test notes not found (build-notes output test.jsonl)")
    if test_path.is_dir() and (test_path / "test.jsonl").is_file():
        test_path = test_path / "test.jsonl"
    docs = limit(read_documents(test_path), args.max_docs)
    if not docs:
        raise DataError(f"{test_path}: no test notes")
    model = load(args.model)
    rules = RulesExtractor()
    if args.rules_train:
        rules.fit(read_documents(args.rules_train))
    extractors = {"fine_tuned": model, "rules": rules}
    models: dict[str, dict] = {"synthetic": {}}
    for name, ext in extractors.items():
        models["synthetic"][name], _ = run_extractor(ext, docs)
    if args.zero_shot:
        from clinical_ml.extraction.generative import zero_shot_extractor

        zs = zero_shot_extractor(args.zero_shot)
        models["synthetic"]["zero_shot"], _ = run_extractor(zs, limit(docs, args.max_zero_shot_docs))
    if args.maccrobat:
        mac = split_documents(read_brat(args.maccrobat))
        mac_model = load(args.maccrobat_model) if args.maccrobat_model else model
        mac_rules = RulesExtractor().fit(mac["train"])
        models["maccrobat"] = {"fine_tuned": run_extractor(mac_model, mac["test"])[0],
                               "rules": run_extractor(mac_rules, mac["test"])[0]}
    primary = models["synthetic"]["fine_tuned"]
    gate = {k: primary[k] for k in GATE_KEYS}
    table = [summary_row(ds, name, m) for ds, by in models.items() for name, m in by.items()]
    report = {"gate": gate, "models": models, "table": table,
              "model": {k: model.metadata.get(k) for k in ("kind", "base_model", "created")}}
    out = Path(args.output) / "evaluation"
    write_json(out / "extraction_evaluation.json", report)
    write_json(out / "model_metrics.json", {"extraction_metrics": {
        k: {"value": v, "standard_deviation": "NaN"} for k, v in gate.items()}})
    log.info("evaluate-extractor: %d test notes; gate %s", len(docs), gate)
    return 0


if __name__ == "__main__":
    sys.exit(main())
