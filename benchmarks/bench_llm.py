"""Extraction benchmark (``make bench-llm``): one row per test set x extractor, strict and
lenient F1 per label, micro entity F1, record F1, notes/s and training time.

Test sets: synthetic test notes (``synth`` + ``build-notes``, as ``make demo``), and the test
splits of the real corpora in ``--shared`` (MACCROBAT2020, BC5CDR, NCBI-disease; skipped with a
message when the folder is absent). Every score goes through ``corpus_eval.score``: each corpus
on the labels it annotates. Extractors:

- ``rules``: rules + negation, gazetteer fitted on that corpus's train split; ``rules_seed``:
  the same without training (seed lexicon only, the baseline the issue quotes);
- ``encoder_synthetic`` / ``encoder_real``: MiniLM (fully fine-tuned: train-extractor's default) trained by ``train_extractor.main``
  with the arguments of ``make demo``'s TrainExtractor step (resolved from the pipeline
  definition with the demo's parameter values: ``--max-train-docs 300 --time-budget-s 390``
  today), on the synthetic notes alone / on the synthetic + real notes (``build-notes
  --corpora``); ``--encoder-model DIR`` reuses a trained model (the demo's) as ``encoder_real``;
- ``zero_shot``: SmolLM2-135M-Instruct prompted, no adapter;
- ``generative``: SmolLM2 + LoRA fine-tuned on synthetic + MACCROBAT + BC5CDR + NCBI training
  pairs (``--gen-train-docs`` per corpus, ``--gen-train-seconds`` budget);
- ``retrieval``: the fine-tuned SmolLM2 with ``GenConfig.retrieval`` (CLEAR-style) on whole
  MACCROBAT test reports (F1 change at the same prompt budget) and the longest MTSamples notes
  (no gold there: prompt tokens saved).

The generative rows read ``--gen-prompt-tokens`` of each note (in ``--gen-chunk-tokens``
windows, one record each), so they are scored, with rules and encoders beside them, on the
first ``--gen-docs`` notes of each set cut to that visible prefix (gold inside it): the
``prefix`` rows. Stage ``mtsamples_quality``: junk, split and drug-name
figures (``extraction.quality``) of rules vs ``encoder_real`` on 60 MTSamples discharge
summaries / consults. ``bars`` checks the issue's bars against the measured figures.

Each stage saves ``--out`` (JSON) and the markdown tables (same name, ``.md``) when it ends, so
a slow run still leaves results. ``--skip`` takes stage names (STAGES). ``--smoke`` is a tiny
configuration that proves the code path in a few minutes; its figures mean nothing.

Threads: ``--threads`` (default 2) sets torch's intra-op threads here and in the training runs.
On a machine shared with another threaded job use ``--threads 1``: two jobs with 2 threads
each on 2 cores ran 10x slower in our runs.

    python benchmarks/bench_llm.py --out bench-results/llm.json [--encoder-model runs/.../model]
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import os
import platform
import random
import resource
import sys
import tempfile
import time
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from benchmarks.bench_llm_report import compute_bars, markdown  # noqa: E402

SHARED = Path(os.environ.get("CLINICAL_ML_SHARED_DATA", REPO.parent / "shared" / "data"))
STAGES = ("rules", "encoder_synthetic", "encoder_real", "zero_shot", "generative", "prefix_baselines",
          "retrieval", "mtsamples_quality")
QUALITY_CATEGORIES = ("Discharge Summary", "Consult - History and Phy.")
SMOKE_ENCODER_ARGS = ["--max-steps", "2", "--max-train-docs", "8", "--max-val-docs", "2", "--time-budget-s", "20"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from pipelines.local.demo import DEMO_PATIENTS

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    a = p.add_argument
    a("--out", default="bench-results/llm.json")
    a("--shared", default=str(SHARED), help="real corpora folder (bc5cdr, ncbi-disease, maccrobat2020, mtsamples)")
    a("--notes", default=None, help="an existing build-notes output folder (train/val/test.jsonl), else synth + build-notes")
    a("--patients", type=int, default=DEMO_PATIENTS, help="synth patients (make demo's count)")
    a("--seed", type=int, default=0, help="synth seed (make demo's)")
    a("--work", default=None, help="scratch folder (notes, trained models); default a new temp folder")
    a("--threads", type=int, default=2, help="torch intra-op threads (1 on a shared machine)")
    a("--max-docs", type=int, default=0, help="at most N test documents per set for rules/encoders (0: all)")
    a("--encoder-model", default=None, help="reuse this trained model dir as encoder_real (e.g. the demo's)")
    a("--encoder-synthetic-model", default=None, help="reuse this trained model dir as encoder_synthetic")
    a("--gen-model", default=None, help="reuse this fine-tuned generative model dir")
    a("--gen-docs", type=int, default=16, help="prefix rows: the first N documents of each test set")
    a("--gen-train-docs", type=int, default=300, help="generative training documents per corpus")
    a("--gen-train-seconds", type=float, default=900)
    a("--gen-max-steps", type=int, default=0, help="0: the time budget / one epoch")
    a("--gen-lr", type=float, default=1e-3)
    a("--gen-prompt-tokens", type=int, default=192)
    a("--gen-target-tokens", type=int, default=128)
    a("--gen-chunk-tokens", type=int, default=96, help="note tokens per prompt (0: the whole prefix in one)")
    a("--retrieval-docs", type=int, default=16, help="whole MACCROBAT test reports (16: all)")
    a("--retrieval-prompt-tokens", type=int, default=1024, help="prompt budget of both retrieval arms")
    a("--mtsamples-long", type=int, default=8, help="longest MTSamples notes for the retrieval token count")
    a("--quality-notes", type=int, default=60)
    a("--skip", default="", help="comma list of stages to skip: " + ",".join(STAGES))
    a("--smoke", action="store_true", help="tiny sizes, to prove the code path (figures meaningless)")
    args = p.parse_args(argv)
    if args.smoke:
        args.patients, args.max_docs, args.gen_docs, args.gen_train_docs = 40, 3, 2, 3
        args.gen_train_seconds, args.gen_max_steps, args.gen_target_tokens = 3.0, 2, 16
        args.retrieval_docs, args.retrieval_prompt_tokens, args.mtsamples_long, args.quality_notes = 2, 256, 2, 3
    args.skip = set(filter(None, args.skip.split(",")))
    unknown = args.skip - set(STAGES)
    if unknown:
        p.error(f"--skip: unknown stages {sorted(unknown)}; choose from {', '.join(STAGES)}")
    return args


def say(msg: str) -> None:
    print(f"[bench-llm] {msg}", file=sys.stderr, flush=True)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


# ---------------------------------------------------------------- data
def build_notes(args, work: Path, shared: Path | None) -> Path:
    """make demo's data path: synth, then build-notes (with the real corpora when present)."""
    if args.notes:
        return Path(args.notes)
    from clinical_ml.synth.generate import main as synth_main
    from processing.build_notes import main as build_notes_main

    synth_main(["--out", str(work / "mimic"), "--patients", str(args.patients), "--seed", str(args.seed),
                "--workers", str(max(1, min(2, args.threads)))])
    build_notes_main(["--input", str(work / "mimic"), "--output", str(work)]
                     + (["--corpora", str(shared)] if shared else []))
    return work / "notes"


