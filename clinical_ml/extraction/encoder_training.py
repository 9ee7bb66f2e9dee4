"""Training the encoder extractor: its examples (windows with BIO tags, relation pairs and the
corpus's label mask), the model built from a pretrained encoder (full fine-tuning or LoRA), and
the budgeted training loop (one process or DDP ranks). The model, the features shared with
inference and the inference itself are in ``clinical_ml.extraction.encoder``.
"""
from __future__ import annotations

import random
import time
from typing import Any

import torch
from torch import nn

from clinical_ml.distributed import RankSync
from clinical_ml.extraction.bio import LABEL2ID, tags_for_offsets
from clinical_ml.extraction.encoder import (LORA_TARGETS, EncoderConfig, EncoderExtractorModel, candidate_pairs,
                                            collate, encode_document, length_batches, load_base, loss_on_batch,
                                            pair_features, tag_mask, token_span)
from clinical_ml.extraction.optim import budgeted_schedule, optimizer_step
from clinical_ml.extraction.precision import cpu_bf16
from clinical_ml.logs import get_logger
from clinical_ml.notes.schema import ENTITY_LABELS, annotated_labels

log = get_logger(__name__)


def training_examples(tokenizer, doc: dict, cfg: EncoderConfig, rng: random.Random | None = None) -> list[dict]:
    """One example per window: ids, BIO tag ids, relation pairs with 0/1 labels, category."""
    enc = encode_document(tokenizer, doc["text"], cfg)
    labels = annotated_labels(doc)
    # category-only data (MTSamples): no span supervision at all, not "everything is O"
    ents = doc["entities"] if labels else []
    tagged = [e for e in ents if e["label"] in labels]
    tags = [LABEL2ID[t] for t in tags_for_offsets(enc["offsets"], tagged)] if labels else [-100] * len(enc["ids"])
    mask = tag_mask(labels)
    starts = [s for s, _ in enc["offsets"]]
    spans = [token_span(enc["offsets"], e["start"], e["end"], starts) for e in ents]
    gold_rel = {(r["head"], r["tail"]) for r in doc["relations"]}
    cat = cfg.categories.index(doc["category"]) if doc.get("category") in cfg.categories else -100
    cands = candidate_pairs(ents, spans, cfg.max_pair_tokens)
    out = []
    for ws, we, _, _ in enc["windows"]:
        pairs, pair_labels = [], []
        for i, j, d in cands:
            if not (min(spans[i][0], spans[j][0]) >= ws and max(spans[i][1], spans[j][1]) <= we):
                continue
            pairs.append(pair_features(spans, i, j, d, ws))
            pair_labels.append(1.0 if (i, j) in gold_rel else 0.0)
        out.append({"ids": [tokenizer.cls_token_id] + enc["ids"][ws:we] + [tokenizer.sep_token_id],
                    "tags": [-100] + tags[ws:we] + [-100], "tag_mask": mask, "pairs": pairs,
                    "pair_labels": pair_labels, "category": cat})
    return out


def category_weights(examples: list[dict], n_categories: int) -> torch.Tensor | None:
    """Inverse-frequency class weights for the note-category loss: category is scored by
    macro-F1, and an unweighted head on skewed specialties (MTSamples: half "Surgery")
    collapses onto the majority class."""
    if n_categories == 0:
        return None
    counts = torch.zeros(n_categories)
    for ex in examples:
        if ex["category"] >= 0:
            counts[ex["category"]] += 1
    if counts.sum() == 0:
        return None
    return counts.sum() / (n_categories * counts.clamp(min=1.0))


def build_model(base_dir: str, cfg: EncoderConfig) -> EncoderExtractorModel:
    if cfg.tuning not in ("full", "lora"):
        raise ValueError(f"EncoderConfig.tuning={cfg.tuning!r}: use 'full' or 'lora'")
    base = load_base(base_dir, dropout=cfg.dropout)
    if cfg.tuning == "full":
        freeze_bottom(base, cfg.frozen_layers)
        return EncoderExtractorModel(base, cfg)
    from peft import LoraConfig, get_peft_model  # importing peft costs 6 s on 2 cores

    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=LORA_TARGETS, bias="none")
    return EncoderExtractorModel(get_peft_model(base, lora), cfg)


def freeze_bottom(encoder: nn.Module, frozen_layers: int) -> None:
    """Stop gradients below a depth: 0 = the embeddings, k = also transformer layers [0, k).

    On 2 CPU cores a training step of 8 x 256 tokens took 1.17 s with every weight trained,
    0.93 s with the embeddings frozen (the dense gradient and AdamW state of a 30k x 384 word
    matrix) and 0.73 s with the first two layers frozen too (no backward below them)."""
    if frozen_layers < 0:
        return
    layers = getattr(getattr(encoder, "encoder", None), "layer", None)
    if layers is None or not hasattr(encoder, "embeddings"):
        raise ValueError(f"frozen_layers={frozen_layers}: {type(encoder).__name__} has no BERT-style "
                         "embeddings / encoder.layer to freeze; use frozen_layers=-1")
    if frozen_layers > len(layers):
        raise ValueError(f"frozen_layers={frozen_layers}: the encoder has only {len(layers)} layers")
    for module in [encoder.embeddings, *layers[:frozen_layers]]:
        for p in module.parameters():
            p.requires_grad = False


