"""Generative extractor: a causal LM (SmolLM2-135M-Instruct by default) with a LoRA adapter
that reads a note and writes the structured record as compact JSON. Output is parsed,
repaired when needed (validity reported), and grounded back to spans (decoding.py).

The note is read in windows of ``chunk_tokens`` tokens cut at sentence breaks (``chunks.py``),
one prompt and one record per window, the records grounded in their windows and merged: a
small model writes a short window's record far better than a long note's. Training targets are
built from the gold spans inside each window, so the model is never taught to invent what it
cannot see. The target leaves out every default (``target_record``: no null attributes, no
``"negated":false``), which ``parse_record`` puts back.

Corpora annotate different labels (BC5CDR: chemicals and diseases; NCBI-disease: diseases).
The fine-tuned prompt therefore names the fields to write (``### Fields: medications (dose,
route, frequency), problems, tests, procedures``), derived from the document's
``annotated_labels``, and the target holds only those fields: a BC5CDR abstract's target is
``{"medications":[{"name":...}],"problems":[...]}``, so training never teaches "no tests here"
from a corpus that does not annotate tests. At inference the prompt asks for every field the
model was trained on (``GenConfig.labels``: the union over its training documents; none
recorded = every schema label), and ``parse_record`` fills the keys a record leaves out.
``zero_shot_extractor`` prompts the same base without an adapter, with its own instruction (the
baseline the fine-tuning must beat).
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from clinical_ml.extraction.chunks import chunk_bounds, slice_doc
from clinical_ml.extraction.decoding import ground, next_section, parse_record, repeated_item
from clinical_ml.extraction.modeldir import copy_base, write_common
from clinical_ml.extraction.optim import budgeted_schedule, optimizer_step
from clinical_ml.extraction.precision import cpu_bf16
from clinical_ml.logs import get_logger
from clinical_ml.notes.schema import (ATTRIBUTE_RELATIONS, ENTITY_LABELS, FINDING_LABELS, MEDICATION_FIELDS,
                                      annotated_labels, empty_record, record_from_annotations)

log = get_logger(__name__)
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj"]
ZERO_SHOT_INSTRUCTION = (
    "Extract medications (with dose, route, frequency, and form and duration when stated), "
    "problems, tests and procedures from the clinical note. Answer with JSON only, exactly in "
    'this shape: {"medications":[{"name":"aspirin","dose":"81 mg","route":"po","frequency":"daily",'
    '"form":"tablet","duration":"for 7 days"}],'
    '"problems":[{"name":"chest pain","negated":false}],"tests":[{"name":"ecg","negated":false}],'
    '"procedures":[]}')


@dataclass
class GenConfig:
    max_prompt_tokens: int = 256  # note tokens read (a prefix)
    max_target_tokens: int = 160
    max_new_tokens: int = 160
    # note tokens per prompt: the read prefix in windows of this size, one record each, merged
    # (``chunks.chunk_bounds``); 0 = one prompt. Training reads every window of the note.
    chunk_tokens: int = 96
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    retrieval: bool = False
    zero_shot: bool = False
    # the labels the inference prompt asks for (None: every schema label); fit_generative sets
    # the union of its training documents' annotated labels
    labels: list[str] | None = None
    # "### Fields: ..." in the fine-tuned prompt; False for models saved before it existed
    prompt_fields: bool = True


def fields_line(labels) -> str:
    """The prompt's field list: ``medications (dose, route, frequency), problems, tests``."""
    labels = set(labels)
    parts = []
    if "MEDICATION" in labels:
        attrs = [MEDICATION_FIELDS[lab] for lab in ATTRIBUTE_RELATIONS if lab in labels]
        parts.append("medications" + (f" ({', '.join(attrs)})" if attrs else ""))
    parts += [section for label, section in FINDING_LABELS.items() if label in labels]
    return ", ".join(parts)


