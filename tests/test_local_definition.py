"""The local runner executes the very definition `make definition` writes (no second DAG)."""
from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("pipelines.definition")
    from pipelines.commands import definition
    from pipelines.local.runner import build_definition

    out = tmp_path_factory.mktemp("def") / "definition.json"
    assert definition(["--out", str(out)]) == 0
    return build_definition(), json.loads(out.read_text())


def test_run_local_and_make_definition_agree(built):
    local, made = built
    assert local == made


def test_every_step_is_runnable_locally(built):
    from pipelines.local.engine import RUNNABLE, dependencies, flatten_steps, topological_order

    steps, branch = flatten_steps(built[0])
    order = topological_order(steps, dependencies(steps, branch))
    assert set(order) == set(steps)
    assert {s["Type"] for s in steps.values()} <= RUNNABLE
    for s in steps.values():  # every image has a local entry point
        if s["Type"] == "Processing":
            img = s["Arguments"]["AppSpecification"]["ImageUri"]
        elif s["Type"] == "Training":
            img = s["Arguments"]["AlgorithmSpecification"]["TrainingImage"]
        else:
            continue
        from pipelines.local.engine import parameter_values
        from pipelines.local.entrypoints import entry_point_for_image
        from pipelines.local.expressions import Context, resolve
        ctx = Context(parameters=parameter_values(built[0], {}), execution={})
        assert entry_point_for_image(resolve(img, ctx)) == "python"


def test_demo_names_missing_pieces(monkeypatch, tmp_path):
    from pipelines.local import demo

    monkeypatch.setattr(demo, "REQUIRED", {"inference/no_such_script.py": "a piece that has not landed"})
    assert demo.missing_pieces() == ["inference/no_such_script.py (a piece that has not landed)"]
    from pipelines.local.cli import main
    rc = main(["--demo", "--run-dir", str(tmp_path / "runs")])
    assert rc == 1
    summary = json.loads((tmp_path / "runs" / "latest" / "summary.json").read_text())
    assert "no_such_script.py" in summary["error"] and summary["missing"]


def test_demo_corpora_default_is_shared_data_when_present(monkeypatch, tmp_path):
    """make demo: CORPORA unset -> ../shared/data if it exists, else none; CORPORA=none forces
    synthetic only; --param AnnotatedCorporaUri wins; the run says which."""
    from clinical_ml.io import DataError
    from pipelines.local import demo
    from pipelines.local.runner import CORPORA_PARAMETER

    monkeypatch.setattr(demo, "SHARED_CORPORA", tmp_path / "shared" / "data")
    assert demo.choose_corpora(None, {}) == (
        "", "extractor: synthetic notes only (no ../shared/data; CORPORA= to add corpora)")
    (tmp_path / "shared" / "data").mkdir(parents=True)
    value, said = demo.choose_corpora(None, {})
    assert value == str((tmp_path / "shared" / "data").resolve())
    assert said == f"extractor: synthetic + real corpora from {value}"
    assert demo.choose_corpora("none", {}) == ("", "extractor: synthetic notes only (CORPORA=none)")
    (tmp_path / "mine").mkdir()
    assert demo.choose_corpora(str(tmp_path / "mine"), {})[0] == str((tmp_path / "mine").resolve())
    assert demo.choose_corpora("s3://b/corpora", {})[0] == "s3://b/corpora"
    assert demo.choose_corpora("none", {CORPORA_PARAMETER: "s3://b/c"})[0] == "s3://b/c"
    with pytest.raises(DataError, match="nowhere: no such folder"):
        demo.choose_corpora(str(tmp_path / "nowhere"), {})
