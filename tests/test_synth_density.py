"""``clinical-ml synth --density release``: MIMIC-III v1.4's rows per admission, the release's
note mix, benchmark rows (and so tasks and gold notes) identical to the default density's."""
from __future__ import annotations

import csv
import gzip
import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pytest

from clinical_ml.mimic.loader import read_table
from clinical_ml.mimic.schema import SYNTH_TABLES, table
from clinical_ml.synth import cohort, generate as gen, release
from clinical_ml.synth.release import RATES, RELEASE, RELEASE_NOTES
from clinical_ml.synth.vocab import CHART_ITEMS, DATA, INPUT_ITEMS, LAB_ITEMS, OUTPUT_ITEMS
from clinical_ml.tasks.variables import itemid_map

ARGS = dict(patients=150, seed=11, chunk=50)
UNCHANGED = ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "TRANSFERS", "SERVICES", "DIAGNOSES_ICD", "PROCEDURES_ICD",
             "D_ICD_DIAGNOSES", "D_ICD_PROCEDURES")


@pytest.fixture(scope="module")
def dbs(tmp_path_factory):
    root = tmp_path_factory.mktemp("density")
    manifests = {d: gen.generate(root / d, density=d, **ARGS) for d in release.DENSITIES}
    return {d: root / d for d in release.DENSITIES}, manifests


@pytest.fixture(scope="module")
def cohort_draw():
    """5,000 default-period patients without physiology (fast): the cohort the rates assume."""
    rng, ids = np.random.default_rng(5), cohort.Ids()
    pts = []
    for _ in range(5000):
        pt, start = cohort.make_patient(rng, ids)
        cohort.make_history(rng, ids, pt, start)
        pts.append(pt)
    return pts


def _raw(root, name: str) -> pa.Table:
    """A table's cells exactly as written (strings; fast: the event tables are large here)."""
    convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in table(name).names},
                                   strings_can_be_null=False)
    return pacsv.read_csv(root / f"{name}.csv.gz", parse_options=pacsv.ParseOptions(newlines_in_values=True),
                          convert_options=convert)