def target_record(record: dict, labels=ENTITY_LABELS) -> dict:
    """What the model writes for ``record``: the top-level sections ``labels`` annotate, every
    default left out. A medication keeps its name and the annotated attributes that are set; a
    finding is ``{"name":...}``, with ``"negated":true`` only when negated. ``fill_missing``
    puts the defaults back, so the record is the same in fewer tokens (MACCROBAT 192-token
    prefixes: median 222 -> 139 target tokens), and a short target loops less."""
    labels = set(labels)
    out: dict[str, list] = {}
    if "MEDICATION" in labels:
        keys = [MEDICATION_FIELDS[lab] for lab in ATTRIBUTE_RELATIONS if lab in labels]
        out["medications"] = [{"name": m["name"], **{k: m[k] for k in keys if m.get(k) is not None}}
                              for m in record.get("medications", [])]
    for label, section in FINDING_LABELS.items():
        if label in labels:
            out[section] = [{"name": f["name"], **({"negated": True} if f.get("negated") else {})}
                            for f in record.get(section, [])]
    return out


def compact(record: dict, labels=ENTITY_LABELS) -> str:
    """``target_record`` as text: no spaces (the model's target, what ``parse_record`` reads)."""
    return _dumps(target_record(record, labels))


def _dumps(record: dict) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False)


