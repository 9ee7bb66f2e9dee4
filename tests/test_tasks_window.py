"""Data windows: build-tasks keeps exactly the admissions whose ADMITTIME is in [start, end)."""
from __future__ import annotations

from datetime import datetime

import pandas as pd
import pytest

from clinical_ml.io import DataError, read_json
from clinical_ml.tasks.build import BuildConfig, build
from clinical_ml.tasks.io import SPLITS, read_split
from clinical_ml.tasks.window import Window
from processing import build_tasks
from tasks_tiny_mimic import T0, Tiny, ts

START, END = 1000.0, 2000.0  # window in hours after T0


def _iso(hours: float) -> str:
    return ts(hours).replace(" ", "T") + "Z"


def _tiny() -> Tiny:
    t = Tiny()

    def stay(sid, hadm, admit, los_days=3.0, readmit_at=None):
        t.admission(sid, hadm, admit, admit + los_days * 24 + 20)
        t.icustay(sid, hadm, hadm + 100000, admit + 1, los_days)
        t.hr_series(sid, hadm, hadm + 100000, admit + 1, 1.0, los_days * 24 - 2)
        t.diagnosis(sid, hadm, 1, "486")
        if readmit_at is not None:
            t.admission(sid, hadm + 1, readmit_at, readmit_at + 48)

    for sid in (910001, 910002, 910003, 910004, 910005):
        t.patient(sid, age=60)
    stay(910001, 110010, 0)                         # before the window: out
    stay(910002, 110020, START)                     # admitted exactly at the start: in
    stay(910003, 110030, 1500, readmit_at=2080)     # in; readmitted after the window end: y = 1
    stay(910004, 110040, END)                       # admitted exactly at the end: out
    stay(910005, 110050, 200)                       # one patient, two windows: this one out,
    stay(910005, 110060, 1800)                      # this one in
    return t


@pytest.fixture(scope="module")
def mimic(tmp_path_factory):
    return _tiny().write(tmp_path_factory.mktemp("win") / "mimic")


def _hadms(out, task):
    return set(pd.concat([read_split(out / s, task) for s in SPLITS]).hadm_id)


def test_window_keeps_exactly_the_admissions_in_it(mimic, tmp_path):
    out = tmp_path / "out"
    m = build(BuildConfig(mimic=str(mimic), out=str(out), threads=1, tasks=("pheno", "readmit"),
                          data_window_start=_iso(START), data_window_end=_iso(END)))
    assert m["cohort"]["start"]["admissions"] == 6
    assert m["cohort"]["data_window"] == {"icustays": 3, "admissions": 3, "subjects": 3}
    assert _hadms(out, "pheno") == {110020, 110030, 110060}
    readmit = pd.concat([read_split(out / s, "readmit") for s in SPLITS]).set_index("hadm_id")
    assert readmit.loc[110030, "y"] == 1  # the outcome after the window end still labels it
    assert read_json(out / "manifest.json")["data_window"] == {
        "start": _iso(START), "end": _iso(END), "column": "ADMISSIONS.ADMITTIME", "interval": "[start, end)"}


def test_open_window_is_the_whole_input_and_script_flags(mimic, tmp_path):
    whole = build(BuildConfig(mimic=str(mimic), out=str(tmp_path / "all"), threads=1, tasks=("pheno",)))
    assert "data_window" not in whole["cohort"] and whole["data_window"]["start"] is None
    assert _hadms(tmp_path / "all", "pheno") == {110010, 110020, 110030, 110040, 110050, 110060}
    rc = build_tasks.main(["--mimic", str(mimic), "--out", str(tmp_path / "later"), "--threads", "1",
                           "--tasks", "pheno", "--data-window-start", _iso(START), "--data-window-end", "none"])
    assert rc == 0 and _hadms(tmp_path / "later", "pheno") == {110020, 110030, 110040, 110060}


