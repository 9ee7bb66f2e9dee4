"""LoRA fine-tuning of an extractor (SageMaker training contract).

Reads note datasets (``build-notes`` JSONL, or brat / CoNLL) from ``SM_CHANNEL_TRAIN`` and
``SM_CHANNEL_VALIDATION``; writes the extractor model directory (docs/contracts.md) to
``SM_MODEL_DIR`` and ``validation.json`` to ``SM_OUTPUT_DATA_DIR``.

- ``--kind encoder``: all-MiniLM-L6-v2 + LoRA, heads for BIO NER, relations, note category;
- ``--kind generative``: SmolLM2-135M-Instruct + LoRA producing the JSON record;
- ``--kind rules``: the dictionary baseline, its lexicon fitted on the training split.

``--base-model`` takes ``minilm``, ``smollm2``, a local directory or an ``s3://`` URI. CPU here;
on a GPU instance the loop runs through ``accelerate`` (bf16 where supported).

    python -m training.train_extractor --train notes/train.jsonl --validation notes/val.jsonl \
        --model-dir out/model --kind encoder --epochs 2

Several processes (``--kind encoder``): ``torchrun --nproc_per_node N training/train_extractor.py
...`` (N GPUs; CPU: gloo, ``OMP_NUM_THREADS=1``). ``WORLD_SIZE`` > 1 turns on accelerate's DDP:
``--batch-size`` is per process, each rank trains on a disjoint strided share of the same
seeded global batches, gradients are all-reduced, and the ranks agree on the budget clock
each step (``clinical_ml.distributed.RankSync``). Rank 0 alone logs progress and writes the
model directory, ``validation.json`` and ``training_log.json`` (per-step losses); the other
ranks exit 0 having written nothing. On SageMaker (one container per instance) the entry
point is ``python -m clinical_ml.distributed training/train_extractor.py ARGS``: it reads
``/opt/ml/input/config/resourceconfig.json`` and execs ``torchrun --nproc_per_node <GPUs>
--nnodes <hosts> --node_rank <index of current_host> --master_addr <first host>
--master_port 29500`` (``--standalone`` on one instance; ``torchrun_command``).
"""
from __future__ import annotations

import argparse
import logging
import os
import random
import sys
import time
from collections import Counter
from pathlib import Path

from clinical_ml.io import DataError, write_json
from clinical_ml.logs import get_logger
from clinical_ml.notes.merge import corpus_of

log = get_logger("train_extractor")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ.get
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train", default=env("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"))
    p.add_argument("--validation", default=env("SM_CHANNEL_VALIDATION"))
    p.add_argument("--extra-train", action="append", default=[],
                   help="more training data (brat folder, CoNLL, JSONL); repeatable")
    p.add_argument("--model-dir", default=env("SM_MODEL_DIR", "/opt/ml/model"))
    p.add_argument("--output-data-dir", default=env("SM_OUTPUT_DATA_DIR"))
    p.add_argument("--kind", choices=("encoder", "generative", "rules"), default="encoder")
    p.add_argument("--base-model", default=None, help="minilm | smollm2 | local dir | s3:// URI "
                   "(default: minilm for encoder, smollm2 for generative)")
    p.add_argument("--epochs", type=float, default=2.0)
    p.add_argument("--max-steps", type=int, default=0, help="stop after N optimizer steps (0: epochs)")
    p.add_argument("--time-budget-s", type=float, default=0, help="stop training after this many seconds (0: off)")
    p.add_argument("--lr", type=float, default=None,
                   help="default: encoder 6e-4 (full) / 3e-3 (lora), generative 1e-3")
    p.add_argument("--encoder-tuning", choices=("full", "lora"), default="full",
                   help="encoder: fine-tune every weight (default) or a LoRA adapter (--lora-r)")
    p.add_argument("--frozen-layers", type=int, default=-1,
                   help="encoder, full tuning: -1 trains every weight, 0 freezes the embeddings, k also "
                        "the first k transformer layers (faster steps on a CPU budget)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-length", type=int, default=256, help="tokens per window (encoder) / prompt (generative)")
    p.add_argument("--max-target-tokens", type=int, default=160, help="generative: target JSON budget")
    p.add_argument("--chunk-tokens", type=int, default=96,
                   help="generative: note tokens per prompt, one record per window (0: one prompt per note)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--max-train-docs", type=int, default=600,
                   help="at most N training documents of each corpus (0: all)")
    p.add_argument("--max-synthetic-docs", type=int, default=-1,
                   help="at most N of the synthetic notes (-1: as --max-train-docs; 0: all): with real corpora "
                        "beside them, fewer template notes let the budget go to real text")
    p.add_argument("--oversample", default="",
                   help="CORPUS=K[,CORPUS=K]: each training document of CORPUS K times (after the caps); "
                        "the pipeline passes maccrobat2020=2, its one corpus of clinical narrative")
    p.add_argument("--max-val-docs", type=int, default=10,
                   help="at most N validation documents of each corpus (a sanity figure: EvaluateExtractor "
                        "scores the test split; 20 of each cost the demo's CPU run 17 s)")
    p.add_argument("--gazetteer", action=argparse.BooleanOptionalAction, default=True,
                   help="encoder: also find the training split's reliably annotated names "
                        "(clinical_ml.extraction.gazetteer) where the model tagged nothing")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                   help="bf16 autocast for the CPU training loop (default: where the CPU does bf16 "
                        "in hardware, AVX512-BF16/AMX; clinical_ml.extraction.precision)")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch default)")
    p.add_argument("--save-merged", action="store_true",
                   help="also save base+LoRA merged weights under MODEL_DIR/merged (serving without peft)")
    return p.parse_args(argv)


