"""SQL built for DuckDB: one quoting helper (clinical_ml.sql) and bound parameters, so any path
works end to end: build-tasks, build-notes, baseline and drift with input and output folders
whose names hold a single quote, a space and a non-ASCII letter."""
from __future__ import annotations

import json
import math
from pathlib import Path

import duckdb
import pytest

from clinical_ml import sql
from clinical_ml.notes.datasets import read_jsonl

NASTY = "o'brien dir é"


# ---------------------------------------------------------------- the helper
def test_literal_quotes_strings_paths_and_numbers():
    assert sql.literal("o'brien") == "'o''brien'"
    assert sql.literal(Path("/data") / NASTY) == "'/data/o''brien dir é'"
    assert sql.literal(3) == "3" and sql.literal(2.5) == "2.5" and sql.literal(1e-6) == "1e-06"
    assert sql.literal(True) == "TRUE" and sql.literal(None) == "NULL"
    for bad, err in ((math.inf, ValueError), (math.nan, ValueError), ("a\x00b", ValueError),
                     (b"bytes", TypeError), ([1], TypeError)):
        with pytest.raises(err):
            sql.literal(bad)


def test_ident_quotes_names():
    assert sql.ident("t_ihm") == '"t_ihm"'
    assert sql.ident('we"ird') == '"we""ird"'
    for bad in ("", None, "a\x00"):
        with pytest.raises(ValueError):
            sql.ident(bad)


def test_render_takes_only_quoted_or_marked_parts():
    got = sql.render("SELECT {a} FROM {t} WHERE x = {n} AND y = {a}", a=sql.literal("it's"),
                     t=sql.ident("my table"), n=7)
    assert got == """SELECT 'it''s' FROM "my table" WHERE x = 7 AND y = 'it''s'"""
    assert isinstance(got, sql.Sql)
    with pytest.raises(TypeError, match=r"\{t\} got a str; wrap it"):
        sql.render("SELECT 1 FROM {t}", t="users; DROP TABLE x")
    with pytest.raises(KeyError, match="no value for"):
        sql.render("SELECT {a}")
    with pytest.raises(KeyError, match="unused parts"):
        sql.render("SELECT 1", a=1)
    # DuckDB struct literals are not placeholders
    assert sql.render("read_csv({p}, columns={'a': 'VARCHAR'})", p=sql.literal("f")) == \
        "read_csv('f', columns={'a': 'VARCHAR'})"
    with pytest.raises(TypeError):
        sql.join(", ", [sql.raw("a"), "b"])


@pytest.mark.parametrize("value", ["o'brien", "x'; DROP TABLE t; --", "é ü 漢字", "''", "a\"b\\c", "{p}"])
def test_quoted_values_round_trip_through_duckdb(value, tmp_path):
    con = duckdb.connect()
    con.execute(sql.render("CREATE TABLE {t} AS SELECT {v} AS v", t=sql.ident(value), v=sql.literal(value)))
    assert con.execute(sql.render("SELECT v FROM {t}", t=sql.ident(value))).fetchall() == [(value,)]
    path = tmp_path / f"{value.replace('/', '_')}.parquet"
    con.execute(sql.render("COPY (SELECT {v} AS v) TO {p} (FORMAT parquet)", v=sql.literal(value), p=sql.literal(path)))
    assert con.execute("SELECT v FROM read_parquet(?)", [str(path)]).fetchall() == [(value,)]


# ---------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def nasty(tmp_path_factory) -> Path:
    """``<tmp>/o'brien dir é/mimic``: a tiny synthetic MIMIC-III with notes and gold."""
    from clinical_ml.synth.generate import generate

    root = tmp_path_factory.mktemp("paths") / NASTY
    generate(root / "mimic", patients=6, seed=3, workers=1)
    return root


def test_build_tasks_and_build_notes_with_quote_space_and_non_ascii_paths(nasty):
    from processing import build_notes, build_tasks

    tasks = nasty / "task out"
    assert build_tasks.main(["--mimic", str(nasty / "mimic"), "--out", str(tasks)]) == 0
    manifest = json.loads((tasks / "manifest.json").read_text())
    assert manifest["cohort"]["remove_age_under_18"]["icustays"] > 0
    for rel in manifest["files"]:
        assert (tasks / rel).is_file(), rel
    assert duckdb.connect().execute("SELECT count(*) FROM read_parquet(?)",
                                    [str(tasks / "train" / "decomp" / "part-00000.parquet")]).fetchall()[0][0] > 0

    notes = nasty / "notes é'"
    assert build_notes.main(["--input", str(nasty / "mimic"), "--output", str(notes),
                             "--admissions", str(tasks)]) == 0
    docs = [d for s in ("train", "val", "test") for d in read_jsonl(notes / "notes" / f"{s}.jsonl")]
    assert docs and json.loads((notes / "notes" / "manifest.json").read_text())["notes"] == len(docs)
    assert list((notes / "notes" / "extract").glob("part-*.jsonl"))


def test_baseline_and_drift_with_quote_space_and_non_ascii_paths(nasty, monkeypatch):
    from monitoring import baseline, drift_job, scenarios
    from processing import build_tasks

    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.delenv("CLINICAL_ML_RUN_DIR", raising=False)
    tasks = nasty / "tasks for drift"
    assert build_tasks.main(["--mimic", str(nasty / "mimic"), "--out", str(tasks), "--tasks", "decomp"]) == 0
    base, cap, out = nasty / "base line", nasty / "cap'ture", nasty / "drift é"
    assert baseline.main(["--train", str(tasks / "train"), "--task", "decomp", "--output", str(base)]) == 0
    assert scenarios.main(["--reference", str(tasks / "train"), "--task", "decomp", "--scenario", "none",
                           "--rows", "40", "--start", "2026-01-01T00:00:00Z", "--out", str(cap)]) == 0
    assert drift_job.main(["--capture", str(cap), "--baseline", str(base), "--output", str(out),
                           "--window-end", "2026-01-01T01:00:00Z", "--metrics-file", str(nasty / "métrics.jsonl")]) == 0
    summary = json.loads((out / "drift_summary.json").read_text())
    assert summary["rows_analyzed"] == 40 and summary["status"] in ("ok", "drift")
