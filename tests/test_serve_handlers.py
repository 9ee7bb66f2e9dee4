"""SageMaker handlers: round trips for every content type, strict validation, both model kinds."""
from __future__ import annotations

import csv
import io
import json

import numpy as np
import orjson
import pytest

from inference import handlers
from inference.codecs import RequestError
from inference.demo_model import write_demo_outcome_model


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return write_demo_outcome_model(tmp_path_factory.mktemp("serve") / "model", n_features=8,
                                    n_pheno=3, n_rows=150, n_trees=4)


@pytest.fixture(scope="module")
def model(model_dir):
    return handlers.model_fn(model_dir)


@pytest.fixture(scope="module")
def rows(model):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, len(model.features))).round(3)
    x[1, 2] = np.nan
    return x


def _as_dicts(model, x):
    return [{f: (None if np.isnan(v) else float(v)) for f, v in zip(model.features, r)} for r in x]


def _reference(model, x):
    """What XGBoost itself predicts for these rows (the contract the server must keep)."""
    import xgboost as xgb

    out = {}
    for task, spec in model.tasks.items():
        b = xgb.Booster()
        b.load_model(model.dir / task / "xgboost.json")
        p = b.predict(xgb.DMatrix(x.astype(np.float32), missing=np.nan))
        out[task] = np.expm1(p) if spec["type"] == "regression" else p
    return out


def test_json_round_trip_matches_xgboost(model, rows):
    body = orjson.dumps({"instances": _as_dicts(model, rows)})
    out, ctype = handlers.transform(model, body, "application/json", "application/json")
    assert ctype == "application/json"
    doc = json.loads(out)
    assert doc["model_version"] == model.version and doc["model_type"] == "outcomes"
    ref = _reference(model, rows)
    assert len(doc["predictions"]) == len(rows)
    for i, rec in enumerate(doc["predictions"]):
        assert rec["ihm"] == pytest.approx(float(ref["ihm"][i]), rel=1e-5)
        assert rec["los"] == pytest.approx(float(ref["los"][i]), rel=1e-5)
        assert list(rec["pheno"]) == model.tasks["pheno"]["labels"]
        assert list(rec["pheno"].values()) == pytest.approx(ref["pheno"][i].tolist(), rel=1e-5)
        assert 0 <= rec["readmit"] <= 1


def test_every_content_type_gives_the_same_predictions(model, rows):
    dicts = _as_dicts(model, rows)
    arrays = [[None if np.isnan(v) else float(v) for v in r] for r in rows]
    csv_body = "\n".join(",".join("" if np.isnan(v) else repr(float(v)) for v in r) for r in rows)
    bodies = {
        ("application/json", "objects"): orjson.dumps({"instances": dicts}),
        ("application/json", "arrays"): orjson.dumps({"instances": arrays}),
        ("application/json", "bare list"): orjson.dumps(dicts),
        ("application/jsonlines", "objects"): b"\n".join(orjson.dumps(d) for d in dicts),
        ("application/jsonlines", "arrays"): b"\n".join(orjson.dumps(a) for a in arrays),
        ("text/csv", "rows"): csv_body.encode(),
        ("text/csv; charset=utf-8", "header"): (",".join(model.features) + "\n" + csv_body).encode(),
    }
    results = {}
    for (ctype, how), body in bodies.items():
        out, _ = handlers.transform(model, body, ctype, "application/jsonlines")
        results[(ctype, how)] = [json.loads(line) for line in out.decode().splitlines()]
    first = next(iter(results.values()))
    assert len(first) == len(rows)
    for key, recs in results.items():
        assert recs == first, key


def test_csv_output_has_one_line_per_row_in_column_order(model, rows):
    body = orjson.dumps({"instances": _as_dicts(model, rows)})
    out, ctype = handlers.transform(model, body, "application/json", "text/csv")
    assert ctype == "text/csv"
    lines = list(csv.reader(io.StringIO(out.decode())))
    assert len(lines) == len(rows) and all(len(r) == len(model.columns) for r in lines)
    doc = json.loads(handlers.transform(model, body, "application/json", "application/json")[0])
    pheno0 = model.columns.index(f"pheno.{model.tasks['pheno']['labels'][0]}")
    for line, rec in zip(lines, doc["predictions"]):
        assert float(line[model.columns.index("ihm")]) == pytest.approx(rec["ihm"])
        assert float(line[pheno0]) == pytest.approx(next(iter(rec["pheno"].values())))


def test_context_fields_are_ignored(model, rows):
    d = _as_dicts(model, rows[:1])[0]
    plain = handlers.transform(model, orjson.dumps({"instances": [d]}), "application/json", None)[0]
    extra = handlers.transform(model, orjson.dumps({"instances": [{**d, "icd9_code": "4280"}]}),
                               "application/json", None)[0]
    assert plain == extra


def test_ids_are_echoed_in_json(model, rows):
    dicts = _as_dicts(model, rows[:2])
    dicts[0]["id"] = "stay-1"
    doc = json.loads(handlers.transform(model, orjson.dumps({"instances": dicts}),
                                        "application/json", None)[0])
    assert doc["predictions"][0]["id"] == "stay-1" and "id" not in doc["predictions"][1]