def load_docs(paths: list[str], limit: int, seed: int) -> list[dict]:
    """Documents of every path, at most ``limit`` of each corpus (``corpus`` field; none =
    synthetic): a cap on the whole set would let the biggest corpus crowd out the others."""
    from clinical_ml.notes.datasets import read_documents

    docs = []
    for p in paths:
        if p and Path(p).exists():
            docs += read_documents(p)
        elif p:
            raise DataError(f"{p}: training data not found (a notes JSONL file/folder, brat folder or CoNLL file)")
    return cap_per_corpus(docs, limit, seed)


def cap_per_corpus(docs: list[dict], limit: int, seed: int, caps: dict[str, int] | None = None) -> list[dict]:
    """At most ``limit`` documents of each corpus (0: all), ``caps[corpus]`` where given."""
    by_corpus: dict[str, list[dict]] = {}
    for d in docs:
        by_corpus.setdefault(corpus_of(d), []).append(d)
    rng = random.Random(seed)
    out = []
    for name in sorted(by_corpus):
        group, cap = by_corpus[name], (caps or {}).get(name, limit)
        out += rng.sample(group, cap) if cap and len(group) > cap else group
    return out


def parse_oversample(spec: str) -> dict[str, int]:
    """``"maccrobat2020=2,bc5cdr=1"`` -> {corpus: times}; a clear error for anything else."""
    out: dict[str, int] = {}
    for item in filter(None, (x.strip() for x in spec.split(","))):
        name, _, times = item.partition("=")
        if not name or not times.isdigit() or int(times) < 1:
            raise DataError(f"--oversample {spec!r}: write CORPUS=K with K a whole number >= 1 "
                            "(e.g. maccrobat2020=2)")
        out[name] = int(times)
    return out


def oversample(docs: list[dict], times: dict[str, int]) -> list[dict]:
    """Each document of corpus C ``times[C]`` times, in place of once. A corpus named that no
    document has is logged and skipped: the pipeline's default names MACCROBAT, which a run
    without that corpus does not have."""
    present = set(map(corpus_of, docs))
    if missing := sorted(set(times) - present):
        log.warning("--oversample: no training document of %s (corpora here: %s); nothing repeated for it",
                    ", ".join(missing), ", ".join(sorted(present)))
    return [d for d in docs for _ in range(times.get(corpus_of(d), 1))]


