"""Synthetic eras (``--later-fraction``): a later, MetaVision-era, older and sicker period; the
default output is what it was before the option existed."""
from __future__ import annotations

import gzip
import hashlib

import numpy as np
import pandas as pd
import pytest

from clinical_ml.mimic.loader import read_table
from clinical_ml.mimic.schema import SYNTH_TABLES
from clinical_ml.synth import cohort, generate as gen
from clinical_ml.synth.cohort import T2200
from clinical_ml.synth.vocab import CHART_ITEMS
from clinical_ml.tasks.variables import itemid_map

# sha256 over the decompressed tables and gold of generate(patients=12, seed=7, chunk=5), computed
# with the generator as it was before periods existed (commit ddf54f7): the default must not move.
DEFAULT_DIGEST = "2774c1d95e8fcb99364e58a8a5f604a3d7df162440a3a3638d21c3eda4a7127d"
LATER = pd.Timestamp(T2200, unit="s")


def _digest(root) -> str:
    h = hashlib.sha256()
    for t in SYNTH_TABLES:
        h.update(t.encode())
        h.update(gzip.decompress((root / f"{t}.csv.gz").read_bytes()))
    h.update((root / gen.GOLD).read_bytes())
    return h.hexdigest()


def _items(db: str) -> set[int]:
    return {i for d in CHART_ITEMS.values() for i, _ in d.get(db, [])}


@pytest.fixture(scope="module")
def eras(tmp_path_factory):
    out = tmp_path_factory.mktemp("eras") / "mimic"
    manifest = gen.generate(out, patients=40, seed=7, chunk=20, later_fraction=0.5)
    return out, manifest


def test_default_output_is_unchanged(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    m = gen.generate(a, patients=12, seed=7, chunk=5)
    gen.generate(b, patients=12, seed=7, chunk=5, later_fraction=0.0)
    assert _digest(a) == DEFAULT_DIGEST
    for name in SYNTH_TABLES:
        assert (a / f"{name}.csv.gz").read_bytes() == (b / f"{name}.csv.gz").read_bytes(), name
    assert "periods" not in m and "later_fraction" not in m


def test_later_period_is_metavision_older_and_later(eras):
    root, manifest = eras
    assert manifest["periods"]["early"]["patients"] == 20 and manifest["periods"]["later"]["patients"] == 20
    adm, icu = read_table(str(root), "ADMISSIONS"), read_table(str(root), "ICUSTAYS")
    pts, ce = read_table(str(root), "PATIENTS"), read_table(str(root), "CHARTEVENTS")
    later_subjects = set(pts["SUBJECT_ID"].sort_values().iloc[20:])
    assert set(adm.loc[adm["ADMITTIME"] >= LATER, "SUBJECT_ID"]) == later_subjects  # eras do not mix
    assert set(icu.loc[icu["INTIME"] >= LATER, "DBSOURCE"]) == {"metavision"}
    assert set(icu.loc[icu["INTIME"] < LATER, "DBSOURCE"]) == {"carevue"}
    later_stays = set(icu.loc[icu["INTIME"] >= LATER, "ICUSTAY_ID"])
    late = set(ce.loc[ce["ICUSTAY_ID"].isin(later_stays), "ITEMID"].astype(int))
    early = set(ce.loc[ce["ICUSTAY_ID"].isin(set(icu["ICUSTAY_ID"]) - later_stays), "ITEMID"].astype(int))
    assert late and late <= _items("metavision") and min(late) >= 220000  # MetaVision's 2xxxxx ids
    assert early and early <= _items("carevue")
    mapped = {r[0]: r[1] for r in itemid_map()}  # mimic3-benchmarks' itemid_to_variable_map
    assert late <= set(mapped) and {mapped[i] for i in late} >= {"Heart Rate", "Temperature", "Weight"}
    assert read_table(str(root), "INPUTEVENTS_MV")["SUBJECT_ID"].isin(later_subjects).all()
    later = adm["ADMITTIME"] >= LATER
    assert adm.loc[~later, "ADMITTIME"].max() < LATER <= adm.loc[later, "ADMITTIME"].min()


def test_later_case_mix_is_older_and_sicker():
    """The periods' populations, drawn without physiology (2,000 patients each: cheap)."""
    out = {}
    for period in (cohort.EARLY, cohort.LATER):
        rng, ids = np.random.default_rng(0), cohort.Ids()
        pts = []
        for _ in range(2000):
            pt, start = cohort.make_patient(rng, ids, period)
            cohort.make_history(rng, ids, pt, start)
            pts.append(pt)
        adms = [a for p in pts for a in p.admissions]
        out[period.name] = {"age": np.mean([p.age0 for p in pts]), "severity": np.mean([a.severity for a in adms]),
                            "mortality": np.mean([a.deathtime is not None for a in adms])}
    early, later = out["early"], out["later"]
    assert later["age"] > early["age"] + 5 and later["severity"] > early["severity"] + 0.3
    assert later["mortality"] > early["mortality"] * 1.4


def test_later_only_database_and_bad_fraction(tmp_path):
    m = gen.generate(tmp_path / "later", patients=6, seed=2, chunk=3, later_fraction=1.0)
    assert m["periods"]["early"]["patients"] == 0 and m["periods"]["later"]["patients"] == 6
    assert (read_table(str(tmp_path / "later"), "ADMISSIONS")["ADMITTIME"] >= LATER).all()
    with pytest.raises(ValueError, match=r"--later-fraction must be in \[0, 1\]"):
        gen.generate(tmp_path / "bad", patients=6, later_fraction=1.5)