@pytest.mark.parametrize("mutate, status, words", [
    (lambda d, f: d.pop(f[0]), 400, "missing feature"),
    (lambda d, f: d.update({"f_typo": d.pop(f[2])}), 400, "missing feature"),
    (lambda d, f: d.update({f[1]: "12"}), 400, "must be a number"),
    (lambda d, f: d.update({f[1]: True}), 400, "must be a number"),
    (lambda d, f: d.update({f[1]: [1.0]}), 400, "must be a number"),
    (lambda d, f: d.update({f[1]: 1e39}), 400, "float32"),
])
def test_bad_instances_are_4xx_with_a_message(model, rows, mutate, status, words):
    d = _as_dicts(model, rows[:1])[0]
    mutate(d, model.features)
    with pytest.raises(RequestError) as e:
        handlers.transform(model, orjson.dumps({"instances": [d]}), "application/json", None)
    assert e.value.status == status and words in e.value.message


@pytest.mark.parametrize("body, ctype, status, words", [
    (b"", "application/json", 400, "empty"),
    (b"   ", "text/csv", 400, "empty"),
    (b'{"instances": [', "application/json", 400, "malformed JSON"),
    (b'{"instances": [[NaN]]}', "application/json", 400, "NaN"),
    (b'{"instances": [[Infinity]]}', "application/json", 400, "malformed JSON"),
    (b'{"instances": [[1e400]]}', "application/json", 400, "malformed JSON"),
    (b'{"instances": []}', "application/json", 400, "empty"),
    (b'{"rows": []}', "application/json", 400, "instances"),
    (b'"hello"', "application/json", 400, "list"),
    (b"\xff\xfe", "text/csv", 400, "UTF-8"),
    (b"1,2,3", "text/csv", 400, "columns"),
    (b"{}", "text/html", 415, "unsupported Content-Type"),
    (b"{}", None, 415, "missing Content-Type"),
    (b"{}\n[", "application/jsonlines", 400, "line 2"),
])
def test_malformed_bodies_are_4xx(model, body, ctype, status, words):
    with pytest.raises(RequestError) as e:
        handlers.transform(model, body, ctype, None)
    assert e.value.status == status and words in e.value.message


def test_csv_non_finite_and_text_cells_rejected(model):
    n = len(model.features)
    for cell, words in (("inf", "finite"), ("nan", "finite"), ("abc", "not a number")):
        body = ",".join([cell] + ["1"] * (n - 1)).encode()
        with pytest.raises(RequestError) as e:
            handlers.transform(model, body, "text/csv", None)
        assert e.value.status == 400 and words in e.value.message


def test_batch_limit_is_413(model_dir):
    m = handlers.model_fn(model_dir, max_rows=100)
    body = ("\n".join(",".join(["1"] * len(m.features)) for _ in range(101))).encode()
    with pytest.raises(RequestError) as e:
        handlers.transform(m, body, "text/csv", None)
    assert e.value.status == 413 and "limit is 100" in e.value.message


def test_accept_negotiation(model, rows):
    body = orjson.dumps({"instances": _as_dicts(model, rows[:1])})
    assert handlers.transform(model, body, "application/json", "*/*")[1] == "application/json"
    assert handlers.transform(model, body, "application/json", "text/csv, */*")[1] == "text/csv"
    with pytest.raises(RequestError) as e:
        handlers.transform(model, body, "application/json", "image/png")
    assert e.value.status == 406


def test_model_fn_reads_tarball(model_dir, tmp_path, rows):
    from clinical_ml.io import make_model_tarball

    tar = make_model_tarball(model_dir, tmp_path / "model.tar.gz")
    m = handlers.model_fn(tar)
    assert m.kind == "outcomes" and m.features and set(m.tasks) == {"ihm", "decomp", "los", "pheno", "readmit"}


SERIES = [{"hour": h + 0.5, "heart_rate": 80 + h, "glascow_coma_scale_total": "15" if h % 2 else None}
          for h in range(30)]


def test_series_features_come_from_the_task_builder(tmp_path):
    pytest.importorskip("clinical_ml.tasks.features")
    from inference.series import features_from_series

    names = ["f_heart_rate_all_mean", "f_heart_rate_all_count", "f_heart_rate_12h_mean",
             "f_heart_rate_12h_count", "f_hours"]
    x = features_from_series(SERIES, names)
    assert x.tolist() == pytest.approx([94.5, 30, 103.5, 12, 30])


