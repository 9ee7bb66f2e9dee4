"""Extractor model directories: the shared files, the schema check on load, and the import
graph of clinical_ml.extraction (artifact and generative must not import each other)."""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

import clinical_ml
from clinical_ml.io import DataError
from clinical_ml.notes.schema import ENTITY_LABELS, RELATION_TYPES, SCHEMA_VERSION

PACKAGE = Path(clinical_ml.__file__).parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """Modules of ``modules`` that ``path`` imports anywhere (lazy imports in functions too)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out.update(n for n in names if n in modules)
    return out


def test_no_import_cycles_in_extraction():
    files = [p for sub in ("extraction", "notes") for p in (PACKAGE / sub).glob("*.py")]
    names = {_module_name(p): p for p in files}
    graph = {m: _imports(p, set(names)) - {m} for m, p in names.items()}
    cycles = []

    def visit(m, path):
        for dep in graph[m]:
            if dep in path:
                cycles.append(path[path.index(dep):] + [dep])
            elif dep not in done:
                visit(dep, path + [dep])
        done.add(m)

    done: set[str] = set()
    for m in sorted(graph):
        if m not in done:
            visit(m, [m])
    assert not [c for c in cycles if any(".extraction" in m for m in c)], cycles
    assert "clinical_ml.extraction.artifact" not in graph["clinical_ml.extraction.generative"]


def test_rules_model_dir_records_the_schema(tmp_path):
    from clinical_ml.extraction import load
    from clinical_ml.extraction.artifact import save_rules
    from clinical_ml.extraction.rules import RulesExtractor

    save_rules(RulesExtractor(), tmp_path / "m", {"train_docs": 0})
    meta = json.loads((tmp_path / "m" / "metadata.json").read_text())
    schema = json.loads((tmp_path / "m" / "schema.json").read_text())
    assert meta["labels"] == schema["entity_labels"] == list(ENTITY_LABELS)
    assert schema["relation_types"] == list(RELATION_TYPES) and "FORM_OF" in RELATION_TYPES
    assert meta["schema_version"] == schema["version"] == SCHEMA_VERSION
    props = schema["record_schema"]["properties"]["medications"]["items"]["properties"]
    assert {"form", "duration"} <= set(props)
    assert load(tmp_path / "m").kind == "rules"


def test_encoder_from_an_older_label_set_is_refused_with_a_clear_error(tmp_path):
    from clinical_ml.extraction import load

    old = ["MEDICATION", "DOSE", "ROUTE", "FREQUENCY", "PROBLEM", "TEST", "PROCEDURE"]
    (tmp_path / "metadata.json").write_text(json.dumps(
        {"model_type": "extractor", "kind": "encoder", "base_model": "minilm", "labels": old,
         "schema_version": "1.0", "config": {}}))
    with pytest.raises(DataError, match=r"metadata\.json: this encoder was trained with labels .*schema 1\.0.*retrain"):
        load(tmp_path)