def default_lr(tuning: str) -> float:
    """The encoder's learning rate: 6e-4 for full fine-tuning (mean real-corpus F1 at 180 CPU
    steps: 0.752 at 1e-4, 0.790 at 3e-4, 0.803 at 6e-4), 3e-3 for LoRA (6e-3 diverged)."""
    return 6e-4 if tuning == "full" else 3e-3


HEAD_LR = 3e-3  # full fine-tuning: the freshly initialised heads still learn at LoRA's rate


def fit(model: EncoderExtractorModel, tokenizer, train_docs: list[dict], *, epochs: float = 2.0,
        lr: float | None = None, batch_size: int = 8, seed: int = 0, max_steps: int | None = None,
        accelerator=None, time_budget_s: float | None = None, bf16: bool | None = None) -> dict[str, Any]:
    """Train the encoder (all weights or its LoRA adapter) + heads; returns loss curve, tokens
    seen and tokens/s. ``lr`` is the encoder's (default ``default_lr``); the heads share it
    under LoRA and get HEAD_LR under full fine-tuning. ``bf16``: the encoder's CPU forward and
    backward under bf16 autocast (None: where the CPU does bf16 in hardware, ``cpu_bf16``; a
    GPU's mixed precision is accelerate's); the model is left in fp32 for inference.

    Under DDP (``accelerator`` with several processes) ``batch_size`` is per rank: every rank
    draws the same global batches (``batch_size`` x ranks windows' worth of tokens, same seed)
    and trains on its strided share of each, so shards are disjoint and every rank takes the
    same number of steps; the logged loss is the mean over ranks and the budget clock is the
    slowest rank's (``RankSync``)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    sync = RankSync(accelerator)
    rank, world = sync.rank, sync.world
    examples = [ex for d in train_docs for ex in training_examples(tokenizer, d, model.cfg, rng)]
    seen = {lab for d in train_docs for lab in annotated_labels(d)}
    model.cfg.labels = [lab for lab in ENTITY_LABELS if lab in seen] or list(ENTITY_LABELS)
    if not examples:
        return {"steps": 0, "losses": [], "train_tokens": 0, "train_tokens_per_s": 0.0}
    cat_weight = category_weights(examples, len(model.cfg.categories))
    heads = [p for p in model.heads.parameters() if p.requires_grad]
    body = [p for p in model.encoder.parameters() if p.requires_grad]
    params = body + heads
    lr = lr or default_lr(model.cfg.tuning)
    opt = torch.optim.AdamW([{"params": body, "lr": lr},
                             {"params": heads, "lr": HEAD_LR if model.cfg.tuning == "full" else lr}],
                            weight_decay=0.01)
    batch_tokens = batch_size * world * model.cfg.max_length
    # a global batch of fewer windows than ranks is skipped by every rank alike
    steps_per_epoch = sum(len(b) >= world for b in length_batches(examples, batch_tokens, random.Random(seed)))
    if not steps_per_epoch:
        from clinical_ml.io import DataError

        raise DataError(f"{len(examples)} training windows: too few for {world} ranks")
    total = max_steps or max(1, int(steps_per_epoch * epochs))
    t0 = time.time()
    sched = budgeted_schedule(opt, total, time_budget_s, clock=sync.clock() if world > 1 else None)
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
    core = model.module if hasattr(model, "module") else model
    on_cpu = accelerator is None or accelerator.device.type == "cpu"
    core.bf16 = use_bf16 = on_cpu and (cpu_bf16() if bf16 is None else bool(bf16))
    model.train()
    losses, tokens, step, windows_seen = [], 0, 0, 0
    pad = tokenizer.pad_token_id or 0
    stop = False
    while step < total and not stop:
        for chunk in length_batches(examples, batch_tokens, rng):
            if world > 1:
                if len(chunk) < world:
                    continue
                chunk = chunk[rank::world]
            batch = collate(chunk, pad)
            if accelerator is not None:
                batch = {k: v.to(accelerator.device) for k, v in batch.items()}
            # through forward under DDP (gradient all-reduce); as before with one process
            loss = model(batch, cat_weight) if world > 1 else loss_on_batch(model, batch, cat_weight)
            value = optimizer_step(loss, params, opt, sched, accelerator)
            tokens += int(batch["attention_mask"].sum())
            windows_seen += len(chunk)
            step += 1
            value, elapsed = sync.step(value, time.time() - t0)
            losses.append(value)
            if step % 20 == 0 and rank == 0:
                log.info("encoder step %d/%d loss %.4f (%.0f s)", step, total,
                         sum(losses[-20:]) / 20, elapsed)
            stop = step >= total or bool(time_budget_s and elapsed > time_budget_s)
            if stop:
                break
    model.eval()
    core.bf16 = False
    dt = max(time.time() - t0, 1e-9)
    out = {"steps": step, "losses": losses, "train_tokens": tokens,
           "train_tokens_per_s": round(tokens / dt, 1), "train_seconds": round(dt, 1),
           "examples": len(examples), "bf16_autocast": use_bf16}
    if world > 1:
        out["ranks"] = world
        out["ranks_in_sync"] = sync.replicas_agree(params)
        if not out["ranks_in_sync"]:
            log.warning("encoder: DDP ranks ended with different weights")
        out["rank_windows"] = sync.gather_ints(windows_seen)
        out["train_tokens"] = sum(sync.gather_ints(tokens))
        out["train_tokens_per_s"] = round(out["train_tokens"] / dt, 1)
    return out
