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
    from pipelines.local.runner import main
    rc = main(["--demo", "--run-dir", str(tmp_path / "runs")])
    assert rc == 1
    summary = json.loads((tmp_path / "runs" / "latest" / "summary.json").read_text())
    assert "no_such_script.py" in summary["error"] and summary["missing"]