class GenerativeExtractor:
    """``extract(texts)``: prompt -> greedy JSON -> repaired record -> grounded spans."""

    def __init__(self, model, tokenizer, cfg: GenConfig):
        self.model, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.kind = "zero-shot" if cfg.zero_shot else "generative"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self._rules = None

    # -------------------------------------------------------------- prompts
    def visible_text(self, text: str) -> str:
        """The part of the note the prompt budget holds (a prefix, on a token boundary)."""
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        offs = enc["offset_mapping"]
        if len(offs) <= self.cfg.max_prompt_tokens:
            return text
        return text[:offs[self.cfg.max_prompt_tokens - 1][1]]

    @property
    def labels(self) -> tuple[str, ...]:
        """What the inference prompt asks for: ``cfg.labels`` (the training union), else all."""
        return tuple(lab for lab in ENTITY_LABELS if lab in (self.cfg.labels or ENTITY_LABELS))

    def prompt(self, text: str, labels=None) -> str:
        """The zero-shot instruction prompt, or the fine-tuned one naming the fields of
        ``labels`` (default: ``self.labels``)."""
        if self.cfg.zero_shot and getattr(self.tokenizer, "chat_template", None):
            msgs = [{"role": "system", "content": ZERO_SHOT_INSTRUCTION},
                    {"role": "user", "content": text}]
            return self.tokenizer.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        if self.cfg.zero_shot:
            return f"{ZERO_SHOT_INSTRUCTION}\n### Note:\n{text}\n### JSON:\n"
        if not self.cfg.prompt_fields:
            return f"### Note:\n{text}\n### JSON:\n"
        return f"### Fields: {fields_line(self.labels if labels is None else labels)}\n### Note:\n{text}\n### JSON:\n"

    def reduce(self, text: str) -> str:
        if not self.cfg.retrieval:
            return text
        from clinical_ml.extraction.retrieval import reduce_note
        from clinical_ml.extraction.rules import RulesExtractor

        self._rules = self._rules or RulesExtractor()
        return reduce_note(text, self._rules)[0]

    # -------------------------------------------------------------- training data
    def windows(self, text: str, keep=()) -> list[tuple[int, int]]:
        """``(start, end)`` of each prompt's piece of ``text``: ``chunk_tokens`` windows cut at
        sentence breaks (never inside a ``keep`` span), or all of it when not chunking."""
        if not self.cfg.chunk_tokens:
            return [(0, len(text))]
        enc = self.tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        return chunk_bounds(text, [a for a, _ in enc["offset_mapping"]], self.cfg.chunk_tokens, keep)

    def training_pairs(self, doc: dict) -> list[tuple[list[int], list[int]]]:
        """(prompt ids, target ids + eos) for one annotated document: each window of the note
        (chunking), else its visible prefix. The prompt names the fields the document's corpus
        annotates and the target holds only those, from the gold inside the piece."""
        labels = annotated_labels(doc)
        if self.cfg.retrieval:
            # spans no longer line up with the reduced text: rebuild them by grounding the gold record
            text = self.reduce(doc["text"])
            ents, rels = ground(text, doc["record"])
            doc = {**doc, "text": text, "entities": ents, "relations": rels}
        if not self.cfg.chunk_tokens:
            doc = slice_doc(doc, 0, len(self.visible_text(doc["text"])))
        spans = [(e["start"], e["end"]) for e in doc["entities"]]
        pieces = [slice_doc(doc, a, b) for a, b in self.windows(doc["text"], spans)]
        return [self._pair(p, labels) for p in pieces if p["text"].strip()]

    def _pair(self, piece: dict, labels) -> tuple[list[int], list[int]]:
        record = target_record(record_from_annotations(piece["entities"], piece["relations"]), labels)
        p_ids = self.tokenizer(self.prompt(piece["text"], labels), add_special_tokens=False)["input_ids"]
        return p_ids, self._fit_target(record) + [self.tokenizer.eos_token_id]

    def _fit_target(self, record: dict) -> list[int]:
        """Target tokens within budget: drop items from the end until the JSON fits."""
        rec = {k: list(v) for k, v in record.items()}
        while True:
            ids = self.tokenizer(_dumps(rec), add_special_tokens=False)["input_ids"]
            if len(ids) <= self.cfg.max_target_tokens or not any(rec.values()):
                return ids
            longest = max(rec, key=lambda k: len(rec[k]))
            rec[longest].pop()

    # -------------------------------------------------------------- inference
    @torch.no_grad()
    def generate(self, prompts: list[str], written: list[str] | None = None) -> list[str]:
        """Greedy continuations of ``prompts``; with ``written`` (the record text each prompt
        already ends with) a row also stops when its record repeats an item (``repeated_item``)."""
        from transformers import StoppingCriteriaList

        tok = self.tokenizer
        tok.padding_side = "left"
        enc = tok(prompts, return_tensors="pt", padding=True, add_special_tokens=False,
                  return_token_type_ids=False)
        n = enc["input_ids"].shape[1]
        stop = None
        if written is not None:
            def repeats(input_ids: torch.Tensor, scores, **_: Any) -> torch.Tensor:
                texts = tok.batch_decode(input_ids[:, n:], skip_special_tokens=True)
                return torch.tensor([repeated_item(w + t) is not None for w, t in zip(written, texts)])
            stop = StoppingCriteriaList([repeats])
        out = self.model.generate(**enc, max_new_tokens=self.cfg.max_new_tokens, do_sample=False,
                                  pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id,
                                  stopping_criteria=stop)
        return tok.batch_decode(out[:, n:], skip_special_tokens=True)

    def write_records(self, prompts: list[str]) -> list[str]:
        """The record text for each prompt. A row whose record repeats an item is cut before the
        repeat, its section closed and the next one opened, and written on from there (at most one
        round per section): a loop costs that section's tail, not the rest of the record."""
        sections = (["medications"] if "MEDICATION" in self.labels else []) + \
            [sec for lab, sec in FINDING_LABELS.items() if lab in self.labels]
        texts, todo = [""] * len(prompts), list(range(len(prompts)))
        for _ in range(max(1, len(sections))):
            raws = self.generate([prompts[i] + texts[i] for i in todo], [texts[i] for i in todo])
            again = []
            for i, raw in zip(todo, raws):
                texts[i] += raw
                cut = repeated_item(texts[i])
                if cut is not None:
                    texts[i], done = next_section(texts[i], cut, sections)
                    if not done:
                        again.append(i)
            if not again:
                break
            todo = again
        return texts

    def extract(self, texts: list[str], batch_size: int = 4) -> list[dict]:
        """One result per note: its windows' records grounded in their pieces and merged."""
        self.model.eval()
        results = []
        for i in range(0, len(texts), batch_size):
            visible = [self.visible_text(self.reduce(t or "")) for t in texts[i:i + batch_size]]
            pieces = [(k, a, v[a:b]) for k, v in enumerate(visible) for a, b in self.windows(v)
                      if v[a:b].strip()]
            prompts = [self.prompt(p) for _, _, p in pieces]
            raws = [r for j in range(0, len(prompts), batch_size)
                    for r in self.write_records(prompts[j:j + batch_size])]
            for k, text in enumerate(texts[i:i + batch_size]):
                mine = [(a, piece, raw) for (kk, a, piece), raw in zip(pieces, raws) if kk == k]
                results.append(self._merge(text or "", mine))
        return results

    def _merge(self, text: str, pieces: list[tuple[int, str, str]]) -> dict:
        """The note's result from its windows' (offset, piece, generated text): grounded spans
        shifted to note offsets, one record; valid only if every window's JSON was."""
        ents, rels, generated, valid, repaired, n_prompt = [], [], empty_record(), True, False, 0
        for start, piece, raw in pieces:
            record, ok, fixed = parse_record(raw)
            e, r = ground(piece, record)
            rels += [{**x, "head": x["head"] + len(ents), "tail": x["tail"] + len(ents)} for x in r]
            ents += [{**x, "start": x["start"] + start, "end": x["end"] + start} for x in e]
            for key, items in record.items():
                generated[key] += items
            valid, repaired = valid and ok, repaired or fixed
            n_prompt += len(self.tokenizer(self.prompt(piece), add_special_tokens=False)["input_ids"])
        return {"entities": ents, "relations": rels, "record": record_from_annotations(ents, rels),
                "generated_record": generated, "valid_json": valid, "repaired": repaired,
                "prompt_tokens": n_prompt}


