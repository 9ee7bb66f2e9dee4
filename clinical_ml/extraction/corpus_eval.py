"""Per-corpus extraction scores and the evaluation gate.

A test set may mix corpora (``build-notes --corpora``): synthetic notes annotate every label,
BC5CDR only MEDICATION and PROBLEM, NCBI-disease only PROBLEM. Each corpus is scored on the
labels it annotates (``clinical_ml.notes.schema.annotated_labels``): predicted entities of
other labels are dropped first (with their relations and record fields), so a BC5CDR abstract
is not charged for the TEST spans nobody annotated in it.

The gate (``gate`` in ``extraction_evaluation.json``; the pipeline's condition reads
``gate.entity_f1``): with any real corpus in the test set, the mean over the real corpora of
the fine-tuned model's lenient entity F1; with none, the strict entity F1 on the synthetic
test notes. ``gate.source``/``gate.corpora``/``gate.metric`` say which.
"""
from __future__ import annotations

from typing import Any, Iterable

from clinical_ml.extraction.metrics import entity_scores, evaluate
from clinical_ml.io import DataError
from clinical_ml.notes.merge import SYNTHETIC, corpus_of
from clinical_ml.notes.schema import ATTRIBUTE_RELATIONS, ENTITY_LABELS, FINDING_LABELS, annotated_labels

GATE_KEYS = ("entity_f1", "relation_f1", "json_validity", "record_f1")
REAL_METRIC = "mean lenient entity F1 over real corpora"
SYNTHETIC_METRIC = "strict entity F1 on the synthetic test notes; no real corpus given"
FIGURES = ("n_docs", "entity_f1", "entity_f1_lenient", "relation_f1", "record_f1", "json_validity")
_ATTRIBUTES = {label.lower(): label for label in ATTRIBUTE_RELATIONS}  # "dose" -> "DOSE"


def by_corpus(docs: Iterable[dict]) -> dict[str, list[dict]]:
    """Documents grouped by their ``corpus`` (none = synthetic); synthetic first, then by name."""
    groups: dict[str, list[dict]] = {}
    for d in docs:
        groups.setdefault(corpus_of(d), []).append(d)
    return {c: groups[c] for c in sorted(groups, key=lambda c: (c != SYNTHETIC, c))}


def restrict_record(record: dict | None, labels: Iterable[str]) -> dict[str, list]:
    """The record's fields of these labels only (a medication's dose/route/... count as
    DOSE/ROUTE/...: nulled when that label is not among ``labels``)."""
    labels, record = set(labels), record or {}
    out: dict[str, list] = {"medications": [], "problems": [], "tests": [], "procedures": []}
    if "MEDICATION" in labels:
        meds = [{**m, **{k: None for k, lab in _ATTRIBUTES.items() if k in m and lab not in labels}}
                for m in record.get("medications") or []]
        # merged again, as record_from_annotations merges: on BC5CDR "cisplatin" with a found
        # dose and "cisplatin" without one are one medication, not a false positive
        seen: set[tuple] = set()
        for m in meds:
            key = tuple(sorted((k, str(v)) for k, v in m.items()))
            if key not in seen:
                seen.add(key)
                out["medications"].append(m)
    for label, section in FINDING_LABELS.items():
        if label in labels:
            out[section] = list(record.get(section) or [])
    return out


def restrict(annotation: dict, labels: Iterable[str]) -> dict:
    """An annotation (gold or predicted) with only the entities of ``labels``, the relations
    between kept entities (re-indexed) and the record fields of those labels."""
    labels = set(labels)
    ents = annotation.get("entities") or []
    keep = [i for i, e in enumerate(ents) if e["label"] in labels]
    index = {old: new for new, old in enumerate(keep)}
    rels = [{**r, "head": index[r["head"]], "tail": index[r["tail"]]}
            for r in annotation.get("relations") or [] if r["head"] in index and r["tail"] in index]
    return {**annotation, "entities": [ents[i] for i in keep], "relations": rels,
            "record": restrict_record(annotation.get("record"), labels)}


def doc_labels(doc: dict) -> tuple[str, ...]:
    try:
        return annotated_labels(doc)
    except ValueError as e:
        raise DataError(f"test notes: {e}") from None


def score(docs: list[dict], preds: list[dict], valid_json: list[bool] | None = None) -> dict[str, Any]:
    """``metrics.evaluate`` on the labels each document annotates; per-label figures for the
    labels any of ``docs`` annotates (``labels`` in the result)."""
    per_doc = [doc_labels(d) for d in docs]
    labels = [lab for lab in ENTITY_LABELS if any(lab in ls for ls in per_doc)]
    gold = [restrict(d, ls) for d, ls in zip(docs, per_doc)]
    pred = [restrict(p, ls) for p, ls in zip(preds, per_doc)]
    m = evaluate(gold, pred, valid_json)
    ent = entity_scores(gold, pred, labels)  # per-label figures of the annotated labels only
    m.update(entities=ent, entity_f1=ent["strict"]["micro"]["f1"],
             entity_f1_lenient=ent["lenient"]["micro"]["f1"], labels=labels)
    return m


def _mean(values: list[float]) -> float:
    return round(sum(values) / len(values), 4)


def build_gate(per_corpus: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The gate from the fine-tuned model's metrics per corpus (``score`` output by corpus name).

    Any real corpus (name != "synthetic") present: ``entity_f1`` = mean lenient entity F1 over
    the real corpora, ``record_f1``/``json_validity`` their means, ``relation_f1`` the mean over
    the real corpora whose gold has relations (absent when none has). Otherwise the synthetic
    notes' figures (strict entity F1). ``per_corpus`` holds every corpus's figures."""
    if not per_corpus:
        raise DataError("no test documents to build the extraction gate from")
    real = sorted(c for c in per_corpus if c != SYNTHETIC)
    if real:
        ms = [per_corpus[c] for c in real]
        gate = {"entity_f1": _mean([m["entity_f1_lenient"] for m in ms])}
        with_relations = [c for c in real if per_corpus[c].get("relations", {}).get("gold", 0) > 0]
        if with_relations:
            gate["relation_f1"] = _mean([per_corpus[c]["relation_f1"] for c in with_relations])
        gate["json_validity"] = _mean([m["json_validity"] for m in ms])
        gate["record_f1"] = _mean([m["record_f1"] for m in ms])
        gate.update(source="real", corpora=real, metric=REAL_METRIC, relation_corpora=with_relations)
    else:  # only the synthetic notes
        m = per_corpus[SYNTHETIC]
        gate = {k: m[k] for k in GATE_KEYS}
        gate.update(source="synthetic", corpora=[SYNTHETIC], metric=SYNTHETIC_METRIC)
    gate["per_corpus"] = {c: {**{k: m.get(k) for k in FIGURES}, "labels": m.get("labels", list(ENTITY_LABELS))}
                          for c, m in per_corpus.items()}
    return gate


def gate_metrics(gate: dict[str, Any]) -> dict[str, float]:
    """The gate's numeric figures (what model_metrics.json registers)."""
    return {k: gate[k] for k in GATE_KEYS if isinstance(gate.get(k), (int, float))}
