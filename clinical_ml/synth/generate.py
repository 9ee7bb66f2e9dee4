"""``clinical-ml synth``: write a synthetic MIMIC-III in the full-release layout.

    clinical-ml synth --out data/synth --patients 1000 --seed 0

Writes ``TABLE.csv.gz`` for the 17 tables of ``clinical_ml.mimic.schema.SYNTH_TABLES`` (release
column names and order, quoted strings, gzip with mtime 0), ``annotations/notes_gold.jsonl``
(one gold annotation per NOTEEVENTS row) and ``synth_manifest.json`` (seed, counts). Patients
are simulated in chunks of ``--chunk`` and streamed to the compressors, so memory stays flat;
each chunk has its own random stream (seed, chunk index), so the same seed and patient count
give byte-identical files. The folder is filled from a temporary sibling and files are moved
in only when everything succeeded.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from clinical_ml.io import write_json
from clinical_ml.logs import get_logger
from clinical_ml.mimic.schema import SYNTH_TABLES, table
from clinical_ml.synth import cohort, coding, notes, physiology, tables
from clinical_ml.synth.cohort import DAY, HOUR, Ids
from clinical_ml.synth.vocab import dictionary
from clinical_ml.synth.writer import TableWriter

log = get_logger(__name__)
GOLD = Path("annotations") / "notes_gold.jsonl"
_DICTS = {"D_ITEMS": "d_items", "D_LABITEMS": "d_labitems", "D_ICD_DIAGNOSES": "d_icd_diagnoses",
          "D_ICD_PROCEDURES": "d_icd_procedures"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="clinical-ml synth", description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=os.environ.get("SM_OUTPUT_DATA_DIR", "data/synth"),
                    help="output folder (created; its synthetic files are replaced)")
    ap.add_argument("--patients", type=int, default=1000, help="number of patients (default 1000)")
    ap.add_argument("--seed", type=int, default=0, help="random seed (same seed -> same bytes)")
    ap.add_argument("--chunk", type=int, default=500, help="patients simulated per chunk (memory knob)")
    ap.add_argument("--compresslevel", type=int, default=4, help="gzip level 1-9 (default 4)")
    return ap.parse_args(argv)


class Sink:
    """The open writers of one run plus global ROW_ID counters."""

    def __init__(self, root: Path, compresslevel: int):
        self.writers = {t: TableWriter(root / f"{t}.csv.gz", table(t), compresslevel) for t in SYNTH_TABLES}
        (root / GOLD.parent).mkdir(parents=True, exist_ok=True)
        self.gold = open(root / GOLD, "w", encoding="utf-8")
        self.order_id = 1000000

    def write(self, name: str, cols: dict) -> None:
        if not cols:
            return
        w = self.writers[name]
        n = len(next(iter(cols.values())))
        if n:
            w.write({"ROW_ID": np.arange(w.rows + 1, w.rows + 1 + n), **cols})

    def close(self) -> dict[str, int]:
        for w in self.writers.values():
            w.close()
        self.gold.close()
        return {t: w.rows for t, w in self.writers.items()}


def simulate_chunk(rng: np.random.Generator, ids: Ids, n: int):
    """Patients of one chunk with their admissions, events and notes (row buffers)."""
    chart = physiology.Rows(*physiology.CHART_COLS)
    labs = physiology.Rows(*physiology.LAB_COLS)
    outs = physiology.Rows(*physiology.OUTPUT_COLS)
    ins = physiology.Rows(*physiology.INPUT_COLS)
    pts = []
    for _ in range(n):
        pt, start = cohort.make_patient(rng, ids)
        cohort.make_history(rng, ids, pt, start)
        base = physiology.patient_baseline(rng, pt)
        for adm in pt.admissions:
            summary: dict = {}
            for stay in adm.stays:
                physiology.chart_stay(rng, pt, adm, stay, base, chart, summary)
                physiology.outputs_stay(rng, pt, adm, stay, outs, summary)
                physiology.inputs_stay(rng, pt, adm, stay, base, ins)
            physiology.labs_admission(rng, pt, adm, base, labs, summary, outpatient=rng.random() < 0.3)
            coding.code_admission(rng, adm, summary)
            adm.summary = summary
        pts.append(pt)
    return pts, chart, labs, outs, ins


def write_notes(rng, pts, sink: Sink) -> None:
    rng = random.Random(int(rng.integers(2 ** 62)))  # scalar draws: Python's generator is faster
    rows, gold = [], []
    w = sink.writers["NOTEEVENTS"]
    row_id = w.rows
    for pt in pts:
        for adm in pt.admissions:
            docs = []
            for stay in adm.stays:
                t = stay.intime + int(rng.uniform(1, 6) * HOUR)
                desc, text, ents, rels = notes.radiology_note(rng, pt, adm, stay, t)
                docs.append((tables.day(t), t, None, "Radiology", desc, None, text, ents, rels))
                for d in range(min(3, max(1, int(stay.los_days)))):
                    t = min(stay.intime + d * DAY + int(rng.uniform(6, 12) * HOUR), stay.outtime)
                    text, ents, rels = notes.nursing_note(rng, pt, adm, stay, d)
                    cg = int(rng.choice(tables.CGIDS))
                    docs.append((tables.day(t), t, t + 1800, "Nursing", "Nursing Progress Note", cg, text, ents, rels))
            text, ents, rels = notes.discharge_summary(rng, pt, adm)
            docs.append((tables.day(adm.dischtime), None, None, "Discharge summary", "Report", None, text, ents, rels))
            for cdate, ctime, stime, cat, desc, cg, text, ents, rels in docs:
                row_id += 1
                rows.append((pt.subject_id, adm.hadm_id, cdate, ctime, stime, cat, desc, cg, None, text))
                gold.append(notes.gold_line(row_id, pt.subject_id, adm.hadm_id, cat, ents, rels))
    cols = tables.columns(rows, ("SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                                 "DESCRIPTION", "CGID", "ISERROR", "TEXT"))
    for k in ("CHARTDATE", "CHARTTIME", "STORETIME"):
        cols[k] = tables.dt(cols[k])
    cols["CGID"] = np.array([np.nan if v is None else v for v in cols["CGID"]], dtype=float)
    sink.write("NOTEEVENTS", cols)
    for g in gold:
        sink.gold.write(json.dumps(g, separators=(",", ":"), ensure_ascii=False) + "\n")


def write_chunk(rng, pts, chart, labs, outs, ins, sink: Sink) -> None:
    sink.write("PATIENTS", tables.patients(pts, rng))
    sink.write("ADMISSIONS", tables.admissions(pts, rng))
    sink.write("ICUSTAYS", tables.icustays(pts))
    sink.write("TRANSFERS", tables.transfers(pts, rng))
    sink.write("SERVICES", tables.services(pts, rng))
    sink.write("DIAGNOSES_ICD", tables.diagnoses(pts))
    sink.write("PROCEDURES_ICD", tables.procedures(pts))
    sink.write("PRESCRIPTIONS", tables.prescriptions(pts, rng))
    sink.write("CHARTEVENTS", tables.chartevents(chart.arrays(), rng))
    sink.write("LABEVENTS", tables.labevents(labs.arrays()))
    sink.write("OUTPUTEVENTS", tables.outputevents(outs.arrays(), rng))
    in_arr = ins.arrays()
    if len(in_arr["ITEMID"]):
        sink.write("INPUTEVENTS_MV", tables.inputevents_mv(in_arr, rng, sink.order_id))
        sink.order_id += len(in_arr["ITEMID"])
    write_notes(rng, pts, sink)


def write_dictionaries(sink: Sink) -> None:
    for t, name in _DICTS.items():
        rows = dictionary(name)
        cols = {c: [r[c] or None for r in rows] for c in rows[0]}
        for c in table(t).columns:
            if c.type == "int" and c.name in cols:
                cols[c.name] = np.array([np.nan if v is None else float(v) for v in cols[c.name]])
        sink.write(t, cols)


def generate(out: str | os.PathLike, patients: int, seed: int = 0, chunk: int = 500,
             compresslevel: int = 4) -> dict:
    """Write the synthetic dataset to ``out``; returns the manifest (counts per table)."""
    if patients < 1:
        raise ValueError("--patients must be >= 1")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.synth-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    started = time.time()
    try:
        sink = Sink(tmp, compresslevel)
        ids = Ids()
        write_dictionaries(sink)
        for ci, first in enumerate(range(0, patients, chunk)):
            rng = np.random.default_rng([seed, ci])
            n = min(chunk, patients - first)
            pts, chart, labs, outs, ins = simulate_chunk(rng, ids, n)
            write_chunk(rng, pts, chart, labs, outs, ins, sink)
            log.info("chunk %d: %d patients simulated", ci, n)
        counts = sink.close()
        manifest = {"generator": "clinical_ml.synth", "seed": seed, "patients": patients, "chunk": chunk,
                    "tables": counts, "gold": str(GOLD)}
        write_json(tmp / "synth_manifest.json", manifest)
        out.mkdir(parents=True, exist_ok=True)
        (out / GOLD.parent).mkdir(parents=True, exist_ok=True)
        for p in sorted(tmp.rglob("*")):
            if p.is_file():
                os.replace(p, out / p.relative_to(tmp))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("synthetic MIMIC-III: %d patients in %.1f s", patients, time.time() - started)
    return manifest


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    manifest = generate(args.out, args.patients, args.seed, args.chunk, args.compresslevel)
    width = max(map(len, manifest["tables"]))
    for t, n in manifest["tables"].items():
        print(f"{t.ljust(width)}  {n:>10,d} rows")
    print(f"wrote {args.out} (seed {args.seed}, {args.patients} patients)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
