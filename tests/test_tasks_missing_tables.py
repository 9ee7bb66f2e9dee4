"""Build what the tables allow: readmission needs no event tables; the other tasks are named,
with the tables they lack, and the exit status says whether anything was built."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from clinical_ml import cli
from clinical_ml.io import DataError, read_json
from clinical_ml.tasks.build import BuildConfig, build
from clinical_ml.tasks.features import feature_names
from clinical_ml.tasks.io import SPLITS, read_split
from conftest import shared_subdir
from processing import build_tasks  # noqa: F401 (logging set up at import, not inside capsys)
from tasks_tiny_mimic import write_tiny

EVENT_TASKS = ["ihm", "decomp", "los", "pheno"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("missing-tables")
    full = write_tiny(root / "full")
    no_chart = root / "no_chart"
    shutil.copytree(full, no_chart)
    (no_chart / "CHARTEVENTS.csv.gz").unlink()
    build(BuildConfig(mimic=str(full), out=str(root / "out-full-ref"), threads=1))  # every table
    return root, full, no_chart


def _readmit(out) -> pd.DataFrame:
    return pd.concat([read_split(out / s, "readmit") for s in SPLITS], ignore_index=True)


def _cli(argv, capsys) -> tuple[int, str, str]:
    rc = cli.main(argv)
    cap = capsys.readouterr()
    return rc, cap.out, cap.err


def test_without_chartevents_readmit_is_built_and_the_rest_named(tiny, capsys, caplog):
    root, full, no_chart = tiny
    out = root / "out-no-chart"
    rc, stdout, err = _cli(["build-tasks", "--mimic", str(no_chart), "--out", str(out), "--threads", "1"],
                           capsys)
    assert rc == 0 and "Traceback" not in err
    printed = json.loads(stdout.strip().splitlines()[-1])
    assert set(printed["rows"]["train"]) == {"readmit"}
    assert printed["not_built"] == {t: {"missing_tables": ["CHARTEVENTS"]} for t in EVENT_TASKS}
    [warning] = [r.getMessage() for r in caplog.records if "not building" in r.getMessage()]
    assert "ihm,decomp,los,pheno" in warning and "CHARTEVENTS" in warning and "building readmit" in warning
    m = read_json(out / "manifest.json")
    assert m["task_plan"]["built"] == ["readmit"] and m["task_plan"]["events_loaded"] is False
    assert m["events"] == {"loaded": False, "missing_tables": ["CHARTEVENTS"]}
    assert m["readmit"]["index_requires_icu_observation"] is False
    for split in SPLITS:  # only readmission (and the empty timeseries) written
        assert sorted(p.name for p in (out / split).iterdir() if p.is_dir()) == ["readmit", "timeseries"]
    r = _readmit(out).set_index("subject_id")
    # the labels come from ADMISSIONS alone: the edge cases keep their answers
    assert r.loc[900007, "y"] == 1 and r.loc[900008, "y"] == 0 and r.loc[900009, "y"] == 0
    assert r.loc[900010, "y"] == 0 and 900011 not in r.index and 900001 not in r.index
    # no events: every window is empty (count 0, statistics NULL); f_hours is the prediction time
    counts = [c for c in feature_names() if c.endswith("_count")]
    assert (r[counts] == 0).all().all()
    stats = [c for c in feature_names() if not c.endswith("_count") and c != "f_hours"]
    assert r[stats].isna().all().all() and r["f_hours"].notna().all()
    # index stays: every one of the full build, plus stays whose observations are unknown now
    with_events = _readmit(root / "out-full-ref").set_index("icustay_id")
    without = r.reset_index().set_index("icustay_id")
    assert set(with_events.index) <= set(without.index)
    assert (without.loc[with_events.index, "y"] == with_events["y"]).all()


def test_with_all_tables_readmit_alone_is_the_full_builds_readmit(tiny):
    root, full, _ = tiny
    build(BuildConfig(mimic=str(full), out=str(root / "out-readmit"), tasks=("readmit",), threads=1))
    for split in SPLITS:  # events still used when present: the same bytes as before
        a = (root / "out-full-ref" / split / "readmit" / "part-00000.parquet").read_bytes()
        b = (root / "out-readmit" / split / "readmit" / "part-00000.parquet").read_bytes()
        assert a == b
    m = read_json(root / "out-readmit" / "manifest.json")
    assert m["task_plan"] == {"built": ["readmit"], "not_built": {}, "events_loaded": True,
                              "absent_tables": []}
    assert m["readmit"]["index_requires_icu_observation"] is True
    r = _readmit(root / "out-readmit")
    assert np.nansum(r["f_heart_rate_all_count"].to_numpy()) > 0


def test_nothing_buildable_is_exit_2_naming_the_tables(tiny, capsys):
    root, _, no_chart = tiny
    rc, _, err = _cli(["build-tasks", "--mimic", str(no_chart), "--out", str(root / "none"),
                       "--tasks", "ihm,pheno"], capsys)
    assert rc == 2 and "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("clinical-ml build-tasks: error:")]
    assert "ihm needs CHARTEVENTS" in line and "pheno needs CHARTEVENTS" in line
    assert not (root / "none").exists()


def test_a_missing_cohort_table_is_a_data_error(tiny, tmp_path):
    _, full, _ = tiny
    src = tmp_path / "no_diag"
    shutil.copytree(full, src)
    (src / "DIAGNOSES_ICD.csv.gz").unlink()
    with pytest.raises(DataError, match="DIAGNOSES_ICD not found; every task needs"):
        build(BuildConfig(mimic=str(src), out=str(tmp_path / "o"), tasks=("readmit",), threads=1))


def test_public_demo_builds_readmission(shared_data, tmp_path, capsys):
    """The MIMIC-III demo has no CHARTEVENTS, LABEVENTS or INPUTEVENTS_CV."""
    demo = shared_subdir(shared_data, "mimic3-demo")
    rc, stdout, _ = _cli(["build-tasks", "--mimic", str(demo), "--out", str(tmp_path / "r"),
                          "--tasks", "readmit", "--threads", "1"], capsys)
    assert rc == 0
    rows = json.loads(stdout.strip().splitlines()[-1])["rows"]
    assert sum(rows[s]["readmit"] for s in SPLITS) > 0 and all(rows[s]["readmit"] >= 0 for s in SPLITS)
    assert all((tmp_path / "r" / s / "readmit" / "part-00000.parquet").is_file() for s in SPLITS)
    rc, stdout, _ = _cli(["build-tasks", "--mimic", str(demo), "--out", str(tmp_path / "all"),
                          "--threads", "1"], capsys)
    assert rc == 0
    printed = json.loads(stdout.strip().splitlines()[-1])
    assert printed["rows"] == rows
    assert printed["not_built"] == {t: {"missing_tables": ["CHARTEVENTS", "LABEVENTS"]} for t in EVENT_TASKS}
    rc, _, err = _cli(["build-tasks", "--mimic", str(demo), "--out", str(tmp_path / "x"), "--tasks", "ihm"],
                      capsys)
    assert rc == 2 and "ihm needs CHARTEVENTS, LABEVENTS" in err
