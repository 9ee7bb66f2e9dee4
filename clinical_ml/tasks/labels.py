"""Task samples and labels (mimic3-benchmarks ``create_*.py``, plus 30-day readmission).

Each ``t_<task>`` temp table has ``subject_id, hadm_id, icustay_id, prediction_hour`` (hours
since ICU admission), ``tb`` (the integer hour bin that ends the feature window) and labels.
A stay takes part only if its episode has an observation inside the stay window
(-eps, LOS + eps) ("no events in ICU" in the reference), LOS is known and its admission has a
diagnosis (else the reference's episode label file is empty).

- ihm: LOS >= 48 h - eps and an observation in (-eps, 48 + eps); y = in-hospital mortality.
- decomp / los: sample times t = 0, 1, 2, ... h up to min(LOS, time of death) (decomp) or
  LOS (los), keeping t > 4 and t > first observation; decomp y = died in hospital and
  DEATHTIME - t < 24 h; los y = LOS - t (hours). ``sample_every`` H keeps the hours with
  t mod H == 0 (H = 1 is the reference); the manifest counts both.
- pheno: the 25 benchmark HCUP CCS groups of the admission's diagnoses.
- readmit: see docs/tasks.md ("Readmission"): index = cohort stay with an episode (without
  event tables: with a known LOS and a diagnosis), discharged alive, not transferred to
  another acute hospital; y = another admission of the subject that
  is not ELECTIVE with ADMITTIME in [DISCHTIME, DISCHTIME + 30 days].
"""
from __future__ import annotations

import duckdb

from clinical_ml.sql import Sql, ident, join, literal, raw, render
from clinical_ml.tasks.events import EPS
from clinical_ml.tasks.io import PHENOTYPE_COLUMNS, PHENOTYPES

READMIT_DAYS = 30
TRANSFER_LOCATIONS = ("SHORT TERM HOSPITAL",)


LOS_BUCKET_DAYS = (1, 2, 3, 4, 5, 6, 7, 8, 14)  # upper bounds; the 10th bucket is >= 14 days


def los_bucket(hours: float) -> int:
    """The benchmark's 10 LOS classes (``get_bin_custom``): <1 d, 1-2, ..., 7-8, 8-14, >=14 d."""
    for i, b in enumerate(LOS_BUCKET_DAYS):
        if hours < b * 24:
            return i
    return len(LOS_BUCKET_DAYS)


def los_bucket_sql(col: str) -> Sql:
    """The bucket of ``col`` (an SQL expression written by this code) as a TINYINT."""
    cases = join(" ", (render("WHEN {col} < {h} THEN {i}", col=raw(col), h=b * 24, i=i)
                       for i, b in enumerate(LOS_BUCKET_DAYS)))
    return render("CAST(CASE {cases} ELSE {n} END AS TINYINT)", cases=cases, n=len(LOS_BUCKET_DAYS))


_BASE = raw("los_h IS NOT NULL AND n_window > 0 AND has_diagnoses")