# ------------------------------------------------------------------ build / train / save / load
def _load_base(base_dir: str, dtype=torch.float32):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from clinical_ml.extraction.base_models import clear_quantization

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=dtype)  # nosec B615 - local directory
    clear_quantization(model)
    return model, AutoTokenizer.from_pretrained(base_dir)  # nosec B615 - local directory


def build_generative(base_dir: str, cfg: GenConfig) -> GenerativeExtractor:
    from peft import LoraConfig, get_peft_model

    model, tok = _load_base(base_dir)
    lora = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")
    return GenerativeExtractor(get_peft_model(model, lora), tok, cfg)


def _collate(pairs: list[tuple[list[int], list[int]]], pad_id: int) -> dict[str, torch.Tensor]:
    n = max(len(p) + len(t) for p, t in pairs)
    ids = torch.full((len(pairs), n), pad_id, dtype=torch.long)
    labels = torch.full((len(pairs), n), -100, dtype=torch.long)
    mask = torch.zeros((len(pairs), n), dtype=torch.long)
    for k, (p, t) in enumerate(pairs):
        seq = p + t
        ids[k, :len(seq)] = torch.tensor(seq)
        mask[k, :len(seq)] = 1
        labels[k, len(p):len(seq)] = torch.tensor(t)
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def fit_generative(ext: GenerativeExtractor, docs: list[dict], *, epochs: float = 1.0, lr: float = 1e-3,
                   batch_size: int = 4, seed: int = 0, max_steps: int | None = None, accelerator=None,
                   time_budget_s: float | None = None, bf16: bool | None = None) -> dict[str, Any]:
    """LoRA SFT on prompt -> JSON pairs (loss on target tokens only). Documents that annotate
    no label (MTSamples: category only) are left out; ``ext.cfg.labels``, when unset, becomes
    the union of the training documents' annotated labels (what inference prompts ask for)."""
    rng = random.Random(seed)
    torch.manual_seed(seed)
    docs = [d for d in docs if annotated_labels(d)]
    if ext.cfg.labels is None and docs:
        seen = {lab for d in docs for lab in annotated_labels(d)}
        ext.cfg = dataclasses.replace(ext.cfg, labels=[lab for lab in ENTITY_LABELS if lab in seen])
    pairs = [pair for d in docs for pair in ext.training_pairs(d)]
    model = ext.model
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    total = max_steps or max(1, int(math.ceil(len(pairs) / batch_size) * epochs))
    t0 = time.time()
    sched = budgeted_schedule(opt, total, time_budget_s, floor=0.05)
    if accelerator is not None:
        model, opt = accelerator.prepare(model, opt)
    device = accelerator.device if accelerator is not None else torch.device("cpu")
    # CPU bf16 autocast (None: only where the CPU does bf16 natively, ``cpu_bf16``)
    use_autocast = (cpu_bf16() if bf16 is None else bf16) and accelerator is None
    model.train()
    losses, tokens, step = [], 0, 0
    pad = ext.tokenizer.pad_token_id
    while step < total and pairs:
        rng.shuffle(pairs)
        for i in range(0, len(pairs), batch_size):
            batch = {k: v.to(device) for k, v in _collate(pairs[i:i + batch_size], pad).items()}
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=use_autocast):
                loss = model(**batch).loss
            losses.append(optimizer_step(loss, params, opt, sched, accelerator))
            tokens += int(batch["attention_mask"].sum())
            step += 1
            if step % 10 == 0:
                log.info("generative step %d/%d loss %.4f", step, total, sum(losses[-10:]) / 10)
            if step >= total or (time_budget_s and time.time() - t0 > time_budget_s):
                break
        if time_budget_s and time.time() - t0 > time_budget_s:
            break
    if accelerator is not None:
        ext.model = accelerator.unwrap_model(model).cpu().float()
    ext.model.eval()
    dt = max(time.time() - t0, 1e-9)
    return {"steps": step, "losses": losses, "train_tokens": tokens,
            "train_tokens_per_s": round(tokens / dt, 1), "train_seconds": round(dt, 1),
            "examples": len(pairs), "bf16_autocast": use_autocast}


