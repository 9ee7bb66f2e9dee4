"""``clinical-ml synth``: write a synthetic MIMIC-III in the full-release layout.

    clinical-ml synth --out data/synth --patients 1000 --seed 0

Writes ``TABLE.csv.gz`` for the 17 tables of ``clinical_ml.mimic.schema.SYNTH_TABLES`` (release
column names and order, quoted strings, gzip with mtime 0), ``annotations/notes_gold.jsonl``
(one gold annotation per NOTEEVENTS row) and ``synth_manifest.json`` (seed, counts). Patients
are simulated in chunks of ``--chunk`` and streamed to the compressors, so memory stays flat;
each chunk has its own random stream (seed, chunk index), so the same seed and patient count
give byte-identical files. The folder is filled from a temporary sibling and files are moved
in only when everything succeeded.

``--later-fraction F`` (default 0: the output above, unchanged) splits the patients into two
eras like MIMIC-III's 2008 CareVue -> MetaVision switch: the first ``1 - F`` are the early,
CareVue-era patients (admissions before 2200-01-01), the last ``F`` the later, MetaVision-era
patients (first admissions from 2200-01-01: MetaVision itemids, units and charting, older and
sicker; ``cohort.LATER``). ``--later-fraction 1`` writes a later-period database only.

``--density release`` (default ``benchmark``: the output above, unchanged) adds the rows the
benchmark does not need until every event table has MIMIC-III v1.4's rows per admission, and
INPUTEVENTS_CV (``clinical_ml.synth.release``); the benchmark rows stay byte-identical.
"""
from __future__ import annotations

import argparse
import itertools
import json
import multiprocessing
import os
import random
import shutil
import sys
import time
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow as pa

from clinical_ml.io import write_json
from clinical_ml.logs import get_logger
from clinical_ml.mimic.schema import SYNTH_TABLES, table
from clinical_ml.synth import cohort, coding, notes, physiology, release, tables
from clinical_ml.synth.cohort import DAY, HOUR, Ids
from clinical_ml.synth.writer import TableWriter, to_arrow

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
    ap.add_argument("--chunk", type=int, default=250, help="patients simulated per chunk (memory knob)")
    ap.add_argument("--compresslevel", type=int, default=2, help="gzip level 1-9 (default 2)")
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1),
                    help="processes simulating chunks (output does not depend on it)")
    ap.add_argument("--later-fraction", type=float, default=0.0,
                    help="share of patients in the later, MetaVision-era period (admitted from 2200-01-01; "
                         "the others in the CareVue era); 0 (default): one period, as before")
    ap.add_argument("--density", choices=release.DENSITIES, default="benchmark",
                    help="benchmark (default): the rows the tasks and notes need; release: also the other "
                         "rows of MIMIC-III v1.4, to the release's rows per admission (~5x the disk)")
    return ap.parse_args(argv)


class Sink:
    """The open writers of one run; ROW_IDs are numbered here, in chunk order."""

    def __init__(self, root: Path, compresslevel: int, names: tuple[str, ...] = SYNTH_TABLES):
        self.writers = {t: TableWriter(root / f"{t}.csv.gz", table(t), compresslevel) for t in names}
        (root / GOLD.parent).mkdir(parents=True, exist_ok=True)
        self.gold = open(root / GOLD, "w", encoding="utf-8")

    def write_chunk(self, tables_: dict, gold: list[str]) -> None:
        first_note = self.writers["NOTEEVENTS"].rows + 1
        for name, tab in tables_.items():
            self.writers[name].write(tab)
        for i, rest in enumerate(gold):  # gold ids are the NOTEEVENTS ROW_IDs just assigned
            rid = first_note + i
            self.gold.write(f'{{"id":{rid},"row_id":{rid},{rest[1:]}\n')

    def close(self) -> dict[str, int]:
        for w in self.writers.values():
            w.close()
        self.gold.close()
        return {t: w.rows for t, w in self.writers.items()}


def simulate_chunk(rng: np.random.Generator, ids: Ids, n: int, periods: list[cohort.Period] | None = None):
    """Patients of one chunk with their admissions, events and codes (row buffers);
    ``periods[j]`` is patient j's period (default: ``cohort.DEFAULT`` for all)."""
    chart = physiology.Rows(*physiology.CHART_COLS)
    labs = physiology.Rows(*physiology.LAB_COLS)
    outs = physiology.Rows(*physiology.OUTPUT_COLS)
    ins = physiology.Rows(*physiology.INPUT_COLS)
    pts = []
    for j in range(n):
        pt, start = cohort.make_patient(rng, ids, periods[j] if periods else cohort.DEFAULT)
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


