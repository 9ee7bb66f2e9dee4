"""DuckDB's parse-only time over the tables ``build-tasks`` reads: the floor it is measured against.

Each table is read through the builder's own ``read_csv`` call (``clinical_ml.tasks.sources``:
every column as VARCHAR, the same gzip, quoting and parallel settings and thread count) and
reduced to ``count(*)`` plus ``max(length(col))`` of every column the builder reads, so each
of those columns is tokenized and materialized once and nothing else is done (no casts, no
filters, no joins, no writes). ``bench_tasks.py`` runs this in its own process beside
``build-tasks`` on the same input, in one run.

    python benchmarks/parse_floor.py MIMIC_DIR [--threads 2] [--out parse.json]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clinical_ml.io import DataError  # noqa: E402
from clinical_ml.mimic.files import locate_table  # noqa: E402
from clinical_ml.sql import ident, join, render  # noqa: E402
from clinical_ml.tasks import sources  # noqa: E402

# table -> the columns build-tasks reads from it (cohort.py, events.py, build.py)
READ_COLUMNS = {
    "ICUSTAYS": ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "DBSOURCE", "FIRST_CAREUNIT", "LAST_CAREUNIT",
                 "FIRST_WARDID", "LAST_WARDID", "INTIME", "OUTTIME", "LOS"),
    "ADMISSIONS": ("SUBJECT_ID", "HADM_ID", "ADMITTIME", "DISCHTIME", "DEATHTIME", "ADMISSION_TYPE",
                   "DISCHARGE_LOCATION", "INSURANCE", "ETHNICITY"),
    "PATIENTS": ("SUBJECT_ID", "GENDER", "DOB", "DOD"),
    "DIAGNOSES_ICD": ("SUBJECT_ID", "HADM_ID", "SEQ_NUM", "ICD9_CODE"),
    "D_ICD_DIAGNOSES": ("ICD9_CODE",),
    "CHARTEVENTS": ("SUBJECT_ID", "HADM_ID", "ICUSTAY_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUEUOM"),
    "LABEVENTS": ("SUBJECT_ID", "HADM_ID", "ITEMID", "CHARTTIME", "VALUE", "VALUEUOM"),
}


def parse_table(con: duckdb.DuckDBPyConnection, src: str, table: str) -> dict:
    """Rows and seconds of one table's parse."""
    rel = sources.read_sql(con, src, table)
    aggs = join(", ", (render("max(length({c}))", c=ident(c)) for c in READ_COLUMNS[table]))
    t0 = time.perf_counter()
    n = con.execute(render("SELECT count(*), {aggs} FROM {rel}", aggs=aggs, rel=rel)).fetchall()[0][0]
    return {"rows": int(n), "seconds": round(time.perf_counter() - t0, 3)}


def parse_floor(src: str, threads: int = 2) -> dict:
    con = duckdb.connect(":memory:", config={"threads": threads})
    out: dict = {"threads": threads, "tables": {}}
    for table in READ_COLUMNS:
        try:
            locate_table(src, table)
        except DataError:  # a table the input lacks is one build-tasks does not read either
            continue
        out["tables"][table] = parse_table(con, src, table)
    out["seconds"] = round(sum(t["seconds"] for t in out["tables"].values()), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mimic")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=None, help="write the result JSON here (default: stdout)")
    a = p.parse_args(argv)
    res = parse_floor(a.mimic, a.threads)
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
