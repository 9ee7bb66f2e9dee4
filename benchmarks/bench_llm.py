"""Extraction benchmark (``make bench-llm``): fine-tuned vs zero-shot vs rules, on synthetic test
notes and on MACCROBAT test documents, with training tokens/s, inference notes/s, peak memory
and the CLEAR-style retrieval saving.

Stages (each writes its part of the JSON as soon as it finishes, so a slow machine still
leaves results):
1. data: ``clinical-ml synth`` (``--patients``) + ``build-notes``; MACCROBAT split (if present);
2. rules baseline (gazetteer fitted on each training split);
3. encoder: all-MiniLM-L6-v2 + LoRA on synthetic train notes + MACCROBAT train documents;
4. generative: SmolLM2-135M-Instruct + LoRA -> JSON, time-budgeted; zero-shot SmolLM2 on the
   same notes. Both read the same prompt budget, so both are scored against the gold inside
   the visible prefix (``visible_docs``);
5. retrieval: prompt tokens with/without entity-based chunk selection, gold entities kept,
   fine-tuned generative F1 with retrieval;
6. MTSamples note classification (medical_specialty, top classes), macro-F1.

Bars: fine-tuned generative beats zero-shot SmolLM2 by >= 0.30 entity F1 on synthetic test
notes; the fine-tuned encoder beats the rules baseline on MACCROBAT test documents for
MEDICATION and PROBLEM (strict F1).

    python benchmarks/bench_llm.py --out bench-results/llm.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CLINICAL_ML_SHARED_DATA", REPO.parent / "shared" / "data"))
ZS_BAR = 0.30


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def gpu_peak_mb() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**20, 1) if torch.cuda.is_available() else None


def summarize(m: dict) -> dict:
    per = m["entities"]["strict"]["per_label"]
    out = {k: m[k] for k in ("n_docs", "entity_f1", "entity_f1_lenient", "relation_f1", "record_f1",
                             "json_validity") if k in m}
    out["f1_per_label"] = {k: v["f1"] for k, v in per.items()}
    out["lenient_f1_per_label"] = {k: v["f1"] for k, v in m["entities"]["lenient"]["per_label"].items()}
    out["negation_accuracy"] = m["negation"]["accuracy"]
    out["seqeval_f1"] = m["seqeval"]["f1"]
    for k in ("notes_per_s", "classification", "prompt_tokens"):
        if k in m:
            out[k] = m[k]
    return out


def run(ext, docs):
    from processing.evaluate_extractor import run_extractor

    m, preds = run_extractor(ext, docs)
    return summarize(m), preds


def visible_docs(docs: list[dict], ext) -> list[dict]:
    """The prefix of each note that fits the generator's prompt budget, with the gold inside it."""
    from clinical_ml.notes.datasets import make_document

    out = []
    for d in docs:
        cut = ext.visible_text(d["text"])
        keep = [i for i, e in enumerate(d["entities"]) if e["end"] <= len(cut)]
        idx = {o: n for n, o in enumerate(keep)}
        rels = [{**r, "head": idx[r["head"]], "tail": idx[r["tail"]]} for r in d["relations"]
                if r["head"] in idx and r["tail"] in idx]
        out.append(make_document(d["id"], cut, [d["entities"][i] for i in keep], rels,
                                 category=d.get("category")))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-results/llm.json")
    p.add_argument("--notes", default=None, help="existing build-notes folder (else synthesize)")
    p.add_argument("--patients", type=int, default=250)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--work", default=None)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--encoder-train-docs", type=int, default=300)
    p.add_argument("--encoder-epochs", type=float, default=2.0)
    p.add_argument("--test-docs", type=int, default=60)
    p.add_argument("--no-maccrobat", action="store_true")
    p.add_argument("--gen-train-seconds", type=float, default=300)
    p.add_argument("--gen-prompt-tokens", type=int, default=160)
    p.add_argument("--gen-target-tokens", type=int, default=96)
    p.add_argument("--gen-test-docs", type=int, default=8)
    p.add_argument("--mt-train-docs", type=int, default=400, help="MTSamples notes for the category head")
    p.add_argument("--skip", default="", help="comma list of stages to skip: encoder,generative,zero_shot,retrieval,mtsamples")
    args = p.parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    skip = set(filter(None, args.skip.split(",")))
    out_path = Path(args.out)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-llm-"))
    res: dict = {"work": str(work), "machine": {"platform": platform.platform(), "python": platform.python_version(),
                             "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                             "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None},
                 "config": vars(args), "stages": {}}

    def save() -> None:
        from clinical_ml.io import write_json

        res["peak_rss_mb"] = peak_rss_mb()
        write_json(out_path, res)

    def stage(name: str, t0: float, **kv) -> None:
        res["stages"][name] = {"seconds": round(time.time() - t0, 1), "peak_rss_mb": peak_rss_mb(), **kv}
        print(f"[bench-llm] {name}: {round(time.time() - t0, 1)}s", file=sys.stderr, flush=True)
        save()

    # ---------------------------------------------------------------- 1. data
    from clinical_ml.notes.datasets import read_brat, read_jsonl, split_documents

    t0 = time.time()
    if args.notes:
        notes = Path(args.notes)
    else:
        from clinical_ml.synth.generate import main as synth_main
        from processing.build_notes import main as build_notes

        synth_main(["--out", str(work / "mimic"), "--patients", str(args.patients), "--seed", str(args.seed)])
        build_notes(["--input", str(work / "mimic"), "--output", str(work)])
        notes = work / "notes"
    syn = {s: read_jsonl(notes / f"{s}.jsonl") for s in ("train", "val", "test")}
    rng = random.Random(args.seed)
    syn_train = rng.sample(syn["train"], min(args.encoder_train_docs, len(syn["train"])))
    syn_test = syn["test"][:args.test_docs]
    mac = None
    if not args.no_maccrobat and (SHARED / "maccrobat2020").is_dir():
        mac = split_documents(read_brat(SHARED / "maccrobat2020"))
    stage("data", t0, synthetic={s: len(v) for s, v in syn.items()}, synthetic_test_used=len(syn_test),
          maccrobat={s: len(v) for s, v in mac.items()} if mac else None)

    # ---------------------------------------------------------------- 2. rules
    from clinical_ml.extraction.rules import RulesExtractor

    t0 = time.time()
    table = res.setdefault("table", {})
    table.setdefault("synthetic", {})["rules"], _ = run(RulesExtractor().fit(syn["train"]), syn_test)
    if mac:
        table.setdefault("maccrobat", {})["rules"], _ = run(RulesExtractor().fit(mac["train"]), mac["test"])
    stage("rules", t0)

    # ---------------------------------------------------------------- 3. encoder
    if "encoder" not in skip:
        from transformers import AutoTokenizer

        from clinical_ml.extraction.base_models import resolve
        from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor, build_model, fit

        t0 = time.time()
        base = resolve("minilm")
        tok = AutoTokenizer.from_pretrained(str(base))
        cats = sorted({d["category"] for d in syn_train})
        model = build_model(str(base), EncoderConfig(categories=cats))
        train_docs = syn_train + (mac["train"] if mac else [])
        fs = fit(model, tok, train_docs, epochs=args.encoder_epochs, lr=3e-3, seed=args.seed)
        enc = EncoderExtractor(model, tok)
        from clinical_ml.extraction.artifact import save_encoder

        save_encoder(enc, work / "encoder", "minilm", base, {k: v for k, v in fs.items() if k != "losses"})
        table["synthetic"]["encoder_lora"], _ = run(enc, syn_test)
        if mac:
            table["maccrobat"]["encoder_lora"], _ = run(enc, mac["test"])
        stage("encoder", t0, train_docs=len(train_docs), train_tokens=fs["train_tokens"],
              train_tokens_per_s=fs["train_tokens_per_s"], train_seconds=fs["train_seconds"],
              steps=fs["steps"], loss_first=fs["losses"][0], loss_last=fs["losses"][-1],
              inference_notes_per_s=table["synthetic"]["encoder_lora"]["notes_per_s"], gpu_peak_mb=gpu_peak_mb())

    # ---------------------------------------------------------------- 4. generative + zero-shot
    gen = None
    gen_docs = None
    if "generative" not in skip or "zero_shot" not in skip:
        from clinical_ml.extraction.base_models import resolve
        from clinical_ml.extraction.generative import (GenConfig, build_generative, fit_generative,
                                                       zero_shot_extractor)

        t0 = time.time()
        resolve("smollm2")  # dequantize once (cached), outside the timed training
        stage("smollm2_cache", t0)
    if "generative" not in skip:
        t0 = time.time()
        cfg = GenConfig(max_prompt_tokens=args.gen_prompt_tokens, max_target_tokens=args.gen_target_tokens,
                        max_new_tokens=args.gen_target_tokens + 8)
        gen = build_generative(str(resolve("smollm2")), cfg)
        fs = fit_generative(gen, syn["train"], epochs=1.0, lr=5e-4, batch_size=4, seed=args.seed,
                            time_budget_s=args.gen_train_seconds)
        from clinical_ml.extraction.generative import save_generative

        save_generative(gen, work / "generative", "smollm2", resolve("smollm2"),
                        {k: v for k, v in fs.items() if k != "losses"})
        gen_docs = visible_docs(syn_test[:args.gen_test_docs], gen)
        g, _ = run(gen, gen_docs)
        res.setdefault("generative_test", {})["fine_tuned_smollm2_lora"] = g
        stage("generative", t0, train_tokens=fs["train_tokens"], train_tokens_per_s=fs["train_tokens_per_s"],
              train_seconds=fs["train_seconds"], steps=fs["steps"], examples_seen=fs["steps"] * 4,
              loss_first=fs["losses"][0], loss_last=sum(fs["losses"][-5:]) / len(fs["losses"][-5:]),
              inference_notes_per_s=g["notes_per_s"], gpu_peak_mb=gpu_peak_mb())
    if "zero_shot" not in skip:
        t0 = time.time()
        zs = zero_shot_extractor("smollm2", max_prompt_tokens=args.gen_prompt_tokens,
                                 max_new_tokens=args.gen_target_tokens + 8)
        gen_docs = gen_docs or visible_docs(syn_test[:args.gen_test_docs], zs)
        z, _ = run(zs, gen_docs)
        res.setdefault("generative_test", {})["zero_shot_smollm2"] = z
        stage("zero_shot", t0, inference_notes_per_s=z["notes_per_s"])
    if gen_docs is not None:
        res["generative_test"]["rules"], _ = run(RulesExtractor().fit(syn["train"]), gen_docs)
        if "encoder" not in skip:
            res["generative_test"]["encoder_lora"], _ = run(enc, gen_docs)
        save()

    # ---------------------------------------------------------------- 5. retrieval
    if "retrieval" not in skip:
        from clinical_ml.extraction.retrieval import reduce_note

        t0 = time.time()
        rules = RulesExtractor().fit(syn["train"])
        long_docs = sorted(syn["test"], key=lambda d: -len(d["text"]))[:40]
        kept_chars = total_chars = kept_gold = total_gold = 0
        for d in long_docs:
            red, _ = reduce_note(d["text"], rules)
            kept_chars += len(red)
            total_chars += len(d["text"])
            red_l = red.lower()
            total_gold += len(d["entities"])
            kept_gold += sum(e["text"].lower() in red_l for e in d["entities"])
        info = {"notes": len(long_docs), "chars_kept_fraction": round(kept_chars / total_chars, 4),
                "gold_entities_kept_fraction": round(kept_gold / max(1, total_gold), 4)}
        if gen is not None:
            import dataclasses

            gen.cfg = dataclasses.replace(gen.cfg, max_prompt_tokens=4096)
            few = long_docs[:4]
            full, _ = run(gen, few)
            gen.cfg = dataclasses.replace(gen.cfg, retrieval=True)
            red, _ = run(gen, few)
            info.update({"generative_full_note": full, "generative_retrieval": red,
                         "prompt_tokens_full": full.get("prompt_tokens"),
                         "prompt_tokens_retrieval": red.get("prompt_tokens"),
                         "entity_f1_change": round(red["entity_f1"] - full["entity_f1"], 4)})
            if full.get("prompt_tokens"):
                info["prompt_tokens_saved_fraction"] = round(1 - red["prompt_tokens"] / full["prompt_tokens"], 4)
        res["retrieval"] = info
        stage("retrieval", t0)

    # ---------------------------------------------------------------- 6. MTSamples classification
    if "mtsamples" not in skip and (SHARED / "mtsamples").is_dir():
        from collections import Counter

        from transformers import AutoTokenizer

        from clinical_ml.extraction.base_models import resolve
        from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor, build_model, fit
        from clinical_ml.extraction.metrics import classification_scores
        from clinical_ml.notes.datasets import read_mtsamples

        t0 = time.time()
        mt = read_mtsamples(SHARED / "mtsamples")
        top = [c for c, _ in Counter(d["category"] for d in mt).most_common(6)]
        mt = [d for d in mt if d["category"] in top]
        sp = split_documents(mt)
        tr = random.Random(0).sample(sp["train"], min(args.mt_train_docs, len(sp["train"])))
        te = sp["test"][:150]
        tok = AutoTokenizer.from_pretrained(str(resolve("minilm")))
        model = build_model(str(resolve("minilm")), EncoderConfig(max_length=128, categories=sorted(top)))
        truncate = lambda ds: [{**d, "text": d["text"][:600]} for d in ds]  # noqa: E731 - first 128 tokens
        fs = fit(model, tok, truncate(tr), epochs=2, seed=0)
        preds = EncoderExtractor(model, tok).extract([d["text"][:600] for d in te])
        cls = classification_scores([d["category"] for d in te], [p["category"] for p in preds])
        majority = Counter(d["category"] for d in tr).most_common(1)[0][0]
        res["mtsamples_classification"] = {
            "classes": sorted(top), "train_docs": len(tr), "test_docs": len(te), "encoder_lora": cls,
            "majority_baseline": classification_scores([d["category"] for d in te], [majority] * len(te))}
        stage("mtsamples", t0, train_tokens_per_s=fs["train_tokens_per_s"])

    # ---------------------------------------------------------------- bars
    bars = {}
    gt = res.get("generative_test", {})
    if "fine_tuned_smollm2_lora" in gt and "zero_shot_smollm2" in gt:
        diff = gt["fine_tuned_smollm2_lora"]["entity_f1"] - gt["zero_shot_smollm2"]["entity_f1"]
        bars["generative_minus_zero_shot_entity_f1"] = round(diff, 4)
        bars["generative_beats_zero_shot_by_30_points"] = diff >= ZS_BAR
    if "encoder" not in skip and "zero_shot_smollm2" in gt and "encoder_lora" in gt:
        bars["encoder_minus_zero_shot_entity_f1"] = round(gt["encoder_lora"]["entity_f1"] - gt["zero_shot_smollm2"]["entity_f1"], 4)
    if mac and "encoder_lora" in table.get("maccrobat", {}):
        er, rr = table["maccrobat"]["encoder_lora"]["f1_per_label"], table["maccrobat"]["rules"]["f1_per_label"]
        for lab in ("MEDICATION", "PROBLEM"):
            bars[f"maccrobat_{lab.lower()}_encoder_minus_rules_f1"] = round(er[lab] - rr[lab], 4)
        bars["maccrobat_encoder_beats_rules_medication_and_problem"] = all(er[lab] > rr[lab] for lab in ("MEDICATION", "PROBLEM"))
    res["bars"] = bars
    save()
    print(json.dumps(bars, indent=2))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
