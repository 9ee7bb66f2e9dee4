"""validate-data: the demo passes (naming absent tables), requirements and bad tables fail clearly."""
from __future__ import annotations

import json

import pytest

from clinical_ml import cli
from clinical_ml.mimic import validate
from clinical_ml.synth.generate import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "mimic"
    generate(out, patients=20, seed=5)
    return out


@pytest.fixture()
def demo(shared_data):
    d = shared_data / "mimic3-demo"
    if not d.is_dir():
        pytest.skip(f"{d} not present")
    return d


def test_demo_is_usable_and_absent_tables_named(demo, capsys, tmp_path):
    rc = validate.main(["--mimic", str(demo), "--out", str(tmp_path / "r.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "tables found: 23 of 26" in out
    assert "absent release tables (3): CHARTEVENTS, INPUTEVENTS_CV, LABEVENTS" in out
    assert "unrecognised files (not release tables, ignored): LABEVENTS_partial.csv" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["ok"] and report["found"]["PATIENTS"]["rows"] == 100
    assert report["found"]["PATIENTS"]["quirks"]["age_over_89_shifted"] > 0


def test_demo_fails_when_chartevents_required(demo, capsys):
    rc = cli.main(["validate-data", "--mimic", str(demo), "--require", "CHARTEVENTS"])
    out = capsys.readouterr().out
    assert rc == 1
    assert "required table CHARTEVENTS not found" in out and "NOT usable" in out


def test_synthetic_is_usable_and_bad_table_is_named(synth, tmp_path, capsys):
    assert validate.main(["--mimic", str(synth), "--require", "CHARTEVENTS", "LABEVENTS", "NOTEEVENTS"]) == 0
    capsys.readouterr()
    (tmp_path / "PATIENTS.csv").write_text("row_id,subject_id,gender,dob\n1,2,M,2100-01-01 00:00:00\n")
    (tmp_path / "ADMISSIONS.csv").write_text("")
    rc = validate.main(["--mimic", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "table PATIENTS is missing column(s) DOD, DOD_HOSP, DOD_SSN, EXPIRE_FLAG" in out
    assert "ADMISSIONS.csv: empty file" in out


def test_reversed_intervals_are_reported(synth, tmp_path, capsys):
    import gzip
    import shutil

    for name in ("PATIENTS", "ADMISSIONS"):
        shutil.copy(synth / f"{name}.csv.gz", tmp_path / f"{name}.csv.gz")
    lines = gzip.decompress((tmp_path / "ADMISSIONS.csv.gz").read_bytes()).decode().splitlines()
    cells = lines[1].split(",")
    cells[3], cells[4] = cells[4], cells[3]  # ADMITTIME <-> DISCHTIME
    lines[1] = ",".join(cells)
    (tmp_path / "ADMISSIONS.csv.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
    assert validate.main(["--mimic", str(tmp_path)]) == 0  # a warning, not an error
    assert "1 row(s) with DISCHTIME before ADMITTIME" in capsys.readouterr().out


def test_unknown_required_table_and_missing_source(tmp_path, capsys):
    assert cli.main(["validate-data", "--mimic", str(tmp_path), "--require", "NOPE"]) == 2
    assert cli.main(["validate-data", "--mimic", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert "unknown MIMIC-III table 'NOPE'" in err and "source folder not found" in err
