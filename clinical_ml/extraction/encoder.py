"""Encoder extractor: one LoRA-adapted encoder (all-MiniLM-L6-v2 by default) with three small
heads trained together: token classification (BIO NER), relation classification (does this
DOSE/ROUTE/FREQUENCY belong to that MEDICATION?) and note classification (category).

Long notes are cut into overlapping token windows; each token's tag comes from the window
that holds it most centrally, so a 100k-character note costs only more windows. Negation is
decided by the shared NegEx rules (clinical_ml.extraction.negation). Training (examples,
model building, the loop) is in ``clinical_ml.extraction.encoder_training``.
"""
from __future__ import annotations

import bisect
import math
import random
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from clinical_ml.extraction.bio import BIO_LABELS, LABEL2ID, decode_words
from clinical_ml.extraction.gazetteer import Gazetteer
from clinical_ml.extraction.negation import apply_negation
from clinical_ml.extraction.propagate import propagate
from clinical_ml.extraction.spans import by_length
from clinical_ml.extraction.rules import add_attributes, link_nearest
from clinical_ml.notes.schema import ATTRIBUTE_RELATIONS, ENTITY_LABELS, record_from_annotations

DIST_BUCKETS = 10
LORA_TARGETS = ["query", "key", "value", "dense"]
MAX_MEDS_PER_ATTRIBUTE = 4  # candidate medications per dose/route/frequency, nearest first


@dataclass
class EncoderConfig:
    max_length: int = 256
    overlap: int = 32
    max_pair_tokens: int = 64
    # "full": every encoder weight trains (the default); "lora": a peft LoRA adapter on
    # LORA_TARGETS. On 2 CPU cores, at the same 180 steps, full fine-tuning of this 22 M-parameter
    # encoder reached a mean real-corpus lenient F1 of 0.80 against LoRA's 0.75 (BC5CDR
    # MEDICATION 0.85 / 0.81, PROBLEM 0.86 / 0.81, NCBI-disease 0.85 / 0.82) for 20% more time a
    # step: in a short budget the adapter's low rank is what limits it, not memory
    tuning: str = "full"
    # full tuning: -1 trains every weight; 0 freezes the embeddings, k also the first k
    # transformer layers. A frozen bottom needs no backward pass, so a time budget buys more
    # steps (see ``encoder_training.freeze_bottom``)
    frozen_layers: int = -1
    lora_r: int = 16
    lora_alpha: int = 32
    # no dropout in the base model or the adapter: on CPU its random masks were 45% of a
    # training step (2.45 -> 1.35 s for 8 x 256 tokens, with SDPA attention), and a budgeted
    # run sees each window about once, so there is nothing to regularize against
    lora_dropout: float = 0.0
    dropout: float = 0.0
    categories: list[str] = field(default_factory=list)
    # labels some training document annotates; the others' tags are never predicted (their
    # logits got no training signal)
    labels: list[str] = field(default_factory=lambda: list(ENTITY_LABELS))
    # a word gets a tag of these labels only when the model is this sure of it, else O. Chosen
    # on the dev splits and on MTSamples notes outside the quality set (never the test splits
    # or the quality notes): with the token-level label mask, MEDICATION at 0.7 against 0.6 gave
    # dev F1 BC5CDR 0.888 / 0.882 and MACCROBAT 0.807 / 0.777 for one demo model (0.888 / 0.897
    # and 0.730 / 0.728 for another) and raised the share of drug names among MEDICATION
    # predictions on real notes from 0.82 to 0.84 (0.84 to 0.86). Trained with MACCROBAT twice
    # (``--oversample``), the model calls more analytes and devices medications ("cholesterol",
    # "BiPAP"); 0.8 against 0.7 then kept dev MEDICATION F1 (BC5CDR 0.904 / 0.903, MACCROBAT
    # 0.752 / 0.754) and raised the drug-name share on 240 notes outside the quality set from
    # 0.827 to 0.846 (0.9: 0.859, at 0.892 / 0.749). PROBLEM lost F1 at any floor, so it has none
    min_confidence: dict[str, float] = field(default_factory=lambda: {"MEDICATION": 0.8})
    # DOSE, ROUTE and FREQUENCY of the rules' patterns where the encoder tagged nothing, and
    # an attribute the relation head leaves unlinked goes to the nearest medication of its
    # sentence (``rules.link_nearest``). The corpora rarely annotate these labels (BC5CDR and
    # NCBI-disease never), so a model trained for minutes on a CPU hardly predicts them (one
    # demo model on the synthetic test notes: DOSE recall 0.10, ROUTE 0.00), while their
    # written forms are regular ("81 mg", "PO", "BID"; the patterns' F1 there 0.97 / 1.00 / 0.85)
    attribute_patterns: bool = True


