"""Subject batches: bound a build's memory by working on a few thousand ICU stays at a time.

Everything after the events scan (validation, cleaning, episodes, labels, features) holds one
row per kept observation in DuckDB, so without batches a shard's peak RSS grows with its
patients (839 MiB at 3,000 release-density patients, 1,200 at 6,000). With ``--batch-stays S``
the shard's cohort subjects are cut into ``ceil(stays / S)`` batches by a subject hash of
their own (salted apart from the shard and split hashes, so batches of a shard stay
balanced); the scan, still one pass over CHARTEVENTS and LABEVENTS, writes the kept rows as
Parquet partitioned by batch, and the remaining phases run once per batch. A subject's rows
are never split, so every label and feature is what one pass computes; each batch's output
parts are appended, in batch order, into the shard's one part per split and task. One batch
(a small input) is exactly the unbatched build.
"""
from __future__ import annotations

import math
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from clinical_ml.io import atomic_path
from clinical_ml.sql import Sql, ident, render
from clinical_ml.tasks.splits import hash_sql

_SALT_BATCH = 0x27D4EB2F
ROW_GROUP = 100_000


def count(con: duckdb.DuckDBPyConnection, batch_stays: int) -> int:
    """Batches for the cohort table ``stays``: one per ``batch_stays`` stays (0: one batch)."""
    if batch_stays <= 0:
        return 1
    n = con.execute("SELECT count(*) FROM stays").fetchall()[0][0]
    return max(1, math.ceil(int(n) / batch_stays))


def batch_sql(col: str, n_batches: int) -> Sql:
    """The batch of subject ``col`` (an SQL expression of this code); unreadable ids: batch 0."""
    return render("coalesce({h} % {n}, 0)", h=hash_sql(col, _SALT_BATCH), n=int(n_batches))


def select(con: duckdb.DuckDBPyConnection, batch: int, n_batches: int) -> None:
    """``stays`` := the batch's stays of ``stays_all`` (the whole shard's cohort)."""
    con.execute(render("CREATE OR REPLACE TEMP TABLE stays AS SELECT * FROM stays_all WHERE {b} = {i}",
                       b=batch_sql("subject_id", n_batches), i=int(batch)))


def batch_files(spill: Path, batch: int) -> list[str]:
    """The scan's Parquet files of one batch (DuckDB's hive layout ``batch=<i>/``), sorted."""
    return sorted(str(p) for p in (spill / f"batch={int(batch)}").glob("*.parquet"))


def append_parts(batch_roots: list[Path], rel: str, dest: Path) -> None:
    """``rel`` of every batch output folder, appended in batch order into ``dest`` (atomic),
    one row group at a time so merging needs no more memory than one group."""
    sources = [r / rel for r in batch_roots]
    schema = pq.read_schema(sources[0])
    with atomic_path(dest) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="zstd") as w:
            for src in sources:
                f = pq.ParquetFile(src)
                for g in range(f.num_row_groups):
                    w.write_table(f.read_row_group(g).cast(schema), row_group_size=ROW_GROUP)
    for src in sources:
        src.unlink()


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Free what one batch built before the next starts (DuckDB keeps temp tables in memory)."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND "
        "(table_name IN ('ep', 'stays_ep', 'subj_split', 'pub_split', 'points', 'feats', 'hourly', "
        "'hourly_counts') OR table_name LIKE 't\\_%' ESCAPE '\\')").fetchall()]
    for t in names:
        con.execute(render("DROP TABLE IF EXISTS {t}", t=ident(t)))