def synthetic_only(notes: Path, out: Path) -> Path:
    """train/val.jsonl with the synthetic notes of ``notes`` only (the synthetic-only encoder)."""
    from clinical_ml.notes.datasets import read_jsonl, write_jsonl
    from clinical_ml.notes.merge import SYNTHETIC, corpus_of

    for split in ("train", "val"):
        write_jsonl([d for d in read_jsonl(notes / f"{split}.jsonl") if corpus_of(d) == SYNTHETIC],
                    out / f"{split}.jsonl")
    return out


def load_data(args, work: Path) -> dict:
    from clinical_ml.notes.corpora import read_corpora
    from clinical_ml.notes.datasets import read_jsonl
    from clinical_ml.notes.merge import SYNTHETIC, corpus_of

    shared = Path(args.shared)
    if not shared.is_dir():
        say(f"{shared} not found: synthetic test notes only (no MACCROBAT/BC5CDR/NCBI rows, no "
            "encoder_real, retrieval or MTSamples stages); CLINICAL_ML_SHARED_DATA or --shared to point at it")
        shared = None
    notes = build_notes(args, work, shared)
    syn = {s: [d for d in read_jsonl(notes / f"{s}.jsonl") if corpus_of(d) == SYNTHETIC] for s in ("train", "test")}
    corpora = {c: sp for c, sp in read_corpora(shared).items() if sp["test"]} if shared else {}
    train = {SYNTHETIC: syn["train"], **{c: sp["train"] for c, sp in corpora.items()}}
    tests = {SYNTHETIC: syn["test"], **{c: sp["test"] for c, sp in corpora.items()}}
    return {"notes": notes, "shared": shared, "train": train, "tests": tests,
            "synthetic_only": synthetic_only(notes, work / "notes-synthetic")}