def corpus_counts(docs: list[dict]) -> str:
    counts = Counter(map(corpus_of, docs))
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def world_size() -> int:
    """Processes of this run (``WORLD_SIZE``, set by torchrun); 1 when started directly."""
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def _accelerator():
    """None on one CPU process (the plain loop); accelerate on a GPU or under torchrun (DDP,
    gloo on CPU / nccl on GPU). ``find_unused_parameters``: a rank's batch may have no
    relation pair or no category, leaving those heads out of its backward pass."""
    import torch

    if not torch.cuda.is_available() and world_size() == 1:
        return None
    from accelerate import Accelerator, DistributedDataParallelKwargs

    if not torch.cuda.is_available():
        mixed = "no"
    else:
        mixed = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return Accelerator(cpu=not torch.cuda.is_available(), mixed_precision=mixed,
                       kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)])


def train_encoder(args, train_docs: list[dict], all_train: list[dict], accelerator=None):
    """The encoder on ``train_docs``; its gazetteer on every training document (``all_train``:
    counting names costs seconds, training on them minutes). Seeded before the LoRA and head
    weights are drawn: one process and N ranks start from the same model."""
    import torch
    from transformers import AutoTokenizer

    from clinical_ml.extraction.base_models import resolve
    from clinical_ml.extraction.encoder import EncoderConfig, EncoderExtractor
    from clinical_ml.extraction.encoder_training import build_model, fit
    from clinical_ml.extraction.gazetteer import fit_gazetteer

    base = args.base_model or "minilm"
    base_dir = resolve(base)
    cats = sorted({d["category"] for d in train_docs if d.get("category")})
    cfg = EncoderConfig(max_length=args.max_length, tuning=args.encoder_tuning, frozen_layers=args.frozen_layers,
                        lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                        categories=cats if len(cats) > 1 else [])
    tok = AutoTokenizer.from_pretrained(str(base_dir))  # nosec B615 - local directory, offline
    torch.manual_seed(args.seed)
    model = build_model(str(base_dir), cfg)
    stats = fit(model, tok, train_docs, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                seed=args.seed, max_steps=args.max_steps or None, accelerator=accelerator,
                time_budget_s=args.time_budget_s or None, bf16=args.bf16)
    if hasattr(model, "module"):
        model = model.module
    if accelerator is not None and not accelerator.is_main_process:
        return None, base, base_dir, stats  # rank 0 builds, validates and saves the extractor
    gazetteer = fit_gazetteer(all_train) if args.gazetteer else None
    stats["gazetteer_terms"] = len(gazetteer or {})
    return EncoderExtractor(model.cpu(), tok, gazetteer=gazetteer), base, base_dir, stats


def train_generative(args, train_docs: list[dict]):
    from clinical_ml.extraction.base_models import resolve
    from clinical_ml.extraction.generative import GenConfig, build_generative, fit_generative

    base = args.base_model or "smollm2"
    base_dir = resolve(base)
    cfg = GenConfig(max_prompt_tokens=args.max_length, max_target_tokens=args.max_target_tokens,
                    chunk_tokens=args.chunk_tokens, lora_r=args.lora_r, lora_alpha=2 * args.lora_r)
    ext = build_generative(str(base_dir), cfg)
    stats = fit_generative(ext, train_docs, epochs=args.epochs, lr=args.lr or 1e-3,
                           batch_size=args.batch_size, seed=args.seed, max_steps=args.max_steps or None,
                           accelerator=_accelerator(), time_budget_s=args.time_budget_s or None,
                           bf16=args.bf16)
    return ext, base, base_dir, stats


def save_merged(ext, out: Path) -> None:
    """Merged weights (LoRA folded into the base) for runtimes without peft; the adapter stays
    the artifact ``load`` uses. A fully fine-tuned encoder is written as it is (the same
    weights as its ``encoder/``)."""
    model = ext.model.encoder if hasattr(ext.model, "encoder") else ext.model
    (model.merge_and_unload() if hasattr(model, "merge_and_unload") else model).save_pretrained(out)
    ext.tokenizer.save_pretrained(out)


