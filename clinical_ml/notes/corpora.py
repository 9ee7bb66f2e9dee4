"""Real annotated corpora as training and test data: PubTator (BC5CDR, NCBI-disease), brat
(MACCROBAT2020, the n2c2 2018 Track 2 medication/ADE layout) and JSONL, each with its splits.

Every corpus annotates only some of the schema's labels (BC5CDR has chemicals and diseases,
no DOSE; NCBI-disease only diseases). Each document therefore carries ``annotated_labels``:
the labels whose absence is meaningful in it. Training scores a token only against those
labels (``clinical_ml.notes.schema.annotated_labels``), so BC5CDR never teaches "5 mg is not
a DOSE".

PubTator -> schema map (offsets are over ``title + " " + abstract``):

=================================================  ==========
PubTator type                                      schema
=================================================  ==========
Chemical (BC5CDR)                                  MEDICATION
Disease (BC5CDR)                                   PROBLEM
SpecificDisease, DiseaseClass, Modifier,           PROBLEM
CompositeMention (NCBI-disease)
=================================================  ==========

Corpus layouts read by ``read_corpus`` (a folder):

- PubTator: ``train.pubtator``, ``dev.pubtator`` (or ``val``), ``test.pubtator``;
- brat, one flat folder of ``.txt``/``.ann`` (MACCROBAT): split by a salted hash of the file
  name (``split_of``), as before;
- brat with split folders (n2c2 2018: ``train*``/``training*`` and ``test*``): those splits,
  ``val`` carved out of train by the same hash;
- JSONL: ``train.jsonl``, ``val.jsonl``, ``test.jsonl`` (the ``build-notes`` layout).

``read_corpora(root)`` reads one corpus folder, or every corpus folder directly under ``root``
(other folders, such as a MIMIC-III copy or MTSamples, are skipped and named in the log).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable

from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from clinical_ml.notes.datasets import (BRAT_TYPE_MAP, SPLITS, brat_document, flatten_entities,
                                        make_document, read_documents, split_documents, split_of)
from clinical_ml.notes.schema import ENTITY_LABELS, annotated_labels

log = get_logger(__name__)

PUBTATOR_TYPE_MAP: dict[str, str] = {
    "Chemical": "MEDICATION",
    "Disease": "PROBLEM",
    "SpecificDisease": "PROBLEM",
    "DiseaseClass": "PROBLEM",
    "Modifier": "PROBLEM",
    "CompositeMention": "PROBLEM",
}
_SPLIT_NAMES = {"train": "train", "training": "train", "dev": "val", "val": "val",
                "valid": "val", "validation": "val", "test": "test"}


# ---------------------------------------------------------------- PubTator
def parse_pubtator(lines: Iterable[str], source: str,
                   type_map: dict[str, str] = PUBTATOR_TYPE_MAP) -> list[dict]:
    """PubTator text -> documents (``annotated_labels`` = the mapped types seen in it)."""
    raw: list[dict] = []
    cur: dict | None = None

    def flush() -> None:
        nonlocal cur
        if cur is not None:
            raw.append(cur)
        cur = None

    for n, line in enumerate(lines, 1):
        line = line.rstrip("\n")
        if not line.strip():
            flush()
            continue
        if "|t|" in line[:40] or "|a|" in line[:40]:
            pmid, kind, body = line.split("|", 2)
            if cur is None or cur["pmid"] != pmid:
                flush()
                cur = {"pmid": pmid, "title": "", "abstract": "", "mentions": []}
            cur["title" if kind == "t" else "abstract"] = body
            continue
        parts = line.split("\t")
        if cur is None or parts[0] != cur["pmid"]:
            raise DataError(f"{source}:{n}: annotation line outside its document; expected "
                            "'PMID|t|title', 'PMID|a|abstract', then 'PMID<TAB>start<TAB>end...'")
        if len(parts) >= 5:
            if not (parts[1].isdigit() and parts[2].isdigit()):
                raise DataError(f"{source}:{n}: mention offsets {parts[1]!r}-{parts[2]!r} are not "
                                "character offsets; expected 'PMID<TAB>start<TAB>end<TAB>text<TAB>type'")
            cur["mentions"].append((int(parts[1]), int(parts[2]), parts[4], n))
        elif len(parts) < 4:  # relation lines (PMID CID a b) have 4 columns and are not spans
            raise DataError(f"{source}:{n}: malformed PubTator line; expected "
                            "'PMID<TAB>start<TAB>end<TAB>text<TAB>type[<TAB>id]'")
    flush()
    seen_types = {t for d in raw for _, _, t, _ in d["mentions"]}
    labels = sorted({type_map[t] for t in seen_types if t in type_map}, key=ENTITY_LABELS.index)
    docs = []
    for d in raw:
        text = d["title"] + " " + d["abstract"]
        ents = []
        for start, end, kind, n in d["mentions"]:
            if kind not in type_map:
                continue
            if not 0 <= start < end <= len(text):
                raise DataError(f"{source}:{n}: offsets {start}-{end} outside the document's "
                                f"title + ' ' + abstract ({len(text)} characters)")
            ents.append({"start": start, "end": end, "label": type_map[kind],
                         "text": text[start:end], "negated": False})
        ents, _ = flatten_entities(ents, [])
        docs.append(make_document(d["pmid"], text, ents, [], annotated_labels=labels))
    return docs


def read_pubtator(path: str | os.PathLike, type_map: dict[str, str] = PUBTATOR_TYPE_MAP) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: PubTator file not found")
    with open(path, encoding="utf-8") as f:
        return parse_pubtator(f, str(path), type_map)


# ---------------------------------------------------------------- corpus folders
def _split_name(name: str) -> str | None:
    base = name.split(".")[0].lower()
    for key, split in _SPLIT_NAMES.items():
        if base == key or base.startswith(key + "_") or base.startswith(key + "-"):
            return split
    return None


def _brat_folder(folder: Path) -> list[dict]:
    docs = [brat_document(p, BRAT_TYPE_MAP) for p in sorted(folder.glob("*.txt"))
            if p.with_suffix(".ann").is_file()]
    labels = sorted({e["label"] for d in docs for e in d["entities"]}, key=ENTITY_LABELS.index)
    for d in docs:
        d["annotated_labels"] = labels
    return docs


def _carve_val(train: list[dict], seed: int = 0) -> dict[str, list[dict]]:
    """Split folders without a validation folder: 10 % of train (by id hash) validates."""
    out: dict[str, list[dict]] = {"train": [], "val": [], "test": []}
    for d in train:
        out["val" if split_of(d["id"], (0.9, 0.1, 0.0), seed) == "val" else "train"].append(d)
    return out


def read_corpus(folder: str | os.PathLike) -> dict[str, list[dict]] | None:
    """One corpus folder -> ``{"train", "val", "test"}`` documents; None when the folder is
    not a corpus layout this module knows."""
    folder = Path(folder)
    name = folder.name
    splits: dict[str, list[dict]] = {s: [] for s in SPLITS}
    pubtator = sorted(folder.glob("*.pubtator")) + sorted(folder.glob("*.PubTator.txt"))
    jsonl = sorted(folder.glob("*.jsonl"))
    sub_brat = [p for p in sorted(folder.iterdir()) if p.is_dir() and _split_name(p.name)
                and any(p.glob("*.ann"))] if folder.is_dir() else []
    if pubtator or jsonl:
        for p in pubtator + jsonl:
            split = _split_name(p.name)
            if split is None:
                raise DataError(f"{p}: cannot tell its split from the file name; name corpus "
                                "files train.*, dev.* (or val.*) and test.*")
            splits[split] += read_pubtator(p) if p in pubtator else read_documents(p)
    elif sub_brat:
        for p in sub_brat:
            splits[_split_name(p.name)] += _brat_folder(p)
        if not splits["val"]:
            carved = _carve_val(splits["train"])
            splits["train"], splits["val"] = carved["train"], carved["val"]
    elif folder.is_dir() and any(folder.glob("*.ann")):
        splits = split_documents(_brat_folder(folder))
    else:
        return None
    # brat / PubTator labels are read off the types seen, and what a corpus annotates is a
    # property of the corpus, not of one split file (a test file without a DOSE mention still
    # annotates doses); JSONL rows say it themselves
    labels = sorted({lab for docs in splits.values() for d in docs for lab in annotated_labels(d)},
                    key=ENTITY_LABELS.index)
    for docs in splits.values():
        for d in docs:
            d["corpus"] = name
            d["id"] = f"{name}/{d['id']}"
            if not jsonl:
                d["annotated_labels"] = labels
    return splits


def read_corpora(root: str | os.PathLike) -> dict[str, dict[str, list[dict]]]:
    """``{corpus name: {split: documents}}`` from one corpus folder or a folder of them."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: corpora folder not found; pass a folder of brat / PubTator / "
                        "JSONL corpora (e.g. ../shared/data)")
    one = read_corpus(root)
    if one is not None:
        return {root.name: one}
    out: dict[str, dict[str, list[dict]]] = {}
    for sub in sorted(p for p in root.iterdir() if p.is_dir()):
        corpus = read_corpus(sub)
        if corpus is None:
            log.info("corpora: %s is not an annotated corpus layout; skipped", sub.name)
            continue
        out[sub.name] = corpus
        log.info("corpora: %s: %s documents", sub.name,
                 "/".join(str(len(corpus[s])) for s in SPLITS))
    if not out:
        raise DataError(f"{root}: no annotated corpus here (brat .ann, *.pubtator or "
                        "train/val/test.jsonl)")
    return out
