"""Compare our task counts with a mimic3-benchmarks output tree built from the same MIMIC-III.

``--reference-root`` is the reference's data folder (the one holding ``root/`` and
``in-hospital-mortality/``, ``decompensation/``, ``length-of-stay/``, ``phenotyping/``, as
made by its README steps); ``--ours`` is a ``build-tasks`` output. Compared: cohort stays
(``root/all_stays.csv``), episodes (``episode*_timeseries.csv``), and per task the number of
samples and positives over all partitions, and per partition when every subject of ours was in
the published split lists (real MIMIC-III; the reference's val is carved from train later, so
train+val of ours is compared with its train). Decomp/LOS are compared with
our hourly (unthinned) counts, so ``--sample-every`` does not matter.

Exit status 0 when every count matches, 1 otherwise; ``--out FILE`` writes the JSON report.

    clinical-ml compare-reference --reference-root data/ --ours tasks/ [--out report.json]
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from pathlib import Path

from clinical_ml.io import DataError, write_json
from clinical_ml.tasks import manifest as manifest_mod
from clinical_ml.tasks.io import PHENOTYPE_COLUMNS, PHENOTYPES

TASK_DIRS = {"ihm": "in-hospital-mortality", "decomp": "decompensation", "los": "length-of-stay",
             "pheno": "phenotyping"}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reference-root", required=True, help="mimic3-benchmarks data folder")
    p.add_argument("--ours", required=True, help="build-tasks output folder")
    p.add_argument("--out", default=None, help="write the JSON report here")
    return p.parse_args(argv)


def _listfile(path: Path) -> list[dict]:
    if not path.is_file():
        raise DataError(f"{path}: not found; run the reference's create_* scripts first")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def reference_counts(root: Path) -> dict:
    out: dict = {}
    stays = root / "root" / "all_stays.csv"
    if stays.is_file():
        with stays.open(newline="") as f:
            out["stays"] = sum(1 for _ in csv.DictReader(f))
    if (root / "root").is_dir():
        out["episodes"] = sum(1 for _, _, files in os.walk(root / "root")
                              for n in files if n.startswith("episode") and n.endswith("_timeseries.csv"))
    for task, d in TASK_DIRS.items():
        if not (root / d).is_dir():
            continue
        per = {}
        for part in ("train", "test"):
            rows = _listfile(root / d / part / "listfile.csv")
            c = {"rows": len(rows)}
            if task in ("ihm", "decomp"):
                c["positives"] = sum(int(r["y_true"]) for r in rows)
            if task == "pheno":
                c["positives"] = {col: sum(int(r[name]) for r in rows)
                                  for name, col in zip(PHENOTYPES, PHENOTYPE_COLUMNS)}
            per[part] = c
        per["all"] = _add(per["train"], per["test"])
        out[task] = per
    return out


def _add(a: dict | None, b: dict | None) -> dict | None:
    if a is None or b is None:
        return None
    out = {"rows": a["rows"] + b["rows"]}
    if isinstance(a.get("positives"), dict):
        out["positives"] = {k: v + b["positives"][k] for k, v in a["positives"].items()}
    elif "positives" in a:
        out["positives"] = a["positives"] + b["positives"]
    return out


def our_counts(ours: Path) -> dict:
    m = manifest_mod.load(ours)
    sp = m.get("splits", {})
    out = {"stays": m["cohort"]["remove_age_under_18"]["icustays"], "episodes": m["episodes"]["episodes"],
           "published_split": sp.get("subjects") == sp.get("subjects_in_published_lists")
           and sp.get("source") != "hash"}
    tasks = m.get("tasks", {})
    hourly = m.get("hourly_samples_reference", {})
    for task in TASK_DIRS:
        per = {"train": None, "test": None}
        for part, splits in (("train", ("train", "val")), ("test", ("test",))):
            if task in ("decomp", "los"):
                if not hourly:
                    continue
                c = {"rows": sum(hourly.get(s, {}).get(task, 0) for s in splits)}
                if task == "decomp":
                    c["positives"] = sum(hourly.get(s, {}).get("decomp_positives", 0) for s in splits)
            else:
                got = [tasks[s][task] for s in splits if task in tasks.get(s, {})]
                if not got:
                    continue
                c = {"rows": sum(g["rows"] for g in got)}
                if task == "ihm":
                    c["positives"] = sum(g["positives"] for g in got)
                if task == "pheno":
                    c["positives"] = {col: sum(g["positives"][col] for g in got) for col in PHENOTYPE_COLUMNS}
            per[part] = c
        if per["train"] is not None:
            per["all"] = _add(per["train"], per["test"])
            out[task] = per
    return out


def compare(ref: dict, ours: dict) -> dict:
    checks = []

    def add(name, a, b):
        checks.append({"what": name, "reference": a, "ours": b, "match": a == b})

    for key in ("stays", "episodes"):
        if key in ref:
            add(key, ref[key], ours.get(key))
    # The reference's test partition is its published testset.csv; ours equals it only when
    # every subject was in the published lists (real MIMIC-III). Otherwise compare totals.
    parts = ("all", "train", "test") if ours.get("published_split") else ("all",)
    for task in TASK_DIRS:
        if task not in ref:
            continue
        for part in parts:
            r, o = ref[task][part], (ours.get(task) or {}).get(part) or {}
            add(f"{task}.{part}.rows", r["rows"], o.get("rows"))
            if isinstance(r.get("positives"), dict):
                for col, v in r["positives"].items():
                    add(f"{task}.{part}.{col}", v, (o.get("positives") or {}).get(col))
            elif "positives" in r:
                add(f"{task}.{part}.positives", r["positives"], o.get("positives"))
    return {"match": all(c["match"] for c in checks), "partitions_compared": list(parts), "checks": checks,
            "mismatches": [c for c in checks if not c["match"]]}


def main(argv: list[str] | None = None) -> int:
    a = parse_args(argv)
    report = compare(reference_counts(Path(a.reference_root)), our_counts(Path(a.ours)))
    if a.out:
        write_json(a.out, report)
    summary = {"match": report["match"], "checks": len(report["checks"]),
               "partitions_compared": report["partitions_compared"],
               "mismatches": report["mismatches"][:20]}
    print(json.dumps(summary, indent=1))
    return 0 if report["match"] else 1


if __name__ == "__main__":
    sys.exit(main())
