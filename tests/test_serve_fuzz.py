"""Fuzzing /invocations against its OpenAPI description: no input ever gets a 5xx.

Schemathesis generates schema-valid (positive) and schema-violating (negative) requests from
the app's own ``/openapi.json``; hypothesis adds raw byte bodies under every content type and
the named hostile cases (malformed JSON, wrong type, missing fields, NaN/inf, strings for
numbers, 10,000-row batches, empty body), each of which must be a 4xx with a message.
"""
from __future__ import annotations

import orjson
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from starlette.testclient import TestClient

from inference.app import build_app
from inference.demo_model import write_demo_outcome_model

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    d = write_demo_outcome_model(tmp_path_factory.mktemp("fuzz") / "m", n_features=5, n_pheno=2,
                                 n_rows=100, n_trees=3)
    return build_app([("A", str(d), 1.0)])


@pytest.fixture(scope="module")
def operation(app):
    return schemathesis.openapi.from_asgi("/openapi.json", app)["/invocations"]["POST"]


@pytest.fixture(scope="module")
def client(app):
    return TestClient(app)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_no_5xx(operation, mode):
    statuses: dict[int, int] = {}

    @FUZZ
    @given(data=st.data())
    def run(data):
        case = data.draw(operation.as_strategy(generation_mode=mode))
        r = case.call()
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.text
        if r.status_code >= 400:
            assert orjson.loads(r.content)["message"]

    run()
    if mode is GenerationMode.POSITIVE:
        assert statuses.get(200, 0) > 0, statuses  # valid requests really are answered


@FUZZ
@given(body=st.binary(max_size=2000),
       ctype=st.sampled_from(["application/json", "application/jsonlines", "text/csv", "text/plain",
                              "application/octet-stream", "", "text/csv; charset=latin-1"]))
def test_random_bodies_never_5xx(client, body, ctype):
    r = client.post("/invocations", content=body, headers={"content-type": ctype} if ctype else {})
    assert r.status_code < 500, r.text
    if r.status_code >= 400:
        assert orjson.loads(r.content)["message"]


_json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20), lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=10), inner, max_size=6),
    max_leaves=30)


@FUZZ
@given(value=_json_values)
def test_random_json_never_5xx(client, value):
    for wrapped in (value, {"instances": value}, {"instances": [value]}, {"series": value}):
        r = client.post("/invocations", content=orjson.dumps(wrapped),
                        headers={"content-type": "application/json"})
        assert r.status_code < 500, r.text


def _features(app):
    return next(iter(app.variants.values())).model.features


def test_named_hostile_inputs_are_4xx_with_a_message(app, client):
    feats = _features(app)
    good = {f: 1.0 for f in feats}
    n = len(feats)
    cases = {
        "malformed json": (b'{"instances": [{', "application/json"),
        "wrong content type": (orjson.dumps({"instances": [good]}), "application/x-www-form-urlencoded"),
        "missing fields": (orjson.dumps({"instances": [{feats[0]: 1.0}]}), "application/json"),
        "NaN": (b'{"instances": [[' + b",".join([b"NaN"] * n) + b"]]}", "application/json"),
        "inf": (b'{"instances": [[' + b",".join([b"Infinity"] * n) + b"]]}", "application/json"),
        "inf csv": (",".join(["inf"] * n).encode(), "text/csv"),
        "string for number": (orjson.dumps({"instances": [{**good, feats[0]: "high"}]}), "application/json"),
        "numeric string": (orjson.dumps({"instances": [{**good, feats[0]: "1.5"}]}), "application/json"),
        "10,000-row batch": (orjson.dumps({"instances": [good] * 10_000}), "application/json"),
        "10,000-row csv": (("\n".join([",".join(["1"] * n)] * 10_000)).encode(), "text/csv"),
        "empty body": (b"", "application/json"),
        "empty jsonlines": (b"\n\n", "application/jsonlines"),
        "series without hours": (b'{"series": [{"heart_rate": 80}]}', "application/json"),
    }
    for name, (body, ctype) in cases.items():
        r = client.post("/invocations", content=body, headers={"content-type": ctype})
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert orjson.loads(r.content)["message"], name


@pytest.fixture(scope="module")
def extractor_app(tmp_path_factory):
    from clinical_ml.extraction.artifact import save_rules
    from clinical_ml.extraction.rules import RulesExtractor

    d = save_rules(RulesExtractor(), tmp_path_factory.mktemp("fuzz-ext") / "rules")
    return build_app([("A", str(d), 1.0)])


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_extractor_schemathesis_no_5xx(extractor_app, mode):
    op = schemathesis.openapi.from_asgi("/openapi.json", extractor_app)["/invocations"]["POST"]
    statuses: dict[int, int] = {}

    @settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
    @given(data=st.data())
    def run(data):
        r = data.draw(op.as_strategy(generation_mode=mode)).call()
        statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
        assert r.status_code < 500, r.text

    run()
    if mode is GenerationMode.POSITIVE:
        assert statuses.get(200, 0) > 0, statuses