def _filler_ids() -> dict[str, set[int]]:
    out: dict[str, set[int]] = {}
    with open(DATA / "release_items.csv", newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            out.setdefault(r["TABLE"], set()).add(int(r["ITEMID"]))
    return out


def test_rates_are_the_release_counts_per_admission():
    adm = RELEASE["ADMISSIONS"]
    assert sum(RELEASE_NOTES.values()) == RELEASE["NOTEEVENTS"]
    assert sum(release.NOTE_RATES.values()) * adm == pytest.approx(RELEASE["NOTEEVENTS"])
    assert RATES["CHARTEVENTS"] * adm == pytest.approx(RELEASE["CHARTEVENTS"])
    share = release.CAREVUE_SHARE
    assert RATES["INPUTEVENTS_CV"] * adm * share == pytest.approx(RELEASE["INPUTEVENTS_CV"])
    assert RATES["INPUTEVENTS_MV"] * adm * (1 - share) == pytest.approx(RELEASE["INPUTEVENTS_MV"])


def test_cohort_constants_and_cohort_tables_are_release_like(cohort_draw):
    adms = [(p, a) for p in cohort_draw for a in p.admissions]
    icu = np.mean([sum(s.los_days for s in a.stays) for _, a in adms])
    hosp = np.mean([(a.dischtime - a.admittime) / cohort.DAY for _, a in adms])
    assert icu == pytest.approx(release.MEAN_ICU_DAYS, rel=0.05)
    assert hosp == pytest.approx(release.MEAN_HOSP_DAYS, rel=0.05)
    assert np.mean([p.dbsource == "carevue" for p, _ in adms]) == pytest.approx(release.CAREVUE_SHARE, abs=0.02)
    per_patient = len(adms) / len(cohort_draw), sum(len(a.stays) for _, a in adms) / len(cohort_draw)
    assert per_patient[0] == pytest.approx(RELEASE["ADMISSIONS"] / RELEASE["PATIENTS"], rel=0.10)
    assert per_patient[1] == pytest.approx(RELEASE["ICUSTAYS"] / RELEASE["PATIENTS"], rel=0.10)


def test_rows_per_admission_and_per_patient_are_the_releases(dbs, cohort_draw):
    roots, manifests = dbs
    counts = manifests["release"]["tables"]
    icu = read_table(str(roots["release"]), "ICUSTAYS")
    by_db = icu.groupby("DBSOURCE")["HADM_ID"].nunique()
    adm_per_patient = sum(len(p.admissions) for p in cohort_draw) / len(cohort_draw)
    for t in ("CHARTEVENTS", "LABEVENTS", "OUTPUTEVENTS", "PRESCRIPTIONS", "NOTEEVENTS", "INPUTEVENTS_CV"):
        n_adm = by_db["carevue"] if t == "INPUTEVENTS_CV" else counts["ADMISSIONS"]
        rate = counts[t] / n_adm
        want = RATES.get(t, RELEASE[t] / RELEASE["ADMISSIONS"])
        assert rate == pytest.approx(want, rel=0.10), t
        share = release.CAREVUE_SHARE if t == "INPUTEVENTS_CV" else 1.0
        # the full size: the cohort's admissions per patient times the rate, vs the release per patient
        assert rate * share * adm_per_patient == pytest.approx(RELEASE[t] / RELEASE["PATIENTS"], rel=0.10), t
    # MetaVision inputs: the benchmark's hourly drips alone are ~145 rows per MetaVision admission
    # (the release: 137), so filler only tops up the chunks that fall short
    # (the release: 137), so filler only tops these stays up to the release's expectation
    mv = icu[icu["DBSOURCE"] == "metavision"]
    n_stays = mv.groupby("HADM_ID")["ICUSTAY_ID"].transform("size")
    w = release.FIXED_SHARE / n_stays + (1 - release.FIXED_SHARE) * mv["LOS"] / release.MEAN_ICU_DAYS
    expected, bench = RATES["INPUTEVENTS_MV"] * w.sum(), manifests["benchmark"]["tables"]["INPUTEVENTS_MV"]
    assert max(bench, 0.9 * expected) <= counts["INPUTEVENTS_MV"] <= 1.1 * max(bench, expected)


def test_note_categories_follow_the_release_mix(dbs):
    roots, _ = dbs
    notes = read_table(str(roots["release"]), "NOTEEVENTS")
    share = notes["CATEGORY"].value_counts(normalize=True)
    total = sum(RELEASE_NOTES.values())
    assert set(share.index) <= set(RELEASE_NOTES)
    for cat, n in RELEASE_NOTES.items():
        if n / total >= 0.05:  # Nursing/other, Radiology, Nursing, ECG, Physician
            assert share[cat] == pytest.approx(n / total, rel=0.10), cat
        elif n / total >= 0.01:
            assert share[cat] == pytest.approx(n / total, rel=0.35), cat
    gold = [json.loads(x) for x in (roots["release"] / gen.GOLD).read_text().splitlines()]
    assert [g["row_id"] for g in gold] == notes["ROW_ID"].tolist()
    assert [g["category"] for g in gold] == notes["CATEGORY"].tolist()
    filler = [g for g in gold if g.get("annotated_labels") == []]
    assert filler and all(not g["entities"] and not g["relations"] for g in filler)


def test_benchmark_rows_are_those_of_the_default_density(dbs):
    roots, manifests = dbs
    a, b = roots["benchmark"], roots["release"]
    for t in UNCHANGED:
        assert (a / f"{t}.csv.gz").read_bytes() == (b / f"{t}.csv.gz").read_bytes(), t
    filler = _filler_ids()
    for t in ("CHARTEVENTS", "LABEVENTS", "OUTPUTEVENTS", "INPUTEVENTS_MV", "NOTEEVENTS"):
        base, full = _raw(a, t).drop_columns(["ROW_ID"]), _raw(b, t)
        if t == "NOTEEVENTS":  # the benchmark's notes are the ones with span gold
            keep = ['"annotated_labels":[]' not in x for x in (b / gen.GOLD).read_text().splitlines()]
        else:
            keep = pc.invert(pc.is_in(pc.cast(full["ITEMID"], pa.int64()), pa.array(sorted(filler[t]))))
        assert full.filter(keep).drop_columns(["ROW_ID"]).equals(base), t
        assert full.num_rows > base.num_rows, t
    gold_a = [json.loads(x) for x in (a / gen.GOLD).read_text().splitlines()]
    gold_b = [json.loads(x) for x in (b / gen.GOLD).read_text().splitlines() if '"annotated_labels":[]' not in x]
    strip = lambda g: {k: v for k, v in g.items() if k not in ("id", "row_id")}  # noqa: E731
    assert list(map(strip, gold_a)) == list(map(strip, gold_b))
    d_a, d_b = read_table(str(a), "D_ITEMS"), read_table(str(b), "D_ITEMS")
    pd.testing.assert_frame_equal(d_b.iloc[:len(d_a)], d_a)
    assert "density" not in manifests["benchmark"] and manifests["release"]["density"] == "release"
    assert not (a / "INPUTEVENTS_CV.csv.gz").exists()


def test_filler_items_are_dictionary_items_outside_the_benchmark(dbs):
    roots, _ = dbs
    filler = _filler_ids()
    everything = set().union(*filler.values())
    assert not everything & {r[0] for r in itemid_map()}
    simulated = ({i for d in CHART_ITEMS.values() for items in d.values() for i, _ in items}
                 | set(OUTPUT_ITEMS.values()) | {v[0] for v in INPUT_ITEMS.values()} | {v[0] for v in LAB_ITEMS.values()})
    assert not everything & simulated
    d_items = read_table(str(roots["release"]), "D_ITEMS")
    used = {t: set(map(int, pc.unique(_raw(roots["release"], t)["ITEMID"]).to_pylist()))
            for t in ("CHARTEVENTS", "OUTPUTEVENTS", "INPUTEVENTS_CV", "INPUTEVENTS_MV", "LABEVENTS")}
    for t in ("CHARTEVENTS", "OUTPUTEVENTS", "INPUTEVENTS_CV", "INPUTEVENTS_MV"):
        assert used[t] <= set(d_items.loc[d_items["LINKSTO"] == t.lower(), "ITEMID"]), t
        assert used[t] & filler[t], t
    assert used["LABEVENTS"] <= set(read_table(str(roots["release"]), "D_LABITEMS")["ITEMID"])
    icu = read_table(str(roots["release"]), "ICUSTAYS")
    cv = read_table(str(roots["release"]), "INPUTEVENTS_CV").merge(icu, on=["SUBJECT_ID", "HADM_ID", "ICUSTAY_ID"])
    assert (cv["DBSOURCE"] == "carevue").all()
    assert ((cv["CHARTTIME"] >= cv["INTIME"]) & (cv["CHARTTIME"] <= cv["OUTTIME"])).all()


def test_tasks_and_note_datasets_are_the_same_at_both_densities(dbs, tmp_path):
    from clinical_ml.tasks.build import BuildConfig, build
    from clinical_ml.tasks.io import SPLITS, TASKS, read_split, read_timeseries
    from processing import build_notes

    roots, _ = dbs
    manifests = {d: build(BuildConfig(mimic=str(r), out=str(tmp_path / d), threads=1)) for d, r in roots.items()}
    assert manifests["benchmark"]["cohort"] == manifests["release"]["cohort"]
    for split in SPLITS:
        for task in (*TASKS, "timeseries"):
            read = (lambda d: read_timeseries(tmp_path / d / split)) if task == "timeseries" else \
                (lambda d: read_split(tmp_path / d / split, task))
            a, b = read("benchmark"), read("release")
            keys = [c for c in ("icustay_id", "hour", "prediction_hour") if c in a.columns]
            assert len(a), (split, task)
            pd.testing.assert_frame_equal(a.sort_values(keys).reset_index(drop=True),
                                          b.sort_values(keys).reset_index(drop=True))
    docs = {}
    for d, r in roots.items():
        splits, stats = build_notes.build(str(r), str(r / gen.GOLD), (0.8, 0.1, 0.1), 0)
        docs[d] = {s: sorted(x["text"] for x in v) for s, v in splits.items()}
    assert docs["benchmark"] == docs["release"]  # filler notes carry no gold: not in the splits


def test_release_output_does_not_depend_on_workers(tmp_path):
    a, b = tmp_path / "one", tmp_path / "two"
    gen.generate(a, patients=24, seed=4, chunk=8, workers=1, density="release")
    gen.generate(b, patients=24, seed=4, chunk=8, workers=2, density="release")
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for p in files:
        assert (a / p).read_bytes() == (b / p).read_bytes(), p
    assert gzip.decompress((a / "INPUTEVENTS_CV.csv.gz").read_bytes()).startswith(b'"ROW_ID","SUBJECT_ID"')


def test_cli_density_option(tmp_path, capsys):
    from clinical_ml import cli

    assert cli.main(["synth", "--out", str(tmp_path / "s"), "--patients", "3", "--density", "release"]) == 0
    out = capsys.readouterr().out
    assert "INPUTEVENTS_CV" in out and "release density" in out
    manifest = json.loads((tmp_path / "s" / "synth_manifest.json").read_text())
    assert manifest["density"] == "release" and set(manifest["tables"]) == set(SYNTH_TABLES) | {"INPUTEVENTS_CV"}
    with pytest.raises(ValueError, match="density"):
        gen.generate(tmp_path / "bad", patients=2, density="full")