def note_rows(rng, pts) -> tuple[dict, list[str]]:
    """NOTEEVENTS columns (no ROW_ID) and, in the same order, gold lines without their ids."""
    rng = random.Random(int(rng.integers(2 ** 62)))  # scalar draws: Python's generator is faster
    rows, gold = [], []
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
                rows.append((pt.subject_id, adm.hadm_id, cdate, ctime, stime, cat, desc, cg, None, text))
                g = notes.gold_line(0, pt.subject_id, adm.hadm_id, cat, ents, rels)
                del g["id"], g["row_id"]
                gold.append(json.dumps(g, separators=(",", ":"), ensure_ascii=False))
    cols = tables.columns(rows, ("SUBJECT_ID", "HADM_ID", "CHARTDATE", "CHARTTIME", "STORETIME", "CATEGORY",
                                 "DESCRIPTION", "CGID", "ISERROR", "TEXT"))
    for k in ("CHARTDATE", "CHARTTIME", "STORETIME"):
        cols[k] = tables.dt(cols[k])
    cols["CGID"] = np.array([np.nan if v is None else v for v in cols["CGID"]], dtype=float)
    return cols, gold


def chunk_periods(ci: int, n: int, chunk: int, later_from: int | None) -> list[cohort.Period] | None:
    """Periods of chunk ``ci``'s patients: patient number ``>= later_from`` (0-based, over the
    whole run) is in the later era, the others in the early one; None without eras."""
    if later_from is None:
        return None
    return [cohort.LATER if ci * chunk + j >= later_from else cohort.EARLY for j in range(n)]


def build_chunk(seed: int, ci: int, n: int, chunk: int, later_from: int | None = None,
                density: str = "benchmark") -> tuple[dict, list[str]]:
    """Everything one chunk writes, as Arrow tables without ROW_IDs (picklable: runs in workers).

    The chunk's random stream is (seed, ci) and its ids come from ranges reserved for chunk
    ``ci``, so the result does not depend on which process builds it or in which order. Release
    density appends filler drawn from the stream (seed, ci, ``release.STREAM``)."""
    rng = np.random.default_rng([seed, ci])
    ids = Ids.for_chunk(ci, chunk)
    pts, chart, labs, outs, ins = simulate_chunk(rng, ids, n, chunk_periods(ci, n, chunk, later_from))
    arrays = {"chart": chart.arrays(), "labs": labs.arrays(), "outputs": outs.arrays(), "inputs": ins.arrays()}
    cols = {
        "PATIENTS": tables.patients(pts, rng), "ADMISSIONS": tables.admissions(pts, rng),
        "ICUSTAYS": tables.icustays(pts), "TRANSFERS": tables.transfers(pts, rng),
        "SERVICES": tables.services(pts, rng), "DIAGNOSES_ICD": tables.diagnoses(pts),
        "PROCEDURES_ICD": tables.procedures(pts), "PRESCRIPTIONS": tables.prescriptions(pts, rng),
        "CHARTEVENTS": tables.chartevents(arrays["chart"], rng), "LABEVENTS": tables.labevents(arrays["labs"]),
        "OUTPUTEVENTS": tables.outputevents(arrays["outputs"], rng),
    }
    in_arr = arrays["inputs"]
    if len(in_arr["ITEMID"]):
        cols["INPUTEVENTS_MV"] = tables.inputevents_mv(in_arr, rng, ids.order)
    cols["NOTEEVENTS"], gold = note_rows(rng, pts)
    out = {name: to_arrow(table(name), c) for name, c in cols.items() if c}
    out = {k: v for k, v in out.items() if v is not None}
    if density == "release":
        extra, extra_gold = release.chunk_filler(np.random.default_rng([seed, ci, release.STREAM]), pts, cols, arrays)
        for name, c in extra.items():
            t = to_arrow(table(name), c)
            if t is not None:
                out[name] = pa.concat_tables([out[name], t]) if name in out else t
        gold = gold + extra_gold
    return out, gold


