"""The run-local command line and the demo, and the deploy script and its backends, import in
one direction only (the modules' static and lazy imports, read from their source)."""
from __future__ import annotations

from test_extraction_artifact import PACKAGE, _imports, _module_name

ROOT = PACKAGE.parent


def _graph(*folders: str) -> dict[str, set[str]]:
    files = [p for f in folders for p in (ROOT / f).glob("*.py")]
    names = {_module_name(p): p for p in files}
    return {m: _imports(p, set(names)) - {m} for m, p in names.items()}


def test_local_runner_and_demo_do_not_import_each_other():
    g = _graph("pipelines/local")
    assert "pipelines.local.runner" in g["pipelines.local.demo"]
    assert "pipelines.local.demo" not in g["pipelines.local.runner"]
    assert {"pipelines.local.runner", "pipelines.local.demo"} <= g["pipelines.local.cli"]


def test_deploy_backends_do_not_import_the_deploy_script():
    g = _graph("inference")
    for backend in ("inference.deploy_local", "inference.deploy_sagemaker"):
        assert backend in g["inference.deploy"]
        assert "inference.deploy" not in g[backend] and "inference.variants" in g[backend]
