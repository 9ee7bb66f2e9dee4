"""``bench_llm.py``'s bars and markdown, from its result dict (``res``): ``res["table"][test
set][extractor]`` rows (``<set>`` whole documents, ``<set>_prefix`` the generator's visible
prefix, ``maccrobat2020_long`` the retrieval arms), ``res["mtsamples_quality"]``,
``res["retrieval"]``."""
from __future__ import annotations

import json

TITLES = {"synthetic": "synthetic test notes", "maccrobat2020": "MACCROBAT test", "bc5cdr": "BC5CDR test",
          "ncbi-disease": "NCBI-disease test"}
NAMES = {"rules": "rules + negation (train gazetteer)", "rules_seed": "rules + negation (seed lexicon, untrained)", "encoder_synthetic": "MiniLM fine-tuned, synthetic only",
         "encoder_real": "MiniLM fine-tuned, synthetic + real", "zero_shot": "SmolLM2 zero-shot",
         "generative": "SmolLM2 + LoRA, synthetic + real", "retrieval": "SmolLM2 + LoRA + retrieval"}
SHORT = {"MEDICATION": "MED", "DOSE": "DOSE", "ROUTE": "ROUTE", "FREQUENCY": "FREQ", "FORM": "FORM",
         "DURATION": "DUR", "PROBLEM": "PROB", "TEST": "TEST", "PROCEDURE": "PROC"}
# lenient F1 of the model make demo trains (encoder_real) on the whole test splits; each also
# MARGIN above the rules baseline
ENCODER_BARS = {("bc5cdr", "MEDICATION"): 0.85, ("bc5cdr", "PROBLEM"): 0.75, ("maccrobat2020", "MEDICATION"): 0.75,
                ("maccrobat2020", "PROBLEM"): 0.65, ("ncbi-disease", "PROBLEM"): 0.75}
MARGIN = 0.10
SCOPES = {"": "whole", "prefix": "first {gen_prompt_tokens} tokens",
          "long": "whole, <= {retrieval_prompt_tokens} prompt tokens"}


def bar(what: str, figure, threshold: float, higher: bool = True) -> dict:
    """One bar: met true/false with the measured figure; None (not measured) when it is absent."""
    if figure is None:
        return {"bar": what, "figure": None, "threshold": threshold, "met": None}
    return {"bar": what, "figure": round(figure, 4), "threshold": threshold,
            "met": figure >= threshold if higher else figure <= threshold}


def compute_bars(res: dict) -> list[dict]:
    t, out = res["table"], []
    for (corpus, lab), need in ENCODER_BARS.items():
        enc, rules = t.get(corpus, {}).get("encoder_real"), t.get(corpus, {}).get("rules")
        f = enc["lenient_f1"].get(lab) if enc else None
        out.append(bar(f"{TITLES[corpus]}: encoder_real lenient {lab} F1 >= {need}", f, need))
        out.append(bar(f"{TITLES[corpus]}: encoder_real lenient {lab} F1 - rules >= {MARGIN}",
                       f - rules["lenient_f1"][lab] if f is not None and rules else None, MARGIN))
        seed = t.get(corpus, {}).get("rules_seed")
        out.append(bar(f"{TITLES[corpus]}: encoder_real lenient {lab} F1 - untrained rules >= {MARGIN}",
                       f - seed["lenient_f1"][lab] if f is not None and seed else None, MARGIN))
    real = [k for k in t if k.endswith("_prefix") and k != "synthetic_prefix" and {"generative", "rules"} <= set(t[k])]
    diffs = {k: t[k]["generative"]["record_f1"] - t[k]["rules"]["record_f1"] for k in real}
    out += [bar(f"{k}: generative record F1 - rules record F1 > 0", d, 1e-9) for k, d in diffs.items()]
    out.append(bar("real test prefixes, mean over corpora: generative record F1 - rules > 0",
                   sum(diffs.values()) / len(diffs) if diffs else None, 1e-9))
    seeded = {k: t[k]["generative"]["record_f1"] - t[k]["rules_seed"]["record_f1"] for k in real if "rules_seed" in t[k]}
    out += [bar(f"{k}: generative record F1 - untrained rules record F1 > 0", d, 1e-9) for k, d in seeded.items()]
    out.append(bar("real test prefixes, mean over corpora: generative record F1 - untrained rules > 0",
                   sum(seeded.values()) / len(seeded) if seeded else None, 1e-9))
    q = res.get("mtsamples_quality") or {}
    enc = q.get("encoder_real", {})
    return out + [bar("MTSamples: encoder_real junk share <= 0.02", enc.get("junk_share"), 0.02, higher=False),
                  bar("MTSamples: encoder_real split share <= 0.02", enc.get("split_share"), 0.02, higher=False),
                  bar("MTSamples: encoder_real MEDICATION drug-name share >= 0.80", enc.get("drug_name_share"), 0.80),
                  bar("MTSamples: encoder_real medications >= 2x rules", q.get("medication_ratio_to_rules"), 2.0),
                  bar("MTSamples: encoder_real medications >= 2x untrained rules",
                      q.get("medication_ratio_to_untrained_rules"), 2.0)]