def _bucket(d: int) -> int:
    return min(DIST_BUCKETS - 1, int(math.log2(1 + abs(d))))


def pair_features(spans: list, i: int, j: int, d: int, ws: int) -> list[int]:
    """Candidate pair (attribute ``i``, medication ``j``, token distance ``d``) as the relation
    head reads it: both token spans relative to window start ``ws`` (+1 for [CLS]) and the
    signed distance bucket. One definition for training and inference, so they cannot drift."""
    return [spans[i][0] - ws + 1, spans[i][1] - ws + 1, spans[j][0] - ws + 1, spans[j][1] - ws + 1,
            _bucket(d) + (DIST_BUCKETS if d < 0 else 0)]


class EncoderHeads(nn.Module):
    def __init__(self, hidden: int, n_categories: int):
        super().__init__()
        self.ner = nn.Linear(hidden, len(BIO_LABELS))
        self.dist = nn.Embedding(DIST_BUCKETS * 2, 32)
        self.rel = nn.Sequential(nn.Linear(3 * hidden + 32, hidden), nn.GELU(), nn.Linear(hidden, 1))
        self.cls = nn.Linear(hidden, max(1, n_categories))


class EncoderExtractorModel(nn.Module):
    def __init__(self, encoder: nn.Module, cfg: EncoderConfig):
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.heads = EncoderHeads(encoder.config.hidden_size, len(cfg.categories))
        # the encoder's CPU matrix products in bf16 (``clinical_ml.extraction.precision``): a
        # run-time setting, not saved; the heads and the span sums always run in fp32
        self.bf16 = False

    def forward(self, batch: dict[str, torch.Tensor], category_weight: torch.Tensor | None = None) -> torch.Tensor:
        """The training loss: DDP synchronises gradients only for what runs through forward."""
        return loss_on_batch(self, batch, category_weight)

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=self.bf16):
            h = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return h.float()

    def pair_logits(self, h: torch.Tensor, pairs: torch.Tensor) -> torch.Tensor:
        """pairs: (n, 6) = window, head start, head end, tail start, tail end (token idx), dist bucket."""
        if pairs.numel() == 0:
            return h.new_zeros(0)
        # span means from prefix sums: one gather instead of a Python loop per pair
        cs = nn.functional.pad(h.cumsum(1), (0, 0, 1, 0))
        w = pairs[:, 0]

        def span_mean(s: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
            return (cs[w, e] - cs[w, s]) / (e - s).clamp(min=1).unsqueeze(-1).to(h.dtype)

        hh = span_mean(pairs[:, 1], pairs[:, 2])
        tt = span_mean(pairs[:, 3], pairs[:, 4])
        feats = torch.cat([hh, tt, hh * tt, self.heads.dist(pairs[:, 5])], dim=-1)
        return self.heads.rel(feats).squeeze(-1)


# ------------------------------------------------------------------ features
def windows(n_tokens: int, max_tokens: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(start, end, own_start, own_end) token windows covering [0, n_tokens)."""
    if n_tokens <= max_tokens:
        return [(0, n_tokens, 0, n_tokens)]
    step = max(1, max_tokens - overlap)
    out, start = [], 0
    while True:
        end = min(start + max_tokens, n_tokens)
        own_s = 0 if start == 0 else start + overlap // 2
        last = end >= n_tokens
        own_e = n_tokens if last else start + step + overlap // 2
        out.append((start, end, own_s, own_e))
        if last:
            return out
        start += step


def encode_document(tokenizer, text: str, cfg: EncoderConfig) -> dict[str, Any]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=False,
                    verbose=False)
    return {"ids": enc["input_ids"], "offsets": [tuple(o) for o in enc["offset_mapping"]],
            "windows": windows(len(enc["input_ids"]), cfg.max_length - 2, cfg.overlap)}


def token_span(offsets: list[tuple[int, int]], start: int, end: int,
                starts: list[int] | None = None) -> tuple[int, int] | None:
    """Token index range [a, b) of the tokens overlapping the character span (bisect: long
    notes have tens of thousands of tokens)."""
    starts = starts if starts is not None else [s for s, _ in offsets]
    i = max(0, bisect.bisect_right(starts, start) - 1)
    idx = []
    while i < len(offsets) and offsets[i][0] < end:
        s, e = offsets[i]
        if e > s and start < e:
            idx.append(i)
        i += 1
    return (idx[0], idx[-1] + 1) if idx else None


def candidate_pairs(ents: list[dict], spans: list, max_tokens: int) -> list[tuple[int, int, int]]:
    """(attribute index, medication index, token distance) pairs within ``max_tokens``."""
    meds = sorted((spans[j][0], j) for j, e in enumerate(ents) if e["label"] == "MEDICATION" and spans[j])
    med_starts = [s for s, _ in meds]
    out = []
    for i, e in enumerate(ents):
        if e["label"] not in ATTRIBUTE_RELATIONS or not spans[i]:
            continue
        lo = bisect.bisect_left(med_starts, spans[i][0] - max_tokens)
        hi = bisect.bisect_right(med_starts, spans[i][0] + max_tokens)
        near = sorted(meds[lo:hi], key=lambda m: abs(m[0] - spans[i][0]))[:MAX_MEDS_PER_ATTRIBUTE]
        out += [(i, j, s - spans[i][0]) for s, j in near]
    return out


def tag_mask(labels: tuple[str, ...]) -> list[bool]:
    """Which BIO tags a document's annotation can speak for: O and the B-/I- tags of its
    annotated labels. The others are masked out of the softmax, so their logits get no
    gradient from it (a BC5CDR abstract teaches nothing about DOSE, for or against)."""
    return [t == "O" or t[2:] in labels for t in BIO_LABELS]


def collate(batch: list[dict], pad_id: int) -> dict[str, torch.Tensor]:
    n = max(len(b["ids"]) for b in batch)
    ids = torch.full((len(batch), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch), n), dtype=torch.long)
    tags = torch.full((len(batch), n), -100, dtype=torch.long)
    pairs, pl = [], []
    for k, b in enumerate(batch):
        ids[k, :len(b["ids"])] = torch.tensor(b["ids"])
        mask[k, :len(b["ids"])] = 1
        if "tags" in b:
            tags[k, :len(b["tags"])] = torch.tensor(b["tags"])
        for p, lab in zip(b.get("pairs", []), b.get("pair_labels", [])):
            pairs.append([k] + p)
            pl.append(lab)
    return {"input_ids": ids, "attention_mask": mask, "tags": tags,
            "pairs": torch.tensor(pairs, dtype=torch.long).reshape(-1, 6),
            "pair_labels": torch.tensor(pl, dtype=torch.float),
            "tag_mask": torch.tensor([b.get("tag_mask") or [True] * len(BIO_LABELS) for b in batch],
                                     dtype=torch.bool),
            "category": torch.tensor([b.get("category", -100) for b in batch], dtype=torch.long)}


def mean_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Masked mean of token states: all-MiniLM-L6-v2 was trained with mean pooling, so this is
    a useful note embedding from step one (its [CLS] state is not)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    return (h * m).sum(1) / m.sum(1).clamp(min=1.0)


def loss_on_batch(model: EncoderExtractorModel, batch: dict[str, torch.Tensor],
                  category_weight: torch.Tensor | None = None) -> torch.Tensor:
    h = model.hidden(batch["input_ids"], batch["attention_mask"])
    loss = h.new_zeros(())
    if (batch["tags"] != -100).any():  # a batch of category-only notes has no tag to score
        # a gold mention's tokens compete with every tag (a BC5CDR chemical is known not to be a
        # TEST); an O token only with the tags its corpus annotates (it may be an unannotated TEST)
        tags = batch["tags"]
        known = (tags != -100) & (tags != LABEL2ID["O"])
        allowed = batch["tag_mask"][:, None, :] | known[..., None]
        logits = model.heads.ner(h).masked_fill(~allowed, -1e4)
        loss = loss + nn.functional.cross_entropy(logits.flatten(0, 1), batch["tags"].flatten(),
                                                  ignore_index=-100)
    if batch["pairs"].numel():
        loss = loss + nn.functional.binary_cross_entropy_with_logits(
            model.pair_logits(h, batch["pairs"]), batch["pair_labels"])
    if model.cfg.categories and (batch["category"] >= 0).any():
        logits = model.heads.cls(mean_pool(h, batch["attention_mask"]))
        weight = category_weight.to(logits.device) if category_weight is not None else None
        loss = loss + 0.5 * nn.functional.cross_entropy(logits, batch["category"], weight=weight,
                                                        ignore_index=-100)
    return loss


# ------------------------------------------------------------------ inference
class EncoderExtractor:
    """``extract(texts)`` with a trained EncoderExtractorModel and its tokenizer."""

    kind = "encoder"

    def __init__(self, model: EncoderExtractorModel, tokenizer, batch_size: int = 16,
                 propagate: bool = True, gazetteer: dict[str, str] | None = None):
        self.model = model.eval()
        self.propagate = propagate
        self.gazetteer = Gazetteer(gazetteer) if gazetteer else None
        self.tokenizer = tokenizer
        self.cfg = model.cfg
        self.batch_size = batch_size

    @torch.no_grad()
    def _window_states(self, encs: list[dict]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Hidden states and attention mask ``(windows, L, H)``, ``(windows, L)`` per document.

        The windows of all documents are run together, sorted by length and cut into batches
        of at most ``batch_size * max_length`` tokens: no batch pads a 20-token window to 256."""
        cls, sep = self.tokenizer.cls_token_id, self.tokenizer.sep_token_id
        examples = [{"ids": [cls] + enc["ids"][ws:we] + [sep], "key": (d, w)}
                    for d, enc in enumerate(encs) for w, (ws, we, _, _) in enumerate(enc["windows"])]
        states: dict[tuple[int, int], torch.Tensor] = {}
        pad = self.tokenizer.pad_token_id or 0
        for chunk in length_batches(examples, self.batch_size * self.cfg.max_length):
            b = collate(chunk, pad)
            dev = next(self.model.encoder.parameters(), torch.empty(0)).device
            # the encoder may sit on a GPU (extract-notes on a GPU instance); the small heads
            # and the decoding stay on the CPU
            h = self.model.hidden(b["input_ids"].to(dev), b["attention_mask"].to(dev)).cpu()
            for k, ex in enumerate(chunk):
                states[ex["key"]] = h[k, :len(ex["ids"])]
        out = []
        for d, enc in enumerate(encs):
            hs = [states[(d, w)] for w in range(len(enc["windows"]))]
            n = max(x.shape[0] for x in hs)
            h = torch.stack([nn.functional.pad(x, (0, 0, 0, n - x.shape[0])) for x in hs])
            mask = torch.stack([torch.arange(n) < x.shape[0] for x in hs]).long()
            out.append((h, mask))
        return out

    def _token_tags(self, enc: dict, h: torch.Tensor) -> list[int]:
        """Each token's tag from the window that holds it most centrally."""
        allowed = torch.tensor(tag_mask(tuple(self.cfg.labels)))
        probs = self.model.heads.ner(h).masked_fill(~allowed, -1e4).softmax(-1)
        conf, pred = probs.max(-1)
        for label, floor in (self.cfg.min_confidence or {}).items():
            ids = [LABEL2ID[f"B-{label}"], LABEL2ID[f"I-{label}"]]
            unsure = (pred.unsqueeze(-1) == torch.tensor(ids)).any(-1) & (conf < floor)
            pred = pred.masked_fill(unsure, LABEL2ID["O"])
        tags = [0] * len(enc["ids"])
        for w, (ws, _, os_, oe) in enumerate(enc["windows"]):
            tags[os_:oe] = pred[w, os_ - ws + 1:oe - ws + 1].tolist()
        return tags

    @torch.no_grad()
    def _annotate(self, text: str, enc: dict, h: torch.Tensor, mask: torch.Tensor) -> dict:
        tag_ids = self._token_tags(enc, h)
        ents = decode_words(text, enc["offsets"], [BIO_LABELS[t] for t in tag_ids])
        if self.gazetteer is not None:
            ents = self.gazetteer.add_to(text, ents)
        if self.cfg.attribute_patterns:
            ents = add_attributes(text, ents)
        ents = apply_negation(text, propagate(text, ents) if self.propagate else ents)
        rels = self._relations(h, enc, ents)
        if self.cfg.attribute_patterns:
            linked = {r["head"] for r in rels}
            rels = sorted(rels + [r for r in link_nearest(text, ents) if r["head"] not in linked],
                          key=lambda r: r["head"])
        category = None
        if self.cfg.categories:
            probs = self.model.heads.cls(mean_pool(h, mask)).softmax(-1).mean(0)
            category = self.cfg.categories[int(probs.argmax())]
        return {"entities": ents, "relations": rels, "record": record_from_annotations(ents, rels),
                "category": category}

    def extract_one(self, text: str) -> dict:
        return self.extract([text])[0]

    def _relations(self, h: torch.Tensor, enc: dict, ents: list[dict]) -> list[dict]:
        starts = [s for s, _ in enc["offsets"]]
        spans = [token_span(enc["offsets"], e["start"], e["end"], starts) for e in ents]
        win_starts = [ws for ws, _, _, _ in enc["windows"]]
        pairs, keys = [], []
        for i, j, d in candidate_pairs(ents, spans, self.cfg.max_pair_tokens):
            lo, hi = min(spans[i][0], spans[j][0]), max(spans[i][1], spans[j][1])
            k = max(0, bisect.bisect_right(win_starts, lo) - 1)
            w = next((k2 for k2 in (k - 1, k) if 0 <= k2 < len(enc["windows"])
                      and enc["windows"][k2][0] <= lo and hi <= enc["windows"][k2][1]), None)
            if w is None:
                continue
            ws = enc["windows"][w][0]
            pairs.append([w, *pair_features(spans, i, j, d, ws)])
            keys.append((i, j))
        if not pairs:
            return []
        scores = torch.sigmoid(self.model.pair_logits(h, torch.tensor(pairs, dtype=torch.long))).tolist()
        best: dict[int, tuple[float, int]] = {}
        for (i, j), s in zip(keys, scores):
            if s > 0.5 and s > best.get(i, (0.0, -1))[0]:
                best[i] = (s, j)
        return [{"type": ATTRIBUTE_RELATIONS[ents[i]["label"]], "head": i, "tail": j}
                for i, (_, j) in sorted(best.items())]

    @torch.no_grad()
    def extract(self, texts: list[str], chunk_docs: int = 64) -> list[dict]:
        """Annotations of ``texts``, in order. Documents are encoded ``chunk_docs`` at a time,
        shortest first, so memory stays bounded on a shard of long notes and a chunk's windows
        are of similar length (in input order, 300 short notes padded 24% of their tokens)."""
        out: list[dict | None] = [None] * len(texts)
        order = by_length(texts)
        for c in range(0, len(order), chunk_docs):
            idx = order[c:c + chunk_docs]
            chunk = [texts[i] or "" for i in idx]
            encs = [encode_document(self.tokenizer, t, self.cfg) for t in chunk]
            live = [k for k, e in enumerate(encs) if e["ids"]]
            states = dict(zip(live, self._window_states([encs[k] for k in live])))
            for k, (i, t) in enumerate(zip(idx, chunk)):
                out[i] = (self._annotate(t, encs[k], *states[k]) if k in states else
                          {"entities": [], "relations": [], "record": record_from_annotations([], []), "category": None})
        return out  # type: ignore[return-value]


# ------------------------------------------------------------------ loading
def load_base(base_dir: str, dropout: float | None = None):
    """The pretrained encoder with SDPA attention (fused, and the same function as eager);
    ``dropout`` overrides the checkpoint's BERT dropout rates (training), None keeps them."""
    from transformers import AutoModel

    kw: dict[str, Any] = {"attn_implementation": "sdpa"}
    if _is_bert(base_dir):
        kw["add_pooling_layer"] = False
        if dropout is not None:
            kw.update(hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout)
    return AutoModel.from_pretrained(base_dir, **kw)  # nosec B615 - local directory, offline


def _is_bert(base_dir: str) -> bool:
    import json
    from pathlib import Path

    try:
        return json.loads((Path(base_dir) / "config.json").read_text()).get("model_type") == "bert"
    except (OSError, ValueError):
        return False


def length_batches(examples: list[dict], batch_tokens: int,
                   rng: random.Random | None = None) -> list[list[dict]]:
    """Batches of similar-length windows, at most ``batch_tokens`` padded tokens each, in a
    random order (``rng``; none: shortest first, for inference): a corpus of 300-token
    abstracts cut into 254 + 50-token windows wastes half of every mixed batch on padding."""
    order = sorted(range(len(examples)),
                   key=lambda i: (len(examples[i]["ids"]), rng.random() if rng else i))
    out: list[list[dict]] = []
    cur: list[dict] = []
    longest = 0
    for i in order:
        n = len(examples[i]["ids"])
        if cur and max(longest, n) * (len(cur) + 1) > batch_tokens:
            out.append(cur)
            cur, longest = [], 0
        cur.append(examples[i])
        longest = max(longest, n)
    if cur:
        out.append(cur)
    if rng is not None:
        rng.shuffle(out)
    return out








