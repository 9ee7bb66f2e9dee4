"""Events -> validated, cleaned, de-duplicated observations -> episodes.

Mirrors, in this order, mimic3-benchmarks':

- ``extract_subjects.py``: CHARTEVENTS and LABEVENTS rows of cohort subjects (OUTPUTEVENTS
  holds none of the 114 benchmark itemids, so it is not scanned);
- ``subject.read_events``: rows with an empty VALUE removed;
- ``validate_events.py``: rows without HADM_ID dropped; rows whose admission is not a cohort
  stay dropped; an empty ICUSTAY_ID recovered from the admission's stay; rows whose ICUSTAY_ID
  differs from the admission's stay dropped (every count kept in the manifest);
- ``map_itemids_to_variables`` + ``clean_events``: itemid -> variable, unit cleaning
  (``variables.clean_value_sql``), rows whose cleaned value is empty dropped;
- ``convert_events_to_timeseries``: one value per (chart time, variable): the largest value
  (the reference sorts by value and keeps the last);
- ``get_events_for_stay``: an observation belongs to a stay when its ICUSTAY_ID is the stay's
  or its chart time lies within [INTIME, OUTTIME]; hours are counted from INTIME;
- ``assemble_episodic_data``: the episode's label file is empty (so every task skips the
  stay) when its admission has no diagnosis row (with a code known to D_ICD_DIAGNOSES):
  ``has_diagnoses``.

Rows with an unreadable CHARTTIME or SUBJECT_ID are dropped and counted.
"""
from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from clinical_ml.sql import ident, join, literal, raw, render
from clinical_ml.tasks import sources
from clinical_ml.tasks.subject_batches import batch_files, batch_sql
from clinical_ml.tasks.cohort import shard_filter
from clinical_ml.tasks.variables import CLEANED_CATEGORICAL, categorical_value_sql, channels, clean_value_sql, itemid_map, ranges_sql

EPS = 1e-6