def visible_docs(docs: list[dict], cutter) -> list[dict]:
    """The prefix of each document that fits the generator's prompt budget, with the gold inside it."""
    from clinical_ml.extraction.chunks import slice_doc
    from clinical_ml.notes.schema import record_from_annotations

    cut = [slice_doc(d, 0, len(cutter.visible_text(d["text"]))) for d in docs]
    return [{**d, "record": record_from_annotations(d["entities"], d["relations"])} for d in cut]


def prefix_sets(ctx: dict, args) -> dict[str, list[dict]]:
    """``<set>_prefix``: the first ``--gen-docs`` documents of each test set, cut with SmolLM2's tokenizer."""
    if "prefix" not in ctx:
        from transformers import AutoTokenizer

        from clinical_ml.extraction.base_models import resolve
        from clinical_ml.extraction.generative import GenConfig, GenerativeExtractor

        cutter = GenerativeExtractor(None, AutoTokenizer.from_pretrained(str(resolve("smollm2"))),  # nosec B615 - packaged
                                     GenConfig(max_prompt_tokens=args.gen_prompt_tokens))
        ctx["prefix"] = {f"{k}_prefix": visible_docs(docs[:args.gen_docs], cutter) for k, docs in ctx["tests"].items()}
    return ctx["prefix"]


# ---------------------------------------------------------------- scoring
def score_row(ext, docs: list[dict], train_seconds: float | None = None) -> dict:
    """One table row: ``corpus_eval.score`` figures (labels the corpus annotates) + speed."""
    from processing.evaluate_extractor import run_extractor

    m, _ = run_extractor(ext, docs)
    ent = m["entities"]
    return {"n_docs": m["n_docs"], "labels": m["labels"],
            "strict_f1": {lab: v["f1"] for lab, v in ent["strict"]["per_label"].items()},
            "lenient_f1": {lab: v["f1"] for lab, v in ent["lenient"]["per_label"].items()},
            **{k: m[k] for k in ("entity_f1", "entity_f1_lenient", "record_f1", "relation_f1",
                                 "json_validity", "notes_per_s")},
            "prompt_tokens": m.get("prompt_tokens"), "train_seconds": train_seconds}


def score_sets(res: dict, name: str, ext, sets: dict[str, list[dict]], train_seconds=None, save=None) -> None:
    for key, docs in sets.items():
        res["table"].setdefault(key, {})[name] = score_row(ext, docs, train_seconds)
        say(f"  {name} on {key}: {len(docs)} docs, entity F1 {res['table'][key][name]['entity_f1']:.3f} strict")
        if save:
            save()


def training_seconds(ext) -> float | None:
    t = (getattr(ext, "metadata", None) or {}).get("training") or {}
    return t.get("train_seconds", t.get("wall_seconds"))