def validate(ext, docs: list[dict]) -> dict[str, dict]:
    """Metrics per corpus, each on the labels that corpus annotates."""
    from clinical_ml.extraction.corpus_eval import by_corpus, score

    out = {}
    for name, group in by_corpus(docs).items():
        preds = ext.extract([d["text"] for d in group])
        out[name] = score(group, preds, [p.get("valid_json", True) for p in preds])
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    world, rank = world_size(), int(os.environ.get("RANK", "0") or 0)
    if world > 1:
        if args.kind == "generative":
            raise DataError(f"--kind generative runs in one process (WORLD_SIZE={world}); "
                            "torchrun is for --kind encoder")
        if rank:
            logging.getLogger().setLevel(logging.WARNING)  # rank 0 logs the run
        if args.kind == "rules" and rank:
            return 0  # nothing to distribute: rank 0 fits the lexicon
    import torch

    from transformers.utils import logging as hf_logging

    from clinical_ml.extraction import artifact

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    all_train = load_docs([args.train] + args.extra_train, 0, args.seed)
    caps = {"synthetic": args.max_synthetic_docs} if args.max_synthetic_docs >= 0 else None
    train_docs = oversample(cap_per_corpus(all_train, args.max_train_docs, args.seed, caps),
                            parse_oversample(args.oversample))
    if not train_docs:
        raise DataError(f"{args.train}: no training notes")
    val_docs = load_docs([args.validation], args.max_val_docs, args.seed) if args.validation else []
    log.info("train-extractor: kind=%s, %d train notes (%s), %d validation notes",
             args.kind, len(train_docs), corpus_counts(train_docs), len(val_docs))
    t0 = time.time()
    hyper = {k: v for k, v in vars(args).items() if k not in ("train", "validation", "model_dir",
                                                                "output_data_dir", "extra_train")}
    if args.kind == "rules":
        from clinical_ml.extraction.rules import RulesExtractor

        ext, stats = RulesExtractor().fit(train_docs), {"train_docs": len(train_docs)}
    elif args.kind == "encoder":
        accelerator = _accelerator()
        ext, base, base_dir, stats = train_encoder(args, train_docs, all_train, accelerator)
        if ext is None:  # a DDP rank other than 0: trained its shard, writes nothing
            accelerator.end_training()
            return 0
    else:
        accelerator = None
        ext, base, base_dir, stats = train_generative(args, train_docs)
    losses = stats.pop("losses", [])
    stats.update({"train_docs": len(train_docs), "wall_seconds": round(time.time() - t0, 1),
                  "loss_first": losses[0] if losses else None,
                  "loss_last": sum(losses[-10:]) / len(losses[-10:]) if losses else None,
                  # the per-step curve travels with the model (experiment tracking plots it)
                  "loss_curve": [round(float(v), 5) for v in losses]})
    val = {}
    if val_docs:
        val = validate(ext, val_docs)
        stats["validation"] = {name: {k: m[k] for k in ("entity_f1", "entity_f1_lenient", "record_f1")}
                               for name, m in val.items()}
    training = {"hyperparameters": hyper, **stats}
    out = Path(args.model_dir)
    if args.kind == "rules":
        artifact.save_rules(ext, out, training)
    elif args.kind == "encoder":
        artifact.save_encoder(ext, out, base, base_dir, training)
    else:
        from clinical_ml.extraction.generative import save_generative

        save_generative(ext, out, base, base_dir, training)
    if args.save_merged and args.kind != "rules":
        save_merged(ext, out / "merged")
    if args.output_data_dir:
        write_json(Path(args.output_data_dir) / "validation.json", {"training": training, "validation": val})
        write_json(Path(args.output_data_dir) / "training_log.json",
                   {"world_size": world, "batch_size_per_rank": args.batch_size,
                    "global_batch_size": args.batch_size * world, "steps": stats.get("steps", 0),
                    "losses": losses})
    log.info("train-extractor: done in %.1fs, validation %s", time.time() - t0, stats.get("validation"))
    if world > 1 and args.kind == "encoder":
        accelerator.end_training()
    return 0


if __name__ == "__main__":
    sys.exit(main())