def build_ihm(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(render("""CREATE OR REPLACE TEMP TABLE t_ihm AS
        SELECT subject_id, hadm_id, icustay_id, 48.0 AS prediction_hour, 48 AS tb, mortality AS y
        FROM stays_ep WHERE los_h IS NOT NULL AND los_h >= 48 - {eps} AND n_first48 > 0
          AND has_diagnoses""", eps=EPS))


def build_hourly(con: duckdb.DuckDBPyConnection, every_sql: Sql) -> None:
    """``t_decomp`` and ``t_los`` (thinned by ``every_sql``, an SQL expression of ``split``),
    and ``hourly_counts``: the reference's (unthinned) sample counts."""
    con.execute(render("""CREATE OR REPLACE TEMP TABLE hourly AS
        WITH g AS (
            SELECT subject_id, hadm_id, icustay_id, los_h, lived_h, mortality, first_t, split,
                   unnest(range(0, CAST(floor(los_h + {eps}) AS BIGINT) + 1)) AS t
            FROM stays_ep JOIN subj_split USING (subject_id) WHERE {base})
        SELECT *, t < least(los_h, lived_h) + {eps} AS in_decomp FROM g
        WHERE t > 4 AND t > first_t""", eps=EPS, base=_BASE))
    con.execute("""CREATE OR REPLACE TEMP TABLE hourly_counts AS
        SELECT split, count(*) FILTER (WHERE in_decomp) AS decomp,
               count(*) FILTER (WHERE in_decomp AND mortality = 1 AND lived_h - t < 24.0) AS decomp_pos,
               count(*) AS los
        FROM hourly GROUP BY split""")
    con.execute(render("""CREATE OR REPLACE TEMP TABLE t_decomp AS
        SELECT subject_id, hadm_id, icustay_id, CAST(t AS DOUBLE) AS prediction_hour, t AS tb,
               CASE WHEN mortality = 0 THEN 0 ELSE CAST(lived_h - t < 24.0 AS INTEGER) END AS y
        FROM hourly WHERE in_decomp AND t % ({every}) = 0""", every=every_sql))
    con.execute(render("""CREATE OR REPLACE TEMP TABLE t_los AS
        SELECT subject_id, hadm_id, icustay_id, CAST(t AS DOUBLE) AS prediction_hour, t AS tb,
               los_h - t AS y
        FROM hourly WHERE t % ({every}) = 0""", every=every_sql))
    con.execute("DROP TABLE hourly")


def build_pheno(con: duckdb.DuckDBPyConnection) -> None:
    cols = join(", ", (render("CAST(coalesce(max(CAST(d.phenotype = {p} AS INTEGER)), 0) AS TINYINT) AS {c}",
                              p=literal(p), c=ident(c))
                       for p, c in zip(PHENOTYPES, PHENOTYPE_COLUMNS)))
    con.execute(render("""CREATE OR REPLACE TEMP TABLE t_pheno AS
        SELECT s.subject_id, s.hadm_id, s.icustay_id, s.los_h AS prediction_hour,
               CAST(ceil(s.los_h) AS BIGINT) AS tb, {cols}
        FROM stays_ep s LEFT JOIN diag_pheno d USING (subject_id, hadm_id)
        WHERE s.los_h IS NOT NULL AND s.n_window > 0 AND s.has_diagnoses
        GROUP BY s.subject_id, s.hadm_id, s.icustay_id, s.los_h""", cols=cols))


def build_readmit(con: duckdb.DuckDBPyConnection, events: bool = True) -> dict:
    """``t_readmit``; without event tables (``events=False``) the index stays are the cohort
    stays with a known LOS and a diagnosis, since an observation in the ICU cannot be checked."""
    transfer = join(", ", (literal(x) for x in TRANSFER_LOCATIONS))
    base = _BASE if events else raw("los_h IS NOT NULL AND has_diagnoses")
    con.execute(render("CREATE OR REPLACE TEMP TABLE readmit_index AS SELECT * FROM stays_ep WHERE {base}",
                       base=base))
    c = con.execute(render("""SELECT count(*), count(*) FILTER (WHERE mortality = 1),
        count(*) FILTER (WHERE mortality = 0 AND upper(coalesce(discharge_location, '')) IN ({transfer}))
        FROM readmit_index""", transfer=transfer)).fetchall()[0]
    con.execute(render("""CREATE OR REPLACE TEMP TABLE t_readmit AS
        SELECT s.subject_id, s.hadm_id, s.icustay_id,
               date_diff('microsecond', s.intime, s.dischtime) / 3.6e9 AS prediction_hour,
               CAST(ceil(s.los_h) AS BIGINT) AS tb,
               CAST(EXISTS (SELECT 1 FROM adm a WHERE a.subject_id = s.subject_id
                    AND a.hadm_id <> s.hadm_id AND a.admittime >= s.dischtime
                    AND a.admittime <= s.dischtime + INTERVAL {days} DAY
                    AND upper(coalesce(a.admission_type, '')) <> 'ELECTIVE') AS INTEGER) AS y,
               CAST(s.dod IS NOT NULL AND s.dod <= s.dischtime + INTERVAL {days} DAY AS INTEGER)
                   AS died_within_window
        FROM readmit_index s
        WHERE s.mortality = 0 AND upper(coalesce(s.discharge_location, '')) NOT IN ({transfer})""",
                       days=READMIT_DAYS, transfer=transfer))
    d = con.execute("""SELECT count(*) FILTER (WHERE died_within_window = 1 AND y = 0) FROM t_readmit""").fetchall()[0]
    con.execute("ALTER TABLE t_readmit DROP COLUMN died_within_window")
    con.execute("DROP TABLE readmit_index")
    return {"index_requires_icu_observation": events,
            "candidate_stays": int(c[0]), "excluded_died_in_hospital": int(c[1]),
            "excluded_transfer_to_acute_hospital": int(c[2]),
            "died_after_discharge_within_30d_without_readmission_labelled_0": int(d[0])}