# ---------------------------------------------------------------- extractors
def demo_train_arguments() -> list[str]:
    """What ``make demo``'s TrainExtractor step passes to train_extractor.py: the pipeline
    definition's ContainerArguments resolved with the parameter defaults and the demo's values
    (pipelines/local/demo.py), so a change to either carries over here."""
    from pipelines.local.demo import DEMO_EXTRACTOR
    from pipelines.local.expressions import Context, resolve
    from pipelines.local.runner import build_definition

    definition = build_definition()
    params = {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}
    params.update(DEMO_EXTRACTOR)

    def find(steps):
        for st in steps:
            found = st if st["Name"] == "TrainExtractor" else find(
                st.get("Arguments", {}).get("IfSteps", []) + st.get("Arguments", {}).get("ElseSteps", []))
            if found:
                return found
        return None

    step = find(definition["Steps"])
    args = step["Arguments"]["AlgorithmSpecification"]["ContainerArguments"]
    return [str(x) for x in resolve(args, Context(params, {}))]


def train_encoder(args, name: str, notes: Path, reuse: str | None, work: Path):
    """``make demo``'s TrainExtractor run (``demo_train_arguments``) on ``notes``, or a reused model dir."""
    from clinical_ml.extraction import load

    if reuse:
        say(f"{name}: reusing {reuse}")
        return load(reuse)
    from training.train_extractor import main as train_main

    demo = demo_train_arguments()
    say(f"{name}: train_extractor {' '.join(demo)} --threads {args.threads}")
    train_main(["--train", str(notes / "train.jsonl"), "--validation", str(notes / "val.jsonl"),
                "--model-dir", str(work / name), *demo, "--threads", str(args.threads)]
               + (SMOKE_ENCODER_ARGS if args.smoke else []))
    return load(work / name)


def train_generative(args, ctx: dict, work: Path):
    from clinical_ml.extraction import load
    from clinical_ml.extraction.base_models import resolve
    from clinical_ml.extraction.generative import GenConfig, build_generative, fit_generative, save_generative

    if args.gen_model:
        say(f"generative: reusing {args.gen_model}")
        return load(args.gen_model), {"reused": args.gen_model}
    cfg = GenConfig(max_prompt_tokens=args.gen_prompt_tokens, max_target_tokens=args.gen_target_tokens,
                    max_new_tokens=args.gen_target_tokens + 8, chunk_tokens=args.gen_chunk_tokens)
    gen = build_generative(str(resolve("smollm2")), cfg)
    rng = random.Random(args.seed)  # at most --gen-train-docs of each corpus
    docs = [d for ds in ctx["train"].values() for d in rng.sample(ds, min(len(ds), args.gen_train_docs))]
    fs = fit_generative(gen, docs, epochs=1.0, lr=args.gen_lr, batch_size=4, seed=args.seed,
                        max_steps=args.gen_max_steps or None, time_budget_s=args.gen_train_seconds)
    losses = fs.pop("losses")
    info = {**fs, "examples_seen": fs["steps"] * 4, "labels": gen.cfg.labels, "loss_first": losses[0],
            "loss_last": round(sum(losses[-5:]) / len(losses[-5:]), 4)}
    save_generative(gen, work / "generative", "smollm2", resolve("smollm2"), info)
    gen.metadata = {"training": info}
    return gen, info


# ---------------------------------------------------------------- retrieval
def prompt_tokens(gen, texts: list[str], reduce: bool) -> int:
    """Prompt tokens of whole notes (no budget cut), reduced by retrieval or not."""
    from clinical_ml.extraction.retrieval import reduce_note
    from clinical_ml.extraction.rules import RulesExtractor

    rules = RulesExtractor()
    return sum(len(gen.tokenizer(gen.prompt(reduce_note(t, rules)[0] if reduce else t),
                                 add_special_tokens=False)["input_ids"]) for t in texts)


def saving(full: int, reduced: int) -> dict:
    return {"prompt_tokens_full": full, "prompt_tokens_retrieval": reduced,
            "prompt_tokens_saved_fraction": round(1 - reduced / full, 4) if full else None}