def save_generative(ext: GenerativeExtractor, out: str | Path, base_model: str, base_dir: Path,
                    training: dict[str, Any] | None = None) -> Path:
    from clinical_ml.extraction.base_models import is_alias

    out = Path(out)
    ext.model.save_pretrained(out / "adapter")
    ext.tokenizer.save_pretrained(out / "tokenizer")
    if not is_alias(base_model):
        copy_base(Path(base_dir), out)
    write_common(out, "generative", base_model, {"config": dataclasses.asdict(ext.cfg),
                                                 "training": training or {}})
    return out


def load_generative(model_dir: Path, meta: dict, base_dir: str) -> GenerativeExtractor:
    """The extractor saved by ``save_generative`` (``clinical_ml.extraction.load`` calls this
    for generative model directories)."""
    from peft import PeftModel
    from transformers import AutoTokenizer

    # a model saved before the "### Fields:" line was trained without it
    # ... and one saved before windows read the note in one prompt
    cfg = GenConfig(**{"prompt_fields": False, "chunk_tokens": 0, **meta.get("config", {})})
    model, _ = _load_base(base_dir)
    if (model_dir / "adapter").is_dir():
        model = PeftModel.from_pretrained(model, str(model_dir / "adapter"))
    tok = AutoTokenizer.from_pretrained(str(model_dir / "tokenizer"))  # nosec B615 - local directory
    return GenerativeExtractor(model.eval(), tok, cfg)


def zero_shot_extractor(base: str, **cfg: Any) -> GenerativeExtractor:
    """The base model prompted with an instruction and a JSON example, no adapter."""
    from clinical_ml.extraction.base_models import resolve

    model, tok = _load_base(str(resolve(base)))
    ext = GenerativeExtractor(model.eval(), tok, GenConfig(zero_shot=True, **cfg))
    ext.metadata = {"kind": "zero-shot", "base_model": base, "created": None}
    return ext