def test_bad_or_empty_windows_are_data_errors(mimic, tmp_path):
    with pytest.raises(DataError, match="--data-window-start 'yesterday': expected an ISO 8601"):
        BuildConfig(mimic=str(mimic), out=str(tmp_path), data_window_start="yesterday").validate()
    with pytest.raises(DataError, match="must be after --data-window-start"):
        Window.parse(_iso(END), _iso(START))
    with pytest.raises(DataError, match="no ICU admission has ADMITTIME in the data window.*runs from 2150-01-01"):
        build(BuildConfig(mimic=str(mimic), out=str(tmp_path / "none"), threads=1, tasks=("pheno",),
                          data_window_start="2300-01-01", data_window_end="none"))


def test_window_parsing_is_utc_and_half_open():
    w = Window.parse("2150-02-11T17:00:00+01:00", "NONE")
    assert w.start == datetime(2150, 2, 11, 16) and w.end is None and not w.is_open
    assert w.start == T0 + pd.Timedelta(hours=START)
    assert Window.parse("none", "").is_open and str(Window.parse(None, None).predicate("x")) in ("TRUE",)


# --- the window a retraining uses (DriftGuard, clinical_ml.tasks.window.retraining_window) ---

def _champion(start="none", end="2200-01-01T00:00:00Z"):
    return {"ModelPackageGroupName": "clinical-ml-outcomes", "ModelPackageVersion": 1,
            "CustomerMetadataProperties": {"data_window_start": start, "data_window_end": end}}


def test_drift_retraining_trains_on_the_data_after_the_champions_window():
    from clinical_ml.tasks.window import retraining_window

    w = retraining_window("drift", "none", "none", _champion())
    assert (w["start"], w["end"], w["rule"]) == ("2200-01-01T00:00:00Z", "none", "after-champion")
    assert "version 1 of clinical-ml-outcomes" in w["reason"]


def test_parameters_win_and_other_triggers_use_everything():
    from clinical_ml.tasks.window import retraining_window

    w = retraining_window("drift", "2201-01-01", "none", _champion())
    assert (w["start"], w["end"], w["rule"]) == ("2201-01-01T00:00:00Z", "none", "parameters")
    assert retraining_window("manual", "none", "", _champion())["rule"] == "all"
    assert retraining_window("drift", None, None, None)["start"] == "none"
    open_champion = retraining_window("drift", "none", "none", _champion(end="none"))
    assert (open_champion["start"], open_champion["end"], open_champion["rule"]) == ("none", "none", "all")
    with pytest.raises(DataError, match="must be after"):
        retraining_window("manual", "2201-01-01", "2200-01-01", None)


def test_guard_writes_the_window_from_the_local_registry(tmp_path, monkeypatch):
    """monitoring/guard.py (local backend): a drift trigger asks the registry for the champion's
    window; the window is in guard.json for BuildTasks."""
    from clinical_ml.io import read_json
    from clinical_ml.registry import LocalRegistry
    from monitoring import guard

    reg = LocalRegistry(tmp_path / "registry")
    reg.create_model_package_group("g-outcomes")
    (tmp_path / "model").mkdir()
    reg.create_model_package("g-outcomes", tmp_path / "model", approval_status="Approved",
                             customer_metadata={"data_window_start": "none", "data_window_end": "2200-01-01T00:00:00Z"})
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    monkeypatch.setenv("CLINICAL_ML_REGISTRY", str(tmp_path / "registry"))
    out = tmp_path / "guard"
    args = ["--trigger", "drift", "--champion-group", "g-outcomes", "--ledger", str(tmp_path / "ledger.json"),
            "--execution-arn", "ex-1", "--output", str(out)]
    assert guard.main(args) == 0
    d = read_json(out / "guard.json")
    assert d["data_window"]["start"] == "2200-01-01T00:00:00Z" and d["data_window"]["end"] == "none"
    assert guard.main(["--trigger", "manual", *args[2:]]) == 0
    assert read_json(out / "guard.json")["data_window"]["rule"] == "all"
