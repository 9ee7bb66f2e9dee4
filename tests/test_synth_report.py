"""synth-report: marginal rows with tolerances; identical sources pass the reference rows."""
from __future__ import annotations

import json

import pytest

from clinical_ml.synth import report
from clinical_ml.synth.generate import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "mimic"
    generate(out, patients=60, seed=9)
    return out


def test_same_source_passes_every_reference_row(synth, tmp_path, capsys):
    rows = report.compare(str(synth), str(synth))
    ref_rows = [r for r in rows if r.source == "reference"]
    assert len(ref_rows) >= 10 and all(r.ok for r in ref_rows)
    metrics = {r.metric for r in rows}
    assert {"in-hospital mortality", "ICU LOS median (days)", "male share",
            "DIAGNOSES_ICD: synthetic top-10 found in reference top-50"} <= metrics
    assert report.main(["--mimic", str(synth), "--reference", str(synth), "--out", str(tmp_path / "r.json")]) == 0
    out = capsys.readouterr().out
    assert "checked rows pass" in out and "PASS" in out
    assert json.loads((tmp_path / "r.json").read_text())["rows"]


def test_against_demo(synth, shared_data, capsys):
    demo = shared_data / "mimic3-demo"
    if not demo.is_dir():
        pytest.skip(f"{demo} not present")
    rows = report.compare(str(synth), str(demo))
    assert any(r.source == "reference lacks CHARTEVENTS" for r in rows)
    top = next(r for r in rows if r.metric.startswith("DIAGNOSES_ICD: synthetic top-10"))
    assert top.ok
    assert report.main(["--mimic", str(synth), "--reference", str(demo)]) == 0
