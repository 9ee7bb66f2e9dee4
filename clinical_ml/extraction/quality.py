"""Quality of extractions on real notes that have no gold: what a clinician reading the output
would object to first.

- junk: an entity that is no mention at all (punctuation, digits outside doses, stop words,
  one character: ``spans.is_junk``);
- split: a mention cut in pieces, i.e. two same-label entities with only spaces between them,
  or touching inside one word;
- drug names: the share of MEDICATION predictions that contain a name from an independent drug
  dictionary (``drug_lexicon``: the MIT-licensed ``drug-named-entity-recognition`` package's
  107k names and brand names from MeSH/DrugBank/MedlinePlus). The dictionary only judges; no
  extractor uses it, so the figure is not circular.
"""
from __future__ import annotations

import bz2
import importlib.util
import pickle  # nosec B403 - the package's own data file, read once
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable

from clinical_ml.extraction.spans import is_junk, is_mention_gap
from clinical_ml.io import DataError

_WORDS = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)
DRUG_PACKAGE = "drug_named_entity_recognition"


@lru_cache(maxsize=1)
def drug_lexicon() -> frozenset[str]:
    """Lower-case drug names and variants from the ``drug-named-entity-recognition`` wheel
    (located with find_spec and read as data: importing it would pull in network code)."""
    spec = importlib.util.find_spec(DRUG_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the drug dictionary package is not installed; "
                        "`pip install drug-named-entity-recognition` (benchmarks only)")
    path = Path(list(spec.submodule_search_locations)[0]) / "drug_ner_dictionary.pkl.bz2"
    with bz2.open(path, "rb") as f:
        data = pickle.load(f)  # nosec B301 - trusted package data, not user input
    return frozenset(k.lower() for k in data["drug_variant_to_canonical"])


def is_drug_name(surface: str, lexicon: frozenset[str], max_words: int = 4) -> bool:
    """True when some run of up to ``max_words`` words of the mention is a dictionary name
    ("aspirin 81 mg", "IV heparin" and "Coumadin" count; "Hct", "qd" and "Vicryl" do not)."""
    words = [w.lower() for w in _WORDS.findall(surface)]
    for n in range(min(max_words, len(words)), 0, -1):
        for i in range(len(words) - n + 1):
            if " ".join(words[i:i + n]) in lexicon:
                return True
    return False


def split_pairs(text: str, entities: list[dict]) -> int:
    """Adjacent same-label entities with only spaces (or nothing, inside a word) between."""
    ents = sorted(entities, key=lambda e: e["start"])
    n = 0
    for a, b in zip(ents, ents[1:]):
        gap = text[a["end"]:b["start"]]
        if a["label"] == b["label"] and (gap == "" or is_mention_gap(gap)):
            n += 1
    return n


def quality_report(texts: list[str], predictions: Iterable[dict],
                   lexicon: frozenset[str] | None = None) -> dict:
    """Counts and shares of junk, split and drug-name MEDICATION predictions over notes."""
    n_ent = junk = splits = meds = drugs = 0
    for text, pred in zip(texts, predictions):
        ents = pred["entities"]
        n_ent += len(ents)
        clean = [e for e in ents if not is_junk(e["text"], e["label"])]
        junk += len(ents) - len(clean)
        splits += split_pairs(text, clean)  # junk is counted once, as junk
        med = [e for e in ents if e["label"] == "MEDICATION"]
        meds += len(med)
        if lexicon is not None:
            drugs += sum(is_drug_name(e["text"], lexicon) for e in med)
    out = {"notes": len(texts), "entities": n_ent, "junk": junk, "split_pairs": splits,
           "junk_share": round(junk / n_ent, 4) if n_ent else 0.0,
           "split_share": round(splits / n_ent, 4) if n_ent else 0.0,
           "medications": meds}
    if lexicon is not None:
        out.update({"medications_drug_names": drugs,
                    "drug_name_share": round(drugs / meds, 4) if meds else 0.0})
    return out
