"""Maintainer tool: refresh the packaged dictionary CSVs under ``clinical_ml/synth/data/`` from
the MIMIC-III demo dictionaries (ODbL) for exactly the codes/itemids ``vocab`` uses.

    python -m clinical_ml.synth.build_vocab ../shared/data/mimic3-demo \
        ../shared/data/mimic3-benchmarks-resources/hcup_ccs_2015_definitions.yaml

Generation never runs this: the CSVs are committed package data.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd
import yaml

from clinical_ml.synth import vocab


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("demo", help="folder of the MIMIC-III demo (lower-case headers)")
    ap.add_argument("ccs", help="mimic3-benchmarks hcup_ccs_2015_definitions.yaml")
    ap.add_argument("--background", type=int, default=60, help="background codes to keep")
    args = ap.parse_args(argv)
    demo = Path(args.demo)
    read = lambda t: pd.read_csv(demo / f"{t}.csv", dtype=str, keep_default_na=False)  # noqa: E731
    # background diagnoses: the demo's most frequent codes outside the 25 benchmark phenotypes
    # (so phenotype labels stay tied to simulated physiology), with their demo frequencies
    ccs = yaml.safe_load(Path(args.ccs).read_text())
    pheno = {c for v in ccs.values() if v.get("use_in_benchmark") for c in v["codes"]}
    known = set(vocab.all_diagnosis_codes())
    dx = read("DIAGNOSES_ICD")
    titled = set(read("D_ICD_DIAGNOSES").icd9_code)
    counts = dx[~dx.icd9_code.isin(pheno | known) & dx.icd9_code.isin(titled)].icd9_code.value_counts()
    bg = counts[counts >= 3].head(args.background)
    pd.DataFrame({"ICD9_CODE": bg.index, "WEIGHT": bg.values}).to_csv(vocab.DATA / "dx_background.csv", index=False)
    print(f"dx_background: {len(bg)} codes")
    want = {
        "d_icd_diagnoses": ("D_ICD_DIAGNOSES", "icd9_code", vocab.all_diagnosis_codes() + list(bg.index)),
        "d_icd_procedures": ("D_ICD_PROCEDURES", "icd9_code", vocab.all_procedure_codes()),
        "d_items": ("D_ITEMS", "itemid", [str(i) for i in vocab.all_chart_itemids()
                                          + list(vocab.OUTPUT_ITEMS.values())
                                          + [v[0] for v in vocab.INPUT_ITEMS.values()]]),
        "d_labitems": ("D_LABITEMS", "itemid", [str(v[0]) for v in vocab.LAB_ITEMS.values()]
                       + ["50817"]),
    }
    for out, (table, key, values) in want.items():
        if not write_subset(demo, table, key, set(values), out):
            return 1
    return 0


def write_subset(demo: Path, table: str, key: str, values: set[str], out: str) -> bool:
    """The demo dictionary rows whose ``key`` is in ``values`` as ``data/<out>.csv`` (release
    column names); False, naming the missing keys on stderr, when the demo lacks some."""
    df = pd.read_csv(demo / f"{table}.csv", dtype=str, keep_default_na=False)
    sub = df[df[key].isin(values)].drop(columns=["row_id"])
    missing = sorted(values - set(sub[key]))
    if missing:
        print(f"{table}: not in the demo dictionary: {missing}", file=sys.stderr)
        return False
    sub.columns = [c.upper() for c in sub.columns]
    sub.to_csv(vocab.DATA / f"{out}.csv", index=False)
    print(f"{out}: {len(sub)} rows")
    return True


if __name__ == "__main__":
    sys.exit(main())
