"""Cohort: ICU stays kept by mimic3-benchmarks' ``extract_subjects.py``, in its order.

1. drop ICU stays with a transfer (first/last ward or care unit differ);
2. join admissions and patients (inner, on subject and admission);
3. keep admissions with exactly one remaining ICU stay (counted *after* step 1, as the
   reference does, so an admission whose second stay had a transfer keeps its first stay);
4. age at ICU admission >= 18, age = (INTIME - DOB) in 365-day years, negative ages -> 90.

Also derived as in the reference: in-hospital mortality (DOD or DEATHTIME within
[ADMITTIME, DISCHTIME]), in-unit mortality, LOS in hours (ICUSTAYS.LOS x 24), and the
subgroup columns (sex, age band, the reference's five ethnicity groups, insurance).
Rows whose keys or timestamps do not parse are dropped and counted, never silently.

With a data window (``window.Window``, build-tasks ``--data-window-start/--data-window-end``)
step 0 keeps only the ICU stays of admissions whose ADMITTIME is in the window (count
``data_window``); ``adm`` keeps every admission, for the readmission label.
"""
from __future__ import annotations

import duckdb

from clinical_ml.sql import Sql, ident, join, raw, render
from clinical_ml.tasks import sources
from clinical_ml.tasks.splits import shard_sql
from clinical_ml.tasks.window import Window


def shard_filter(col: str, num_shards: int, shard_index: int) -> Sql:
    """Rows of this shard; rows whose subject id is unreadable belong to shard 0 (counted once).
    ``col`` is an SQL expression written by this code."""
    if num_shards <= 1:
        return raw("TRUE")
    return render("({own} = {i} OR ({col} IS NULL AND {i} = 0))",
                  own=shard_sql(col, num_shards), i=int(shard_index), col=raw(col))


def _stage_counts(con: duckdb.DuckDBPyConnection, table: str) -> dict[str, int]:
    n = con.execute(render("SELECT count(DISTINCT icustay_id), count(DISTINCT hadm_id), "
                           "count(DISTINCT subject_id) FROM {t}", t=ident(table))).fetchall()[0]
    return {"icustays": int(n[0]), "admissions": int(n[1]), "subjects": int(n[2])}


# (table, SELECT list over its VARCHAR columns, columns that must parse)
_SPECS = {
    "icu_all": ("ICUSTAYS", """
        TRY_CAST(SUBJECT_ID AS BIGINT) AS subject_id, TRY_CAST(HADM_ID AS BIGINT) AS hadm_id,
        TRY_CAST(ICUSTAY_ID AS BIGINT) AS icustay_id, DBSOURCE AS dbsource,
        FIRST_CAREUNIT AS first_careunit, LAST_CAREUNIT AS last_careunit,
        TRY_CAST(FIRST_WARDID AS BIGINT) AS first_wardid, TRY_CAST(LAST_WARDID AS BIGINT) AS last_wardid,
        TRY_CAST(INTIME AS TIMESTAMP) AS intime, TRY_CAST(OUTTIME AS TIMESTAMP) AS outtime,
        TRY_CAST(LOS AS DOUBLE) AS los""",
                ["subject_id", "hadm_id", "icustay_id", "intime"]),
    "adm": ("ADMISSIONS", """
        TRY_CAST(SUBJECT_ID AS BIGINT) AS subject_id, TRY_CAST(HADM_ID AS BIGINT) AS hadm_id,
        TRY_CAST(ADMITTIME AS TIMESTAMP) AS admittime, TRY_CAST(DISCHTIME AS TIMESTAMP) AS dischtime,
        TRY_CAST(DEATHTIME AS TIMESTAMP) AS deathtime, ADMISSION_TYPE AS admission_type,
        DISCHARGE_LOCATION AS discharge_location, INSURANCE AS insurance,
        ETHNICITY AS ethnicity_raw""",
            ["subject_id", "hadm_id", "admittime", "dischtime"]),
    "pat": ("PATIENTS", """
        TRY_CAST(SUBJECT_ID AS BIGINT) AS subject_id, GENDER AS gender,
        TRY_CAST(DOB AS TIMESTAMP) AS dob, TRY_CAST(DOD AS TIMESTAMP) AS dod""",
            ["subject_id"]),
}


def load_tables(con: duckdb.DuckDBPyConnection, src: str, num_shards: int, shard_index: int) -> dict:
    """ICUSTAYS, ADMISSIONS, PATIENTS of this shard as typed temp tables; bad rows counted."""
    dropped: dict[str, int] = {}
    for name, (table, select, required) in _SPECS.items():
        rel = sources.read_sql(con, src, table)
        tmp, out = ident(name + "_raw"), ident(name)
        sources.run(con, render("CREATE OR REPLACE TEMP TABLE {tmp} AS SELECT {select} FROM {rel} WHERE {shard}",
                                tmp=tmp, select=raw(select), rel=rel,
                                shard=shard_filter("TRY_CAST(SUBJECT_ID AS BIGINT)", num_shards, shard_index)),
                    table)
        ok = join(" AND ", (render("{c} IS NOT NULL", c=ident(c)) for c in required))
        con.execute(render("CREATE OR REPLACE TEMP TABLE {out} AS SELECT * FROM {tmp} WHERE {ok}",
                           out=out, tmp=tmp, ok=ok))
        bad = con.execute(render("SELECT count(*) FROM {tmp} WHERE NOT ({ok})", tmp=tmp, ok=ok)).fetchall()[0][0]
        dropped[table.lower()] = int(bad)
        con.execute(render("DROP TABLE {tmp}", tmp=tmp))
    return {"rows_dropped_bad_keys_or_timestamps": dropped}


