"""Subject batches: bound a build's memory by working on a few thousand ICU stays at a time.

Everything after the events scan (validation, cleaning, episodes, labels, features) holds one
row per kept observation in DuckDB, so without batches a shard's peak RSS grows with its
patients (839 MiB at 3,000 release-density patients, 1,200 at 6,000). With ``--batch-stays S``
the shard's cohort subjects are cut into ``ceil(stays / S)`` batches by a subject hash of
their own (salted apart from the shard and split hashes, so batches of a shard stay
balanced); the scan, still one pass over CHARTEVENTS and LABEVENTS, writes the kept rows as
Parquet partitioned by batch, and the remaining phases run once per batch. A subject's rows
are never split, so every label and feature is what one pass computes; each batch's output
rows are written, in batch order, into the shard's one part per split and task. One batch
(a small input) is exactly the unbatched build.
"""
from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

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


class PartWriters:
    """The shard's part files, open across batches: each batch's rows go from DuckDB (Arrow
    record batches) straight into the one zstd part per split and task, so batching writes
    every row once, as the unbatched ``COPY`` does. Temp files until ``close`` renames them."""

    def __init__(self, out: Path):
        self.out = out
        self._open: dict[str, tuple[Path, pq.ParquetWriter]] = {}

    def write(self, con: duckdb.DuckDBPyConnection, query: Sql, rel: str) -> None:
        reader = con.sql(str(query)).to_arrow_reader(ROW_GROUP)
        if rel not in self._open:
            final = self.out / rel
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
            # dictionary pages for the text columns only: trying them on 200 float columns
            # doubled the write time (and the files were larger)
            text = [f.name for f in reader.schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)]
            self._open[rel] = (tmp, pq.ParquetWriter(tmp, reader.schema, compression="zstd", use_dictionary=text))
        writer = self._open[rel][1]
        for rb in reader:
            if rb.num_rows:
                writer.write_table(pa.Table.from_batches([rb]).cast(writer.schema))

    def close(self, before_rename: Callable[[Path], None] = lambda p: None) -> list[Path]:
        """Close and rename every part into place (``before_rename(final)`` first, e.g. to
        remove stale parts); the final paths."""
        done = []
        for rel, (tmp, writer) in self._open.items():
            writer.close()
            final = self.out / rel
            before_rename(final)
            os.replace(tmp, final)
            done.append(final)
        self._open.clear()
        return done

    def abort(self) -> None:
        for tmp, writer in self._open.values():
            writer.close()
            tmp.unlink(missing_ok=True)
        self._open.clear()


def drop_batch_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Free what one batch built before the next starts (DuckDB keeps temp tables in memory)."""
    names = [r[0] for r in con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE temporary AND "
        "(table_name IN ('ep', 'stays_ep', 'subj_split', 'pub_split', 'points', 'feats', 'hourly', "
        "'hourly_counts') OR table_name LIKE 't\\_%' ESCAPE '\\')").fetchall()]
    for t in names:
        con.execute(render("DROP TABLE IF EXISTS {t}", t=ident(t)))