def test_series_request_equals_the_same_features_as_instances(tmp_path):
    pytest.importorskip("clinical_ml.tasks.features")
    m = handlers.model_fn(write_demo_outcome_model(tmp_path / "m", n_features=60, n_pheno=2,
                                                   n_rows=100, n_trees=3))
    assert m.featurize is not None
    a = json.loads(handlers.transform(m, orjson.dumps({"series": SERIES}), "application/json", None)[0])
    x = m.featurize(SERIES, m.features)
    inst = [None if np.isnan(v) else float(v) for v in x]
    b = json.loads(handlers.transform(m, orjson.dumps({"instances": [inst]}), "application/json", None)[0])
    assert a["predictions"] == b["predictions"]
    two = json.loads(handlers.transform(m, orjson.dumps({"series": [SERIES, SERIES[:5]]}),
                                        "application/json", None)[0])
    assert len(two["predictions"]) == 2 and two["predictions"][0] == a["predictions"][0]
    for bad in ([{"hour": -1, "heart_rate": 80}], [{"hour": 1, "pulse": 80}],
                [{"hour": 1, "heart_rate": "fast"}], [{"hour": 1, "glascow_coma_scale_total": "x"}],
                [{"hour": 1e30, "heart_rate": 80}]):
        with pytest.raises(RequestError) as e:
            handlers.transform(m, orjson.dumps({"series": bad}), "application/json", None)
        assert e.value.status == 400
    # extreme but finite values never become a server error: a prediction or a 4xx naming them
    for odd in ([{"hour": 8760, "heart_rate": 80}], [{"hour": 1, "heart_rate": 1e308}],
                [{"hour": 1, "heart_rate": -1e308}, {"hour": 2, "heart_rate": 1e308}]):
        try:
            out = json.loads(handlers.transform(m, orjson.dumps({"series": odd}), "application/json", None)[0])
            assert len(out["predictions"]) == 1
        except RequestError as e:
            assert 400 <= e.status < 500


# -- extractor --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def extractor(tmp_path_factory):
    from clinical_ml.extraction.artifact import save_rules
    from clinical_ml.extraction.rules import RulesExtractor

    d = save_rules(RulesExtractor(), tmp_path_factory.mktemp("ext") / "rules")
    return handlers.model_fn(d)


NOTE = "Patient denies chest pain. Started metoprolol 25 mg PO BID for hypertension."


def test_extractor_round_trips(extractor):
    from clinical_ml.notes.schema import ANNOTATION_SCHEMA
    import jsonschema

    bodies = [
        (b'{"text": "%s"}' % NOTE.encode(), "application/json"),
        (orjson.dumps({"texts": [NOTE]}), "application/json"),
        (orjson.dumps({"instances": [{"id": 0, "text": NOTE}]}), "application/json"),
        (orjson.dumps({"id": 0, "text": NOTE}) + b"\n", "application/jsonlines"),
        (b'"' + NOTE.encode() + b'"\n', "text/csv"),
        (NOTE.encode(), "text/plain"),
    ]
    outs = []
    for body, ctype in bodies:
        out, _ = handlers.transform(extractor, body, ctype, "application/json")
        doc = json.loads(out)
        assert doc["model_type"] == "extractor" and len(doc["predictions"]) == 1
        ann = doc["predictions"][0]
        jsonschema.validate(ann, ANNOTATION_SCHEMA)
        outs.append(ann)
    assert all(o == outs[0] for o in outs)
    assert any(e["label"] == "MEDICATION" for e in outs[0]["entities"])


def test_extractor_rejects_bad_notes(extractor):
    for body, status in ((b'{"text": ""}', 400), (b'{"texts": [1]}', 400), (b'{"note": "x"}', 400),
                         (orjson.dumps({"texts": ["a"] * 65}), 413)):
        with pytest.raises(RequestError) as e:
            handlers.transform(extractor, body, "application/json", None)
        assert e.value.status == status


def test_served_predictions_equal_the_artifact_loader(model, rows):
    """What is served is what evaluation measured: clinical_ml.outcomes.artifact's predict."""
    artifact = pytest.importorskip("clinical_ml.outcomes.artifact")
    import pandas as pd

    assert model.artifact is not None and model.fast  # fast path verified against the artifact
    art = artifact.load(model.dir)
    df = pd.DataFrame(rows.astype(np.float32), columns=model.features)
    doc = json.loads(handlers.transform(model, orjson.dumps({"instances": _as_dicts(model, rows)}),
                                        "application/json", None)[0])
    for task, spec in model.tasks.items():
        ref = np.asarray(art.predict(task, df, model="xgboost"), dtype=np.float64)
        got = [list(p[task].values()) if spec["type"] == "multilabel" else p[task]
               for p in doc["predictions"]]
        assert np.allclose(np.asarray(got), ref, rtol=1e-5), task


def test_disagreeing_artifact_switches_to_its_predict(model_dir, monkeypatch):
    pytest.importorskip("clinical_ml.outcomes.artifact")
    from inference import outcome_model

    real = outcome_model._load_artifact

    def shifted(d):
        art = real(d)
        orig = art.predict
        art.predict = lambda task, df, model="xgboost": orig(task, df, model=model) * 0.5
        return art

    monkeypatch.setattr(outcome_model, "_load_artifact", shifted)
    m = handlers.model_fn(model_dir)
    assert not m.fast
    x = np.zeros((1, len(m.features)), dtype=np.float32)
    import pandas as pd
    ref = m.artifact.predict("ihm", pd.DataFrame(x, columns=m.features))
    assert m.predict_matrix(x)["ihm"] == pytest.approx(ref)
