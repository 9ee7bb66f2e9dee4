"""Synthetic MIMIC-III: determinism, release layout, internal consistency, atomic output."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from clinical_ml.mimic.loader import read_table
from clinical_ml.mimic.schema import SYNTH_TABLES
from clinical_ml.synth import generate as gen
from clinical_ml.synth.vocab import CHART_ITEMS


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "mimic"
    gen.generate(out, patients=40, seed=7, chunk=15)  # several chunks
    return out


def _tables(root, *names):
    return {n: read_table(str(root), n) for n in names}


def test_same_seed_same_bytes_different_seed_differs(synth, tmp_path):
    again = tmp_path / "again"
    gen.generate(again, patients=40, seed=7, chunk=15)
    for name in SYNTH_TABLES:
        assert (synth / f"{name}.csv.gz").read_bytes() == (again / f"{name}.csv.gz").read_bytes(), name
    assert (synth / gen.GOLD).read_bytes() == (again / gen.GOLD).read_bytes()
    other = tmp_path / "other"
    gen.generate(other, patients=40, seed=8, chunk=15)
    a = read_table(str(synth), "PATIENTS")
    b = read_table(str(other), "PATIENTS")
    assert not a[["GENDER", "DOB"]].equals(b[["GENDER", "DOB"]])


def test_output_does_not_depend_on_workers(tmp_path):
    a, b = tmp_path / "one", tmp_path / "two"
    gen.generate(a, patients=25, seed=4, chunk=10, workers=1)
    gen.generate(b, patients=25, seed=4, chunk=10, workers=2)
    for p in sorted(a.rglob("*")):
        if p.is_file():
            assert p.read_bytes() == (b / p.relative_to(a)).read_bytes(), p.name


def test_gzip_header_has_no_name_or_mtime(synth):
    raw = (synth / "PATIENTS.csv.gz").read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08" and raw[3] & 0x08 == 0  # FNAME flag unset
    assert raw[4:8] == b"\0\0\0\0"  # mtime 0
    assert gzip.decompress(raw).startswith(b'"ROW_ID","SUBJECT_ID","GENDER"')


def test_ids_keys_and_times_are_consistent(synth):
    t = _tables(synth, "PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "CHARTEVENTS", "DIAGNOSES_ICD",
                "D_ICD_DIAGNOSES", "D_ITEMS", "LABEVENTS", "D_LABITEMS", "PRESCRIPTIONS")
    pts, adm, icu = t["PATIENTS"], t["ADMISSIONS"], t["ICUSTAYS"]
    assert pts["SUBJECT_ID"].is_unique and adm["HADM_ID"].is_unique and icu["ICUSTAY_ID"].is_unique
    assert set(adm["SUBJECT_ID"]) <= set(pts["SUBJECT_ID"]) and set(icu["HADM_ID"]) <= set(adm["HADM_ID"])
    for name, df in t.items():
        assert df["ROW_ID"].tolist() == list(range(1, len(df) + 1)), name
    m = icu.merge(adm, on=["SUBJECT_ID", "HADM_ID"])
    assert (m["INTIME"] >= m["ADMITTIME"]).all() and (m["OUTTIME"] <= m["DISCHTIME"]).all()
    assert np.allclose(m["LOS"], (m["OUTTIME"] - m["INTIME"]).dt.total_seconds() / 86400, atol=1e-3)
    assert adm["ADMITTIME"].dt.year.between(2100, 2210).all()
    # deaths: DEATHTIME <=> HOSPITAL_EXPIRE_FLAG, DOD_HOSP on the death date, DOD for all deaths
    dead = adm["HOSPITAL_EXPIRE_FLAG"] == 1
    assert (adm["DEATHTIME"].notna() == dead).all()
    assert (adm.loc[dead, "DISCHARGE_LOCATION"] == "DEAD/EXPIRED").all()
    pd_ = pts.set_index("SUBJECT_ID")
    for _, a in adm[dead].iterrows():
        p = pd_.loc[a["SUBJECT_ID"]]
        assert p["DOD_HOSP"] == a["DEATHTIME"].normalize() and p["EXPIRE_FLAG"] == 1
    assert ((pts["DOD"].notna()) == (pts["EXPIRE_FLAG"] == 1)).all()
    # events fall inside their stay and use dictionary items; codes are in the dictionaries
    ce = t["CHARTEVENTS"].dropna(subset=["ICUSTAY_ID"]).merge(icu[["ICUSTAY_ID", "INTIME", "OUTTIME"]], on="ICUSTAY_ID")
    slack = pd.Timedelta(minutes=30)
    assert ((ce["CHARTTIME"] >= ce["INTIME"] - slack) & (ce["CHARTTIME"] <= ce["OUTTIME"] + slack)).all()
    assert set(t["CHARTEVENTS"]["ITEMID"]) <= set(t["D_ITEMS"]["ITEMID"])
    assert set(t["LABEVENTS"]["ITEMID"]) <= set(t["D_LABITEMS"]["ITEMID"])
    assert set(t["DIAGNOSES_ICD"]["ICD9_CODE"]) <= set(t["D_ICD_DIAGNOSES"]["ICD9_CODE"])
    assert not t["DIAGNOSES_ICD"].duplicated(["HADM_ID", "ICD9_CODE"]).any()
    # both CareVue and MetaVision itemids, Fahrenheit temperatures present
    items = set(t["CHARTEVENTS"]["ITEMID"])
    assert {211, 220045} <= items and (items & {678, 223761})
    assert (t["LABEVENTS"]["HADM_ID"].isna()).any()  # outpatient labs


def test_transfers_and_icu_to_icu_moves(tmp_path):
    out = tmp_path / "m"
    gen.generate(out, patients=120, seed=3)
    icu = read_table(str(out), "ICUSTAYS")
    tr = read_table(str(out), "TRANSFERS")
    moved = icu["FIRST_CAREUNIT"] != icu["LAST_CAREUNIT"]
    assert moved.any() and (~moved).mean() > 0.9
    # mimic3-benchmarks keeps stays with one careunit and one ward: those must be most stays
    assert ((icu["FIRST_WARDID"] == icu["LAST_WARDID"]) == ~moved).all()
    assert set(tr["EVENTTYPE"]) == {"admit", "transfer", "discharge"}
    assert (tr.groupby("HADM_ID")["EVENTTYPE"].first() == "admit").all()
    adm = read_table(str(out), "ADMISSIONS")
    assert adm.groupby("SUBJECT_ID").size().max() > 1  # several admissions per patient


def test_gold_spans_match_note_text(synth):
    notes = read_table(str(synth), "NOTEEVENTS")
    gold = [json.loads(x) for x in (synth / gen.GOLD).read_text().splitlines()]
    assert [g["row_id"] for g in gold] == notes["ROW_ID"].tolist()
    from clinical_ml.notes.schema import annotation_errors, record_from_annotations
    from clinical_ml.synth import notes as notes_mod

    texts = dict(zip(notes["ROW_ID"], notes["TEXT"]))
    labels, negated = set(), 0
    for g in gold:
        text = texts[g["row_id"]]
        assert annotation_errors(g, text) == [], g["row_id"]
        for e in g["entities"]:
            assert text[e["start"]:e["end"]] == e["text"]
            labels.add(e["label"])
            negated += e["negated"]
        assert g["record"] == record_from_annotations(g["entities"], g["relations"])
    assert labels == {"MEDICATION", "DOSE", "ROUTE", "FREQUENCY", "PROBLEM", "TEST", "PROCEDURE"}
    assert labels == set(notes_mod.GOLD_LABELS)  # no FORM / DURATION in the synthetic gold
    assert negated > 0
    assert set(notes["CATEGORY"]) == {"Discharge summary", "Nursing", "Radiology"}


def test_notes_agree_with_structured_rows(synth):
    notes = read_table(str(synth), "NOTEEVENTS")
    rx = read_table(str(synth), "PRESCRIPTIONS")
    gold = {g["row_id"]: g for g in map(json.loads, (synth / gen.GOLD).read_text().splitlines())}
    from clinical_ml.synth.vocab import DRUGS

    names = {}
    for d in DRUGS.values():
        for n in (d.drug, *d.note_names):
            names.setdefault(n.lower(), set()).add(d.drug)
    checked = 0
    for _, n in notes[notes["CATEGORY"] == "Discharge summary"].iterrows():
        drugs = set(rx.loc[rx["HADM_ID"] == n["HADM_ID"], "DRUG"])
        for med in gold[n["ROW_ID"]]["record"]["medications"]:
            assert names[med["name"]] & drugs, (med, n["HADM_ID"])
            checked += 1
    assert checked > 20


def test_failed_run_writes_nothing(tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("simulated failure")

    monkeypatch.setattr(gen, "note_rows", boom)
    with pytest.raises(RuntimeError):
        gen.generate(tmp_path / "out", patients=5, seed=1)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.iterdir())  # no temporary folder left either


def test_cli_main(tmp_path, capsys):
    from clinical_ml import cli

    assert cli.main(["synth", "--out", str(tmp_path / "s"), "--patients", "3", "--seed", "2"]) == 0
    assert "CHARTEVENTS" in capsys.readouterr().out
    manifest = json.loads((tmp_path / "s" / "synth_manifest.json").read_text())
    assert manifest["patients"] == 3 and manifest["tables"]["PATIENTS"] == 3
