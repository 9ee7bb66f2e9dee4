"""annotation_errors' fast validity check (jsonschema_rs) must agree with jsonschema's own."""
from __future__ import annotations

import copy

import pytest

from clinical_ml.notes import schema

def _valid() -> dict:
    ents = [{"start": 0, "end": 7, "label": "MEDICATION", "text": "Aspirin", "negated": False},
            {"start": 8, "end": 13, "label": "DOSE", "text": "81 mg", "negated": False}]
    rels = [{"head": 1, "tail": 0, "type": "DOSE_OF"}]
    return {"id": "n1", "text": "Aspirin 81 mg daily.", "entities": ents, "relations": rels,
            "record": schema.record_from_annotations(ents, rels)}


def _variants():
    VALID = _valid()
    yield VALID
    for mutate in (lambda d: d["entities"][0].update(label="NOPE"), lambda d: d["entities"][0].update(start=-1),
                   lambda d: d.pop("entities"), lambda d: d.update(relations=[{"head": "x"}]),
                   lambda d: d["entities"][1].pop("label"), lambda d: d.update(entities="none")):
        d = copy.deepcopy(_valid())
        mutate(d)
        yield d


@pytest.mark.skipif(schema._annotation_is_valid is None, reason="jsonschema_rs not installed: no fast path")
def test_fast_path_agrees_with_jsonschema():
    seen = set()
    for doc in _variants():
        slow_ok = not list(schema._annotation_validator.iter_errors(doc))
        assert schema._annotation_is_valid(doc) == slow_ok, doc
        seen.add(slow_ok)
        # and the public function still reports jsonschema's messages for invalid documents
        assert (schema.annotation_errors(doc, doc.get("text")) == []) == slow_ok
    assert seen == {True, False}