def retrieval_stage(args, ctx: dict, res: dict) -> None:
    """``res["retrieval"]``: prompt tokens saved and F1 change, same prompt budget both ways."""
    from clinical_ml.notes.datasets import read_mtsamples

    gen, info = ctx["generative"], res.setdefault("retrieval", {})
    trained = gen.cfg
    base = dataclasses.replace(gen.cfg, max_prompt_tokens=args.retrieval_prompt_tokens, retrieval=False)
    mac = ctx["tests"].get("maccrobat2020", [])[:args.retrieval_docs]
    if mac:
        rows = res["table"].setdefault("maccrobat2020_long", {})
        for name, cfg in (("generative", base), ("retrieval", dataclasses.replace(base, retrieval=True))):
            gen.cfg = cfg
            rows[name] = score_row(gen, mac, training_seconds(gen))
        full, red = rows["generative"], rows["retrieval"]
        info["maccrobat_whole_reports"] = {
            "docs": len(mac), "prompt_budget": args.retrieval_prompt_tokens,
            **saving(full["prompt_tokens"], red["prompt_tokens"]),
            "untruncated": saving(prompt_tokens(gen, [d["text"] for d in mac], False),
                                  prompt_tokens(gen, [d["text"] for d in mac], True)),
            **{f"{k}_change": round(red[k] - full[k], 4) for k in ("entity_f1", "entity_f1_lenient", "record_f1")}}
    mt = Path(args.shared) / "mtsamples"
    if mt.is_dir():
        longest = sorted((d["text"] for d in read_mtsamples(mt)), key=len, reverse=True)[:args.mtsamples_long]
        info["mtsamples_longest"] = {"notes": len(longest), "mean_chars": round(sum(map(len, longest)) / len(longest)),
                                     **saving(prompt_tokens(gen, longest, False), prompt_tokens(gen, longest, True))}
    gen.cfg = trained


# ---------------------------------------------------------------- MTSamples quality
def quality_notes(shared: Path, n: int) -> list[dict]:
    """``n`` discharge summaries / consults, chosen by the sha256 of their note_id."""
    from clinical_ml.notes.datasets import read_mtsamples

    docs = [d for d in read_mtsamples(shared / "mtsamples") if d.get("category") in QUALITY_CATEGORIES]
    return sorted(docs, key=lambda d: hashlib.sha256(str(d["id"]).encode()).hexdigest())[:n]


def quality_stage(args, ctx: dict) -> dict:
    """Junk / split / drug-name figures of rules and encoder_real on MTSamples notes (no gold)."""
    from clinical_ml.extraction.quality import drug_lexicon, quality_report
    from clinical_ml.extraction.rules import RulesExtractor

    notes = quality_notes(ctx["shared"], args.quality_notes)
    texts = [d["text"] for d in notes]
    lexicon = drug_lexicon()
    all_train = [d for docs in ctx["train"].values() for d in docs]
    extractors = {"rules": RulesExtractor().fit(all_train), "rules_seed_lexicon": RulesExtractor(),
                  "encoder_real": ctx["encoder_real"]}
    out: dict = {"notes": len(notes), "categories": list(QUALITY_CATEGORIES),
                 "rules_fitted_on": "the synthetic + real training documents (encoder_real's corpora)"}
    for name, ext in extractors.items():
        t0 = time.time()
        preds = ext.extract(texts)
        out[name] = {**quality_report(texts, preds, lexicon), "notes_per_s": round(len(texts) / (time.time() - t0), 3)}
    for key, rules in (("medication_ratio_to_rules", "rules"), ("medication_ratio_to_untrained_rules", "rules_seed_lexicon")):
        meds = out[rules]["medications"]
        out[key] = round(out["encoder_real"]["medications"] / meds, 3) if meds else None
    return out