_ETHNICITY = """CASE split_part(split_part(replace(coalesce(ethnicity_raw, ''), ' OR ', '/'), ' - ', 1), '/', 1)
    WHEN 'ASIAN' THEN 'ASIAN' WHEN 'BLACK' THEN 'BLACK' WHEN 'CARIBBEAN ISLAND' THEN 'BLACK'
    WHEN 'HISPANIC' THEN 'HISPANIC' WHEN 'SOUTH AMERICAN' THEN 'HISPANIC'
    WHEN 'WHITE' THEN 'WHITE' WHEN 'MIDDLE EASTERN' THEN 'WHITE' WHEN 'PORTUGUESE' THEN 'WHITE'
    ELSE 'OTHER' END"""


def build_stays(con: duckdb.DuckDBPyConnection, window: Window | None = None) -> dict:
    """The cohort table ``stays`` and the reference's per-step counts."""
    counts = {"start": _stage_counts(con, "icu_all")}
    src = "icu_all"
    if window is not None and not window.is_open:  # first, so every later step sees the window only
        con.execute(render("""CREATE OR REPLACE TEMP TABLE s0 AS SELECT * FROM icu_all
            WHERE hadm_id IN (SELECT hadm_id FROM adm WHERE {inside})""", inside=window.predicate("admittime")))
        counts["data_window"] = _stage_counts(con, "s0")
        src = "s0"
    con.execute(render("""CREATE OR REPLACE TEMP TABLE s1 AS SELECT * FROM {src}
                   WHERE first_wardid = last_wardid AND first_careunit = last_careunit""", src=ident(src)))
    counts["remove_icu_transfers"] = _stage_counts(con, "s1")
    con.execute("""CREATE OR REPLACE TEMP TABLE s2 AS
                   SELECT s.*, a.* EXCLUDE (subject_id, hadm_id), p.* EXCLUDE (subject_id)
                   FROM s1 s JOIN adm a USING (subject_id, hadm_id) JOIN pat p USING (subject_id)""")
    counts["merge_admissions_patients"] = _stage_counts(con, "s2")
    con.execute("""CREATE OR REPLACE TEMP TABLE s3 AS SELECT * FROM s2 WHERE hadm_id IN
                   (SELECT hadm_id FROM s2 GROUP BY hadm_id HAVING count(icustay_id) = 1)""")
    counts["remove_multiple_stays_per_admission"] = _stage_counts(con, "s3")
    con.execute(render("""CREATE OR REPLACE TEMP TABLE stays AS
        WITH a AS (
            SELECT *, date_diff('second', dob, intime) / 3600.0 / 24.0 / 365.0 AS age_raw FROM s3)
        SELECT *,
            CASE WHEN age_raw < 0 THEN 90.0 ELSE age_raw END AS age_ref,
            CAST((dod IS NOT NULL AND admittime <= dod AND dischtime >= dod)
              OR (deathtime IS NOT NULL AND admittime <= deathtime AND dischtime >= deathtime) AS INTEGER) AS mortality,
            CAST((dod IS NOT NULL AND intime <= dod AND outtime >= dod)
              OR (deathtime IS NOT NULL AND intime <= deathtime AND outtime >= deathtime) AS INTEGER) AS mortality_inunit,
            los * 24.0 AS los_h,
            CASE WHEN deathtime IS NULL THEN 1e18
                 ELSE date_diff('microsecond', intime, deathtime) / 3.6e9 END AS lived_h,
            coalesce(gender, 'UNKNOWN') AS sex,
            {ethnicity} AS ethnicity,
        FROM a WHERE (CASE WHEN age_raw < 0 THEN 90.0 ELSE age_raw END) >= 18""", ethnicity=raw(_ETHNICITY)))
    con.execute("""ALTER TABLE stays ADD COLUMN age DOUBLE""")
    con.execute("""UPDATE stays SET age = least(age_ref, 90.0)""")
    con.execute("""ALTER TABLE stays ADD COLUMN age_band VARCHAR""")
    con.execute("""UPDATE stays SET age_band = CASE WHEN age < 40 THEN '18-39' WHEN age < 60 THEN '40-59'
                   WHEN age < 80 THEN '60-79' ELSE '80+' END""")
    counts["remove_age_under_18"] = _stage_counts(con, "stays")
    for t in ("s1", "s2", "s3") + (("s0",) if src == "s0" else ()):
        con.execute(render("DROP TABLE {t}", t=ident(t)))
    return counts
