"""bench_llm's bars and markdown from a hand-made result (no model, no data)."""
from __future__ import annotations

from benchmarks.bench_llm_report import compute_bars, markdown


def _row(labels, strict, lenient, record=0.5):
    return {"n_docs": 4, "labels": labels, "strict_f1": dict(zip(labels, strict)),
            "lenient_f1": dict(zip(labels, lenient)), "entity_f1": strict[0], "entity_f1_lenient": lenient[0],
            "record_f1": record, "relation_f1": 0.0, "json_validity": 1.0, "notes_per_s": 2.0,
            "prompt_tokens": None, "train_seconds": 12.0}


def _res():
    mp = ["MEDICATION", "PROBLEM"]
    return {"config": {"gen_prompt_tokens": 192, "retrieval_prompt_tokens": 1024},
            "data": {"test_docs": {"synthetic": 4, "bc5cdr": 4, "ncbi-disease": 4}},
            "table": {"bc5cdr": {"rules": _row(mp, [0.6, 0.5], [0.7, 0.6]),
                                 "encoder_real": _row(mp, [0.8, 0.7], [0.9, 0.72])},
                      "bc5cdr_prefix": {"generative": _row(mp, [0.5, 0.5], [0.5, 0.5], record=0.6),
                                        "rules": _row(mp, [0.5, 0.5], [0.5, 0.5], record=0.4),
                                        "rules_seed": _row(mp, [0.2, 0.2], [0.3, 0.3], record=0.7)},
                      "ncbi-disease_prefix": {"generative": _row(["PROBLEM"], [0.5], [0.5], record=0.3),
                                              "rules": _row(["PROBLEM"], [0.5], [0.5], record=0.4),
                                              "rules_seed": _row(["PROBLEM"], [0.1], [0.1], record=0.1)}},
            "mtsamples_quality": {"notes": 60, "rules_fitted_on": "x",
                                  "rules": {"entities": 10, "junk_share": 0.1, "split_share": 0.0, "medications": 10,
                                            "drug_name_share": 0.5, "notes_per_s": 9.0},
                                  "encoder_real": {"entities": 30, "junk_share": 0.01, "split_share": 0.03,
                                                   "medications": 25, "drug_name_share": 0.9, "notes_per_s": 1.0},
                                  "medication_ratio_to_rules": 2.5, "medication_ratio_to_untrained_rules": 1.5}}


def test_bars_use_the_measured_figures_and_say_what_was_not_measured():
    res = _res()
    bars = {b["bar"]: b for b in compute_bars(res)}
    assert bars["BC5CDR test: encoder_real lenient MEDICATION F1 >= 0.85"]["met"] is True
    assert bars["BC5CDR test: encoder_real lenient PROBLEM F1 >= 0.75"]["met"] is False
    margin = bars["BC5CDR test: encoder_real lenient PROBLEM F1 - rules >= 0.1"]
    assert margin["figure"] == 0.12 and margin["met"] is True
    assert bars["MACCROBAT test: encoder_real lenient MEDICATION F1 >= 0.75"]["met"] is None
    assert bars["bc5cdr_prefix: generative record F1 - rules record F1 > 0"]["met"] is True
    assert bars["ncbi-disease_prefix: generative record F1 - rules record F1 > 0"]["met"] is False
    mean = bars["real test prefixes, mean over corpora: generative record F1 - rules > 0"]
    assert mean["figure"] == 0.05 and mean["met"] is True
    assert bars["MTSamples: encoder_real split share <= 0.02"]["met"] is False
    assert bars["MTSamples: encoder_real medications >= 2x rules"]["met"] is True
    # the baseline, untrained (seed lexicon only), is reported beside the fitted one
    assert bars["MTSamples: encoder_real medications >= 2x untrained rules"]["met"] is False
    assert bars["bc5cdr_prefix: generative record F1 - untrained rules record F1 > 0"]["met"] is False
    assert bars["ncbi-disease_prefix: generative record F1 - untrained rules record F1 > 0"]["met"] is True
    seeded = bars["real test prefixes, mean over corpora: generative record F1 - untrained rules > 0"]
    assert seeded["figure"] == 0.05 and seeded["met"] is True
    res["bars"] = list(bars.values())
    md = markdown(res)
    assert "| BC5CDR test, whole | 4 | rules + negation (train gazetteer) | 0.600 / 0.700 | 0.500 | 0.600 / 0.700 | 0.500 / 0.600 |" in md
    assert "BC5CDR test, first 192 tokens" in md and "not measured: MACCROBAT" in md
    # whole rows of a set come before its prefix rows, rules before the encoder
    assert md.index("BC5CDR test, whole | 4 | rules") < md.index("BC5CDR test, whole | 4 | MiniLM") \
        < md.index("BC5CDR test, first")