def _f(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def _order(res: dict):
    bases, scopes = list(res.get("data", {}).get("test_docs", {})), list(SCOPES)

    def key(k: str) -> tuple:
        base, _, scope = k.partition("_")
        return (bases.index(base) if base in bases else len(bases), scopes.index(scope) if scope in scopes else 9)
    return key


def main_table(res: dict) -> list[str]:
    """One line per test set x extractor; per label strict / lenient F1 of the annotated labels."""
    t = res["table"]
    labels = [lab for lab in SHORT if any(lab in r["labels"] for rows in t.values() for r in rows.values())]
    head = (["test set", "docs", "extractor", "entity F1 strict / lenient", "record F1"]
            + [f"{SHORT[lab]} s / l" for lab in labels] + ["notes/s", "train s"])
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for k in sorted(t, key=_order(res)):
        base, _, scope = k.partition("_")
        where = SCOPES.get(scope, scope).format(**res["config"])
        for name in sorted(t[k], key=lambda n: list(NAMES).index(n) if n in NAMES else 99):
            r = t[k][name]
            cells = [f"{TITLES.get(base, base)}, {where}", str(r["n_docs"]), NAMES.get(name, name),
                     f"{_f(r['entity_f1'])} / {_f(r['entity_f1_lenient'])}", _f(r["record_f1"])]
            cells += [f"{_f(r['strict_f1'][lab])} / {_f(r['lenient_f1'][lab])}" if lab in r["strict_f1"] else ""
                      for lab in labels]
            cells += [f"{r['notes_per_s']:.2f}", "-" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def quality_table(q: dict) -> list[str]:
    lines = [f"MTSamples quality ({q['notes']} notes, no gold; rules fitted on {q['rules_fitted_on']}):", "",
             "| extractor | entities | junk share | split share | MEDICATION | drug-name share | notes/s |",
             "|---|---|---|---|---|---|---|"]
    return lines + [f"| {n} | {q[n]['entities']} | {q[n]['junk_share']:.3f} | {q[n]['split_share']:.3f} | "
                    f"{q[n]['medications']} | {q[n]['drug_name_share']:.3f} | {q[n]['notes_per_s']:.2f} |"
                    for n in ("rules", "rules_seed_lexicon", "encoder_real") if n in q]


def markdown(res: dict) -> str:
    out = ["Per label: strict / lenient F1, only the labels the corpus annotates.", "", *main_table(res)]
    if res.get("mtsamples_quality"):
        out += ["", *quality_table(res["mtsamples_quality"])]
    if res.get("retrieval"):
        out += ["", "Retrieval (CLEAR-style):", "", "```json", json.dumps(res["retrieval"], indent=1), "```"]
    if res.get("bars"):
        out += ["", "Bars (computed from the figures above):", ""]
        out += [f"- {'MET' if b['met'] else 'not met' if b['met'] is False else 'not measured'}: {b['bar']} "
                f"(figure {b['figure']})" for b in res["bars"]]
    return "\n".join(out) + "\n"