def dictionary_tables(density: str = "benchmark") -> dict:
    out = {}
    for t, name in _DICTS.items():
        rows = release.dictionary_rows(name, density)
        cols = {c: [r[c] or None for r in rows] for c in rows[0]}
        for c in table(t).columns:
            if c.type == "int" and c.name in cols:
                cols[c.name] = np.array([np.nan if v is None else float(v) for v in cols[c.name]])
        out[t] = to_arrow(table(t), cols)
    return out


def iter_chunks(seed: int, patients: int, chunk: int, workers: int, later_from: int | None = None,
                density: str = "benchmark"):
    """Built chunks in order; with workers > 1 at most ``workers + 1`` are in flight (flat memory)."""
    specs = [(seed, ci, min(chunk, patients - first), chunk, later_from, density)
             for ci, first in enumerate(range(0, patients, chunk))]
    if workers <= 1 or len(specs) == 1:
        for spec in specs:
            yield build_chunk(*spec)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        todo = iter(specs)
        pending = deque(pool.apply_async(build_chunk, s) for s in itertools.islice(todo, workers + 1))
        while pending:
            result = pending.popleft().get()
            nxt = next(todo, None)
            if nxt is not None:
                pending.append(pool.apply_async(build_chunk, nxt))
            yield result


def later_from(patients: int, later_fraction: float) -> int | None:
    """The first later-period patient's number, or None when there are no eras (fraction 0)."""
    if not 0.0 <= later_fraction <= 1.0:
        raise ValueError(f"--later-fraction must be in [0, 1], got {later_fraction}")
    if later_fraction == 0.0:
        return None
    return patients - max(1, int(round(later_fraction * patients)))


def _day(ts: int) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(ts))


def _periods_manifest(patients: int, first_later: int) -> dict:
    def describe(p: cohort.Period, n: int) -> dict:
        return {"patients": n, "dbsource": p.dbsource, "first_admissions_from": _day(p.first_admit),
                "span_years": p.span_years, "admissions_before": _day(p.until) if p.until else None,
                "age_mean": p.age_mean, "p_older_than_89": p.p_old, "severity_shift": p.severity_shift}
    return {"early": describe(cohort.EARLY, first_later), "later": describe(cohort.LATER, patients - first_later)}


def generate(out: str | os.PathLike, patients: int, seed: int = 0, chunk: int = 250,
             compresslevel: int = 2, workers: int = 1, later_fraction: float = 0.0,
             density: str = "benchmark") -> dict:
    """Write the synthetic dataset to ``out``; returns the manifest (counts per table).

    Output bytes depend on (patients, seed, chunk, later_fraction, density) only, not on ``workers``."""
    if patients < 1:
        raise ValueError("--patients must be >= 1")
    if density not in release.DENSITIES:
        raise ValueError(f"--density must be one of {', '.join(release.DENSITIES)}, got {density!r}")
    first_later = later_from(patients, later_fraction)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.synth-tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    started = time.time()
    try:
        sink = Sink(tmp, compresslevel, release.synth_tables(SYNTH_TABLES, density))
        sink.write_chunk(dictionary_tables(density), [])
        for ci, (tabs, gold) in enumerate(iter_chunks(seed, patients, chunk, workers, first_later, density)):
            sink.write_chunk(tabs, gold)
            log.info("chunk %d written", ci)
        counts = sink.close()
        manifest = {"generator": "clinical_ml.synth", "seed": seed, "patients": patients, "chunk": chunk,
                    "tables": counts, "gold": str(GOLD)}
        if first_later is not None:  # absent without eras: the default manifest is unchanged
            manifest.update(later_fraction=later_fraction, periods=_periods_manifest(patients, first_later))
        if density != "benchmark":  # absent at the default density: the default manifest is unchanged
            manifest["density"] = density
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
    manifest = generate(args.out, args.patients, args.seed, args.chunk, args.compresslevel, args.workers,
                        args.later_fraction, args.density)
    width = max(map(len, manifest["tables"]))
    for t, n in manifest["tables"].items():
        print(f"{t.ljust(width)}  {n:>10,d} rows")
    print(f"wrote {args.out} (seed {args.seed}, {args.patients} patients"
          + (f", {args.density} density)" if args.density != "benchmark" else ")"))
    if "periods" in manifest:
        e, lt = manifest["periods"]["early"], manifest["periods"]["later"]
        print(f"periods: {e['patients']} early (CareVue, before {e['admissions_before']}), "
              f"{lt['patients']} later (MetaVision, from {lt['first_admissions_from']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
