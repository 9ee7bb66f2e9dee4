"""Extraction metrics: strict/lenient entity F1 per label, relation F1, negation accuracy,
record field-level F1, JSON validity, word-level seqeval F1 and classification macro-F1.

Strict = same label and identical character offsets; lenient = same label and overlapping
offsets (each gold/predicted span matched at most once). Relations match when their type and
both spans match strictly. The record is compared as a bag of fields: a medication name, each
of its attributes (name, attribute, value) and each finding (section, name, negated), after
``normalize``.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Iterable

from clinical_ml.extraction.bio import char_spans_to_word_bio
from clinical_ml.notes.schema import ENTITY_LABELS, FINDING_LABELS, MEDICATION_FIELDS, normalize


def prf(tp: float, n_pred: float, n_gold: float) -> dict[str, float]:
    p = tp / n_pred if n_pred else 0.0
    r = tp / n_gold if n_gold else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4),
            "tp": int(tp), "pred": int(n_pred), "gold": int(n_gold)}


def _lenient_matches(gold: list[dict], pred: list[dict]) -> int:
    used: set[int] = set()
    tp = 0
    for p in pred:
        for i, g in enumerate(gold):
            if i not in used and g["label"] == p["label"] and p["start"] < g["end"] and g["start"] < p["end"]:
                used.add(i)
                tp += 1
                break
    return tp


def entity_scores(gold_docs: list[dict], pred_docs: list[dict],
                  labels: Iterable[str] = ENTITY_LABELS) -> dict[str, Any]:
    """{"strict": {"micro": prf, "per_label": {label: prf}}, "lenient": {...}}."""
    labels = list(labels)
    out: dict[str, Any] = {}
    for mode in ("strict", "lenient"):
        tp, npred, ngold = Counter(), Counter(), Counter()
        for g, p in zip(gold_docs, pred_docs):
            for lab in labels:
                ge = [e for e in g["entities"] if e["label"] == lab]
                pe = [e for e in p["entities"] if e["label"] == lab]
                ngold[lab] += len(ge)
                npred[lab] += len(pe)
                if mode == "strict":
                    gs = Counter((e["start"], e["end"]) for e in ge)
                    ps = Counter((e["start"], e["end"]) for e in pe)
                    tp[lab] += sum((gs & ps).values())
                else:
                    tp[lab] += _lenient_matches(ge, pe)
        per = {lab: prf(tp[lab], npred[lab], ngold[lab]) for lab in labels}
        micro = prf(sum(tp.values()), sum(npred.values()), sum(ngold.values()))
        present = [lab for lab in labels if ngold[lab]]
        macro = round(sum(per[lab]["f1"] for lab in present) / len(present), 4) if present else 0.0
        out[mode] = {"micro": micro, "macro_f1": macro, "per_label": per}
    return out


def _rel_keys(doc: dict) -> Counter:
    ents = doc["entities"]
    keys = Counter()
    for r in doc["relations"]:
        if r["head"] < len(ents) and r["tail"] < len(ents):
            h, t = ents[r["head"]], ents[r["tail"]]
            keys[(r["type"], h["start"], h["end"], t["start"], t["end"])] += 1
    return keys


def relation_scores(gold_docs: list[dict], pred_docs: list[dict]) -> dict[str, Any]:
    tp = npred = ngold = 0
    for g, p in zip(gold_docs, pred_docs):
        gk, pk = _rel_keys(g), _rel_keys(p)
        tp += sum((gk & pk).values())
        npred += sum(pk.values())
        ngold += sum(gk.values())
    return prf(tp, npred, ngold)


def negation_accuracy(gold_docs: list[dict], pred_docs: list[dict]) -> dict[str, Any]:
    """Agreement of ``negated`` on strictly matched findings (PROBLEM/TEST/PROCEDURE)."""
    agree = n = 0
    for g, p in zip(gold_docs, pred_docs):
        gmap = {(e["start"], e["end"], e["label"]): e["negated"] for e in g["entities"]
                if e["label"] in FINDING_LABELS}
        for e in p["entities"]:
            key = (e["start"], e["end"], e["label"])
            if key in gmap:
                n += 1
                agree += gmap[key] == bool(e.get("negated"))
    return {"accuracy": round(agree / n, 4) if n else None, "n": n}


def record_fields(record: dict) -> Counter:
    fields: Counter = Counter()
    for m in record.get("medications", []) or []:
        name = normalize(str(m.get("name") or ""))
        if not name:
            continue
        fields[("medication", name)] += 1
        for attr in MEDICATION_FIELDS.values():
            if m.get(attr):
                fields[("medication", name, attr, normalize(str(m[attr])))] += 1
    for section in FINDING_LABELS.values():
        for f in record.get(section, []) or []:
            name = normalize(str(f.get("name") or ""))
            if name:
                fields[(section, name, bool(f.get("negated")))] += 1
    return fields


def record_scores(gold_records: list[dict], pred_records: list[dict]) -> dict[str, Any]:
    tp = npred = ngold = 0
    for g, p in zip(gold_records, pred_records):
        gf, pf = record_fields(g), record_fields(p or {})
        tp += sum((gf & pf).values())
        npred += sum(pf.values())
        ngold += sum(gf.values())
    return prf(tp, npred, ngold)


def seqeval_scores(gold_docs: list[dict], pred_docs: list[dict]) -> dict[str, Any]:
    """Word-level BIO F1 with seqeval (CoNLL convention), micro over labels."""
    from seqeval.metrics.sequence_labeling import precision_recall_fscore_support

    y_true, y_pred = [], []
    for g, p in zip(gold_docs, pred_docs):
        y_true.append([t for _, t in char_spans_to_word_bio(g["text"], g["entities"])])
        y_pred.append([t for _, t in char_spans_to_word_bio(g["text"], p["entities"])])
    if not any(y_true):
        return {"f1": 0.0, "precision": 0.0, "recall": 0.0}
    # one pass for all three (f1_score, precision_score and recall_score each re-read every tag)
    prec, rec, f1, _ = precision_recall_fscore_support(y_true, y_pred, average="micro", zero_division=0)
    return {"f1": round(float(f1), 4), "precision": round(float(prec), 4), "recall": round(float(rec), 4)}


def classification_scores(gold: list[str], pred: list[str]) -> dict[str, Any]:
    from sklearn.metrics import accuracy_score, f1_score

    if not gold:
        return {"macro_f1": None, "accuracy": None, "n": 0}
    return {"macro_f1": round(float(f1_score(gold, pred, average="macro", zero_division=0)), 4),
            "accuracy": round(float(accuracy_score(gold, pred)), 4), "n": len(gold)}


def evaluate(gold_docs: list[dict], pred_docs: list[dict], valid_json: list[bool] | None = None) -> dict[str, Any]:
    """All span/record metrics of one extractor on one test set."""
    ent = entity_scores(gold_docs, pred_docs)
    rel = relation_scores(gold_docs, pred_docs)
    rec = record_scores([g["record"] for g in gold_docs], [p.get("record") or {} for p in pred_docs])
    return {
        "n_docs": len(gold_docs),
        "entities": ent,
        "entity_f1": ent["strict"]["micro"]["f1"],
        "entity_f1_lenient": ent["lenient"]["micro"]["f1"],
        "relations": rel,
        "relation_f1": rel["f1"],
        "negation": negation_accuracy(gold_docs, pred_docs),
        "record": rec,
        "record_f1": rec["f1"],
        "json_validity": (round(sum(valid_json) / len(valid_json), 4) if valid_json else 1.0),
        "seqeval": seqeval_scores(gold_docs, pred_docs),
    }