# ---------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    from clinical_ml.io import write_json, write_text

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    warnings.filterwarnings("ignore", module="seqeval")  # "ill-defined" on a label nobody predicted
    torch.set_num_threads(args.threads)
    out_path = Path(args.out)
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-llm-"))
    work.mkdir(parents=True, exist_ok=True)
    res: dict = {"work": str(work), "config": {**vars(args), "skip": sorted(args.skip)}, "stages": {}, "table": {},
                 "machine": {"platform": platform.platform(), "python": platform.python_version(),
                             "cpus": os.cpu_count(), "torch_threads": torch.get_num_threads()}}

    def save() -> None:
        res["peak_rss_mb"] = peak_rss_mb()
        write_json(out_path, res)
        write_text(out_path.with_suffix(".md"), markdown(res))

    def stage(name: str, fn, needs: tuple[str, ...] = ()) -> None:
        """Run ``fn`` unless skipped (``--skip``, or what it needs is missing), then save."""
        missing = [n for n in needs if ctx.get(n) is None]
        if name in args.skip or missing:
            why = "--skip" if name in args.skip else f"needs {', '.join(missing)}, missing or skipped"
            say(f"{name}: skipped ({why})")
            res["stages"][name] = {"skipped": why}
            return
        say(f"{name} ...")
        t0 = time.time()
        fn()
        res["stages"][name] = {"seconds": round(time.time() - t0, 1), "peak_rss_mb": peak_rss_mb()}
        say(f"{name}: {res['stages'][name]['seconds']} s")
        save()

    t0 = time.time()
    ctx: dict = load_data(args, work)
    tests = ctx["tests"] = {k: v[:args.max_docs or None] for k, v in ctx["tests"].items()}
    res["data"] = {"notes": str(ctx["notes"]), "shared": str(ctx["shared"]) if ctx["shared"] else None,
                   "train_docs": {k: len(v) for k, v in ctx["train"].items()},
                   "test_docs": {k: len(v) for k, v in tests.items()}}
    res["stages"]["data"] = {"seconds": round(time.time() - t0, 1)}
    save()

    def rules_stage():
        from clinical_ml.extraction.rules import RulesExtractor

        ctx["rules"] = {c: RulesExtractor().fit(docs) for c, docs in ctx["train"].items()}
        for key, docs in tests.items():
            score_sets(res, "rules", ctx["rules"][key], {key: docs})
            score_sets(res, "rules_seed", RulesExtractor(), {key: docs})  # untrained: seed lexicon only

    def encoder_stage(name: str, notes: Path, reuse: str | None):
        ext = ctx[name] = train_encoder(args, name, notes, reuse, work)
        score_sets(res, name, ext, tests, training_seconds(ext), save)

    def zero_shot_stage():
        from clinical_ml.extraction.generative import zero_shot_extractor

        zs = zero_shot_extractor("smollm2", max_prompt_tokens=args.gen_prompt_tokens,
                                 max_new_tokens=args.gen_target_tokens + 8, chunk_tokens=args.gen_chunk_tokens)
        score_sets(res, "zero_shot", zs, prefix_sets(ctx, args), None, save)

    def generative_stage():
        gen, res["generative_training"] = train_generative(args, ctx, work)
        ctx["generative"] = gen
        save()
        score_sets(res, "generative", gen, prefix_sets(ctx, args), training_seconds(gen), save)

    def prefix_baselines():
        from clinical_ml.extraction.rules import RulesExtractor

        untrained = RulesExtractor()
        for key, docs in prefix_sets(ctx, args).items():
            corpus = key[:-len("_prefix")]
            if ctx.get("rules"):
                score_sets(res, "rules", ctx["rules"][corpus], {key: docs})
            score_sets(res, "rules_seed", untrained, {key: docs})  # the untrained baseline
            for name in ("encoder_synthetic", "encoder_real"):
                if ctx.get(name) is not None:
                    score_sets(res, name, ctx[name], {key: docs}, training_seconds(ctx[name]))

    stage("rules", rules_stage)
    stage("encoder_synthetic", lambda: encoder_stage("encoder_synthetic", ctx["synthetic_only"],
                                                     args.encoder_synthetic_model))
    stage("encoder_real", lambda: encoder_stage("encoder_real", ctx["notes"], args.encoder_model),
          () if args.encoder_model else ("shared",))
    stage("zero_shot", zero_shot_stage)
    stage("generative", generative_stage)
    stage("prefix_baselines", prefix_baselines)
    stage("retrieval", lambda: retrieval_stage(args, ctx, res), ("generative", "shared"))
    stage("mtsamples_quality", lambda: res.update(mtsamples_quality=quality_stage(args, ctx)),
          ("encoder_real", "shared"))
    res["bars"] = compute_bars(res)
    save()
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
