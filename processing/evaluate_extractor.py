"""Evaluate extractors on note test sets, per corpus: the trained model against the rules
baseline (and, when asked, zero-shot prompting of a generative base) on each corpus of the
test notes (the synthetic notes and the real corpora ``build-notes --corpora`` merged in).

Each corpus is scored on the labels it annotates (``clinical_ml.extraction.corpus_eval``); the
rules baseline's gazetteer is fitted on that corpus's training documents (``--train``). The
gate is the mean lenient entity F1 over the real corpora when there is one, else the strict
entity F1 on the synthetic notes (``gate.source``, ``gate.corpora``, ``gate.metric``).

Processing contract: ``input/model`` (extractor dir or model.tar.gz), ``input/test`` (notes
JSONL), optional ``input/train`` (notes JSONL: the rules baseline's gazetteer); writes
``output/evaluation/extraction_evaluation.json`` (PropertyFile ``ExtractionReport``; the
pipeline's condition reads ``gate.entity_f1``) and ``model_metrics.json`` (registry
model-quality metrics).

    python -m processing.evaluate_extractor --model DIR --test notes/test.jsonl --output OUT [--train notes/train.jsonl]
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


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=f"{PROC}/input/model")
    p.add_argument("--test", default=f"{PROC}/input/test", help="notes JSONL file or folder")
    p.add_argument("--output", default=f"{PROC}/output", help="writes OUTPUT/evaluation/")
    p.add_argument("--train", "--rules-train", dest="train", default=None,
                   help="training notes (JSONL file or folder): each corpus's rules baseline is fitted on "
                        "its own training documents (default: seed lexicon only)")
    p.add_argument("--zero-shot", default=None, help="generative base (e.g. smollm2) to prompt zero-shot")
    p.add_argument("--max-docs", type=int, default=200, help="evaluate on at most N test notes per corpus (0: all)")
    p.add_argument("--max-zero-shot-docs", type=int, default=20, help="per corpus")
    return p.parse_args(argv)


def run_extractor(ext, docs: list[dict]) -> tuple[dict[str, Any], list[dict]]:
    """Metrics of ``ext`` on ``docs`` (each scored on the labels it annotates) and its predictions."""
    from clinical_ml.extraction.corpus_eval import score
    from clinical_ml.extraction.metrics import classification_scores

    t0 = time.time()
    preds = ext.extract([d["text"] for d in docs])
    dt = max(time.time() - t0, 1e-9)
    m = score(docs, preds, [p.get("valid_json", True) for p in preds])
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


def _notes_file(path: str, split: str) -> Path:
    p = Path(path)
    if not p.exists():
        raise DataError(f"{p}: {split} notes not found (build-notes output {split}.jsonl)")
    return p / f"{split}.jsonl" if p.is_dir() and (p / f"{split}.jsonl").is_file() else p


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from transformers.utils import logging as hf_logging

    from clinical_ml.extraction import load
    from clinical_ml.extraction.corpus_eval import build_gate, by_corpus, gate_metrics
    from clinical_ml.extraction.rules import RulesExtractor
    from clinical_ml.notes.datasets import read_documents

    hf_logging.set_verbosity_error()
    test_path = _notes_file(args.test, "test")
    tests = {c: limit(docs, args.max_docs) for c, docs in by_corpus(read_documents(test_path)).items()}
    if not tests:
        raise DataError(f"{test_path}: no test notes")
    train = by_corpus(read_documents(_notes_file(args.train, "train"))) if args.train else {}
    model = load(args.model)
    zs = None
    if args.zero_shot:
        from clinical_ml.extraction.generative import zero_shot_extractor

        zs = zero_shot_extractor(args.zero_shot)
    models: dict[str, dict] = {}
    for corpus, docs in tests.items():
        rules = RulesExtractor().fit(train[corpus]) if train.get(corpus) else RulesExtractor()
        models[corpus] = {"fine_tuned": run_extractor(model, docs)[0], "rules": run_extractor(rules, docs)[0]}
        models[corpus]["rules"]["gazetteer_train_docs"] = len(train.get(corpus, []))
        if zs is not None:
            models[corpus]["zero_shot"], _ = run_extractor(zs, limit(docs, args.max_zero_shot_docs))
    gate = build_gate({c: by["fine_tuned"] for c, by in models.items()})
    table = [summary_row(ds, name, m) for ds, by in models.items() for name, m in by.items()]
    report = {"gate": gate, "models": models, "table": table,
              "model": {k: model.metadata.get(k) for k in ("kind", "base_model", "created")}}
    out = Path(args.output) / "evaluation"
    write_json(out / "extraction_evaluation.json", report)
    write_json(out / "model_metrics.json", {"extraction_metrics": {
        k: {"value": v, "standard_deviation": "NaN"} for k, v in gate_metrics(gate).items()}})
    log.info("evaluate-extractor: test documents per corpus: %s",
             ", ".join(f"{c} {len(d)}" for c, d in tests.items()))
    for c, by in models.items():
        log.info("evaluate-extractor: %s: fine-tuned entity F1 %.3f strict / %.3f lenient, rules %.3f / %.3f",
                 c, by["fine_tuned"]["entity_f1"], by["fine_tuned"]["entity_f1_lenient"],
                 by["rules"]["entity_f1"], by["rules"]["entity_f1_lenient"])
    log.info("evaluate-extractor: gate entity_f1=%.4f (%s: %s)", gate["entity_f1"], gate["metric"],
             ", ".join(gate["corpora"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