def _temp_table(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """``name`` as a temp table holding ``table``'s rows: values as data, never as SQL text."""
    con.register("_clinical_ml_arrow", table)
    try:
        con.execute(render("CREATE OR REPLACE TEMP TABLE {t} AS SELECT * FROM _clinical_ml_arrow", t=ident(name)))
    finally:
        con.unregister("_clinical_ml_arrow")


def load_var_map(con: duckdb.DuckDBPyConnection) -> None:
    rows = itemid_map()
    _temp_table(con, "var_map", pa.table({
        "itemid": pa.array([r[0] for r in rows], pa.int32()),
        "variable": pa.array([r[1] for r in rows], pa.string()),
        "label": pa.array([r[2] for r in rows], pa.string())}))
    chans = channels()
    _temp_table(con, "channels", pa.table({
        "vi": pa.array(range(len(chans)), pa.int32()),
        "variable": pa.array([c.variable for c in chans], pa.string()),
        "categorical": pa.array([c.categorical for c in chans], pa.bool_()),
        "name": pa.array([c.name for c in chans], pa.string())}))


FLUSH_ROWS = 5_000
SPILL_COMPRESSION = "uncompressed"  # a temporary file read once: zstd cost 3-6 s at 2,908 patients
EV_RAW_COLUMNS = ("subject_id BIGINT, hadm_id BIGINT, icustay_id BIGINT, charttime TIMESTAMP, "
                  "itemid BIGINT, value VARCHAR, uom VARCHAR, source VARCHAR")


def load_events(con: duckdb.DuckDBPyConnection, src: str, num_shards: int, shard_index: int,
                spill: Path | None = None, n_batches: int = 1) -> dict:
    """Benchmark-itemid rows of the shard's cohort subjects from CHARTEVENTS and LABEVENTS:
    the table ``ev_raw``, or with ``spill`` Parquet under it partitioned by subject batch
    (``subject_batches.py``; ``load_batch`` reads one back)."""
    parts = []
    for table, icu in (("CHARTEVENTS", "TRY_CAST(ICUSTAY_ID AS BIGINT)"), ("LABEVENTS", "NULL::BIGINT")):
        rel = sources.read_sql(con, src, table)
        sid = "TRY_CAST(SUBJECT_ID AS BIGINT)"
        parts.append(render("""SELECT {sid} AS subject_id, TRY_CAST(HADM_ID AS BIGINT) AS hadm_id,
                {icu} AS icustay_id, TRY_CAST(CHARTTIME AS TIMESTAMP) AS charttime,
                TRY_CAST(ITEMID AS BIGINT) AS itemid, VALUE AS value, VALUEUOM AS uom,
                {source} AS source
            FROM {rel}
            WHERE TRY_CAST(ITEMID AS BIGINT) IN (SELECT itemid FROM var_map)
              AND ({sid} IN (SELECT subject_id FROM stays)
                   OR ({sid} IS NULL AND {shard}))""",
                            sid=raw(sid), icu=raw(icu), source=literal(table.lower()), rel=rel,
                            shard=shard_filter("NULL", num_shards, shard_index)))
    union = join(" UNION ALL ", parts)
    if spill is None:
        sources.run(con, render("CREATE OR REPLACE TEMP TABLE ev_raw AS {parts}", parts=union),
                    "CHARTEVENTS/LABEVENTS")
        rows = raw("ev_raw")
    else:
        # DuckDB buffers each partition up to this many rows before writing it: the default
        # (~500 k) held 200 MB more than the unbatched scan at 3,000 release-density patients,
        # and 20 k still grew 4 MB per partition (433 -> 623 MiB from 4 to 48 batches); 5 k: 435
        con.execute(f"SET partitioned_write_flush_threshold={FLUSH_ROWS}")
        sources.run(con, render("""COPY (SELECT *, {b} AS batch FROM ({parts})) TO ?
                                   (FORMAT parquet, PARTITION_BY (batch), COMPRESSION {c})""",
                                b=batch_sql("subject_id", n_batches), parts=union, c=raw(SPILL_COMPRESSION)),
                    "CHARTEVENTS/LABEVENTS", [str(spill)])
        rows = render("read_parquet({glob}, hive_partitioning=true)", glob=literal(str(spill / "*" / "*.parquet")))
    c = con.execute(render("""SELECT count(*),
            count(*) FILTER (WHERE subject_id IS NULL),
            count(*) FILTER (WHERE subject_id IS NOT NULL AND value IS NULL),
            count(*) FILTER (WHERE subject_id IS NOT NULL AND value IS NOT NULL AND charttime IS NULL)
        FROM {rows}""", rows=rows)).fetchall()[0]
    return {"rows_benchmark_itemids": int(c[0]), "dropped_no_subject_id": int(c[1]),
            "dropped_empty_value": int(c[2]), "dropped_bad_charttime": int(c[3])}


def load_batch(con: duckdb.DuckDBPyConnection, spill: Path, batch: int) -> None:
    """``ev_raw`` := one batch of a spilled scan (empty when the batch kept no row)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE ev_raw ({EV_RAW_COLUMNS})")
    files = batch_files(spill, batch)
    if files:
        con.execute("INSERT INTO ev_raw SELECT * EXCLUDE (batch) FROM read_parquet(?, hive_partitioning=true)", [files])


def validate_events(con: duckdb.DuckDBPyConnection) -> dict:
    """``validate_events.py``: attach each event to its admission's cohort stay."""
    con.execute("""CREATE OR REPLACE TEMP TABLE ev AS SELECT * FROM ev_raw
                   WHERE subject_id IS NOT NULL AND value IS NOT NULL AND charttime IS NOT NULL""")
    con.execute("DROP TABLE ev_raw")
    con.execute("""CREATE OR REPLACE TEMP TABLE ev_j AS
        SELECT e.*, s.icustay_id AS stay_icustay_id, s.hadm_id IS NOT NULL AS in_stays
        FROM ev e LEFT JOIN (SELECT subject_id, hadm_id, icustay_id FROM stays) s
          ON e.hadm_id = s.hadm_id AND e.subject_id = s.subject_id""")
    c = con.execute("""SELECT count(*),
            count(*) FILTER (WHERE hadm_id IS NULL),
            count(*) FILTER (WHERE hadm_id IS NOT NULL AND NOT in_stays),
            count(*) FILTER (WHERE in_stays AND icustay_id IS NULL),
            count(*) FILTER (WHERE in_stays AND icustay_id IS NOT NULL AND icustay_id <> stay_icustay_id)
        FROM ev_j""").fetchall()[0]
    con.execute("""CREATE OR REPLACE TEMP TABLE ev_valid AS
        SELECT subject_id, stay_icustay_id AS icustay_id, charttime, itemid, value, uom
        FROM ev_j WHERE in_stays AND (icustay_id IS NULL OR icustay_id = stay_icustay_id)""")
    con.execute("DROP TABLE ev; DROP TABLE ev_j")
    return {"n_events": int(c[0]), "empty_hadm": int(c[1]), "no_hadm_in_stay": int(c[2]),
            "no_icustay": int(c[3]), "recovered": int(c[3]), "could_not_recover": 0,
            "icustay_missing_in_stays": int(c[4])}


def clean_events(con: duckdb.DuckDBPyConnection) -> dict:
    """Map itemids, clean units, drop empty values, de-duplicate per chart time and variable."""
    cleaned = join(", ", (literal(v) for v in CLEANED_CATEGORICAL))
    con.execute(render("""CREATE OR REPLACE TEMP TABLE ev_clean AS
        WITH m AS (
            SELECT e.subject_id, e.icustay_id, e.charttime, v.variable, c.categorical,
                   e.value, lower(coalesce(e.uom, '')) AS uom, lower(v.label) AS label
            FROM ev_valid e JOIN var_map v USING (itemid) JOIN channels c USING (variable))
        SELECT subject_id, icustay_id, charttime, variable, categorical,
               CASE WHEN categorical AND variable NOT IN ({cleaned}) THEN NULL
                    ELSE ({clean}) END AS value_num,
               CASE WHEN variable IN ({cleaned}) THEN printf('%.1f', ({clean}))
                    WHEN categorical THEN value END AS value_str
        FROM m""", cleaned=cleaned, clean=clean_value_sql()))
    con.execute("DROP TABLE ev_valid")
    per_var = con.execute("""SELECT variable, count(*) FILTER (WHERE value_num IS NULL AND value_str IS NULL)
                             FROM ev_clean GROUP BY variable ORDER BY variable""").fetchall()
    con.execute(render("""CREATE OR REPLACE TEMP TABLE obs AS
        WITH d AS (
            SELECT subject_id, icustay_id, charttime, variable, any_value(categorical) AS categorical,
                   max(value_num) AS value_num, max(value_str) AS value_str
            FROM ev_clean WHERE value_num IS NOT NULL OR value_str IS NOT NULL
            GROUP BY subject_id, icustay_id, charttime, variable)
        SELECT o.subject_id, o.icustay_id, o.charttime, o.variable, o.value_str,
               CASE WHEN o.categorical THEN ({codes})
                    ELSE o.value_num END AS value_num
        FROM d o""", codes=categorical_value_sql("o.variable", "o.value_str")))
    con.execute("DROP TABLE ev_clean")
    rng = con.execute(render("""WITH r(variable, outlier_low, valid_low, valid_high, outlier_high) AS ({ranges})
        SELECT o.variable,
            count(*) FILTER (WHERE value_num < outlier_low OR value_num > outlier_high),
            count(*) FILTER (WHERE (value_num >= outlier_low AND value_num < valid_low)
                              OR (value_num <= outlier_high AND value_num > valid_high)),
            count(*)
        FROM obs o JOIN r USING (variable) GROUP BY o.variable ORDER BY o.variable""", ranges=ranges_sql())).fetchall()
    return {
        "dropped_by_cleaning": {v: int(n) for v, n in per_var if n},
        "observations": {v: int(n) for v, _, _, n in rng},
        "outside_outlier_range_kept": {v: int(a) for v, a, _, _ in rng if a},
        "outside_valid_range_kept": {v: int(b) for v, _, b, _ in rng if b},
    }


def build_episodes(con: duckdb.DuckDBPyConnection) -> dict:
    """``ep``: observations per stay with hours since INTIME; ``stays_ep``: per-stay facts."""
    con.execute("""CREATE OR REPLACE TEMP TABLE ep AS
        SELECT s.icustay_id, o.variable, o.value_num, o.value_str,
               date_diff('microsecond', s.intime, o.charttime) / 3.6e9 AS hours
        FROM obs o JOIN stays s ON o.subject_id = s.subject_id
         AND (o.icustay_id = s.icustay_id OR (o.charttime >= s.intime AND o.charttime <= s.outtime))""")
    con.execute("DROP TABLE obs")
    con.execute(render("""CREATE OR REPLACE TEMP TABLE stays_ep AS
        WITH e AS (
            SELECT icustay_id, count(*) AS n_episode,
                   min(hours) FILTER (WHERE hours > -{eps} AND hours < los_h + {eps}) AS first_t,
                   count(*) FILTER (WHERE hours > -{eps} AND hours < los_h + {eps}) AS n_window,
                   count(*) FILTER (WHERE hours > -{eps} AND hours < 48 + {eps}) AS n_first48
            FROM ep JOIN (SELECT icustay_id, los_h FROM stays) USING (icustay_id)
            GROUP BY icustay_id)
        SELECT s.*, e.n_window, e.first_t, e.n_first48,
               (s.subject_id, s.hadm_id) IN (SELECT (subject_id, hadm_id) FROM diag_adm) AS has_diagnoses
        FROM stays s JOIN e USING (icustay_id)""", eps=EPS))
    n = con.execute("""SELECT count(*), count(*) FILTER (WHERE los_h IS NULL),
                       count(*) FILTER (WHERE los_h IS NOT NULL AND n_window = 0),
                       count(*) FILTER (WHERE NOT has_diagnoses) FROM stays_ep""").fetchall()[0]
    none = con.execute("SELECT count(*) FROM stays WHERE icustay_id NOT IN (SELECT icustay_id FROM stays_ep)").fetchall()[0][0]
    return {"episodes": int(n[0]), "stays_without_events": int(none),
            "episodes_missing_los": int(n[1]), "episodes_no_events_in_icu": int(n[2]),
            "episodes_without_diagnoses": int(n[3])}


def build_episodes_without_events(con: duckdb.DuckDBPyConnection) -> dict:
    """No event tables (``clinical_ml.tasks.tables``): ``stays_ep`` is every cohort stay with its
    diagnosis flag and unknown observation counts (NULL), ``ep`` an empty observation table, so
    the tasks that need no events (readmission) and the feature builder run unchanged."""
    con.execute("""CREATE OR REPLACE TEMP TABLE ep (icustay_id BIGINT, variable VARCHAR,
                   value_num DOUBLE, value_str VARCHAR, hours DOUBLE)""")
    con.execute("""CREATE OR REPLACE TEMP TABLE stays_ep AS
        SELECT s.*, NULL::BIGINT AS n_window, NULL::DOUBLE AS first_t, NULL::BIGINT AS n_first48,
               (s.subject_id, s.hadm_id) IN (SELECT (subject_id, hadm_id) FROM diag_adm) AS has_diagnoses
        FROM stays s""")
    n = con.execute("""SELECT count(*), count(*) FILTER (WHERE los_h IS NULL),
                       count(*) FILTER (WHERE NOT has_diagnoses) FROM stays_ep""").fetchall()[0]
    return {"episodes": int(n[0]), "stays_without_events": None, "episodes_missing_los": int(n[1]),
            "episodes_no_events_in_icu": None, "episodes_without_diagnoses": int(n[2]),
            "note": "no event tables: every cohort stay is an episode; observations unknown"}
