"""Note shards -> extracted annotations (sharded, resumable) and per-admission note features.

Processing contract: reads an extractor (``/opt/ml/processing/input/model``: a directory or
model.tar.gz; ``rules`` for the dictionary baseline) and the note shards of build-notes
(``/opt/ml/processing/input/notes``: ``part-*.jsonl``, or a folder holding ``extract/`` or
``notes/extract/``); writes under ``/opt/ml/processing/output`` (docs/contracts.md "Notes"):

``extracted/part-<shard:05d>.jsonl``
    ``{"id", "entities", "relations", "record"}`` for every note of this shard, sorted by id,
    plus ``extracted/manifest-<shard:05d>.json`` (counts, model, sha256).
``features/note_features.parquet``, ``features/vocabulary.json``, ``features/manifest.json``
    per-admission note features (``clinical_ml.notes.features``), from every shard's output.

Sharding: ``--num-shards K --shard-index I`` keeps the notes whose stable hash of the note id
falls in shard I (the union of K runs equals one run); inside a SageMaker Processing job with
instance_count K the defaults come from /opt/ml/config/resourceconfig.json, as in build-tasks.
Resuming: notes are extracted in ``--checkpoint-every`` chunks, each renamed into
``extracted/.work-<shard>/`` when complete; a rerun of a killed shard reads back the ids of the
complete chunks and of an existing ``part-<shard>.jsonl`` and extracts only the rest (partial
temporary files are ignored), so the part holds each note once. A different model starts over.
Chunks are written sorted by note id and the part is their streaming merge
(``clinical_ml.notes.extracted.merge_sorted``): memory does not grow with the shard.

Throughput: ``--workers`` processes x ``--threads`` intra-op threads (default one single-threaded
worker per core on a CPU, one process on a GPU), ``--precision bf16`` (bf16 autocast, where the
CPU does bf16 in hardware) or ``int8`` (dynamic int8 weights): faster on a CPU, at F1 costs and
batch dependence measured by ``make bench-extract``; ``fp32`` keeps the evaluated model exact.

Features (``--stage features``, or after the extraction of a single-shard run) need every
shard's part (``--extracted``, default OUTPUT/extracted) and a vocabulary: ``--fit-vocabulary``
fits it on the ``--train-admissions`` (a build-tasks tree, whose train/ split is used, or a
CSV/Parquet with HADM_ID) and writes it to ``--vocabulary`` (default
OUTPUT/features/vocabulary.json); without it ``--vocabulary FILE`` is read. ``--cut-hours H``
keeps notes charted at or before the admission's reference time + H (needs ADMISSIONS, and
ICUSTAYS when present, in ``--mimic``); discharge summaries are then left out unless
``--allow-discharge-summary``. ``--feature-sets ihm:48,readmit:all`` writes one such folder per
task instead, ``features/<name>/`` (``all``: every note, the discharge summary included), each
with its own vocabulary. Logs say counts, never note text or patient identifiers.

    clinical-ml extract-notes --model DIR|rules --notes BUILT/notes --output OUT \\
        [--num-shards 2 --shard-index 0] [--stage extract|features|both]
        [--fit-vocabulary --train-admissions TASKS_OUT | --vocabulary FILE] [--cut-hours 48 --mimic DIR]
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, atomic_path, localize, processing_dir, sha256_file, write_json
from clinical_ml.extraction.precision import PRECISIONS
from clinical_ml.logs import get_logger
from clinical_ml.notes.extracted import id_key, merge_sorted, part_name, read_part_lines, shard_of_note, sorted_lines
from clinical_ml.notes.noteevents import extract_parts, iter_extract_notes, read_admission_ids, read_reference_times

log = get_logger("extract_notes")
PROC = processing_dir()
FEATURES_FILE = "note_features.parquet"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from clinical_ml.io import sagemaker_shard

    k, i = sagemaker_shard()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=f"{PROC}/input/model", help="extractor directory / model.tar.gz, or 'rules'")
    p.add_argument("--notes", default=f"{PROC}/input/notes", help="note shards (build-notes notes/extract/)")
    p.add_argument("--output", default=f"{PROC}/output", help="writes OUTPUT/extracted/ and OUTPUT/features/")
    p.add_argument("--num-shards", type=int, default=k)
    p.add_argument("--shard-index", type=int, default=i)
    p.add_argument("--stage", choices=("auto", "extract", "features", "both"), default="auto",
                   help="auto: both for a single shard, extract when sharded (features then run "
                        "once, --stage features, over every shard's part)")
    p.add_argument("--batch-size", type=int, default=64,
                   help="notes per worker batch (64: 35.6 short synthetic notes/s against 27.5 with 16)")
    p.add_argument("--workers", type=int, default=0,
                   help="extraction processes (0: one per usable core on a CPU, 1 on a GPU; see "
                        "clinical_ml.extraction.pool)")
    p.add_argument("--threads", type=int, default=0, help="intra-op threads per worker (0: cores / workers)")
    p.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="the encoder's CPU arithmetic: fp32 keeps the evaluated model exact and the "
                        "output independent of batching; bf16 (CPUs with AVX512-BF16/AMX) and int8 are "
                        "faster at an F1 cost (docs/extraction.md \"Throughput\")")
    p.add_argument("--checkpoint-every", type=int, default=1000, help="notes per resumable chunk")
    p.add_argument("--extracted", default=None, help="every shard's extracted/ parts (default OUTPUT/extracted)")
    p.add_argument("--vocabulary", default=None,
                   help="concept vocabulary JSON: read, or written with --fit-vocabulary "
                        "(default OUTPUT/features/vocabulary.json)")
    p.add_argument("--fit-vocabulary", action="store_true", help="fit the vocabulary on --train-admissions")
    p.add_argument("--train-admissions", default=None,
                   help="training admissions: a build-tasks tree (its train/ split) or a CSV/Parquet with HADM_ID")
    p.add_argument("--top-k", type=int, default=50, help="indicator concepts per label")
    p.add_argument("--min-admissions", type=int, default=5,
                   help="a concept needs this many training admissions to become a column")
    p.add_argument("--cut-hours", type=float, default=None,
                   help="features only from notes charted at or before the admission's reference time + H")
    p.add_argument("--feature-sets", default=None,
                   help="one feature folder per task, FEATURES/NAME/: NAME:HOURS (the --cut-hours of "
                        "that task) or NAME:all (every note), e.g. ihm:48,readmit:all; --vocabulary is "
                        "then a folder of NAME/vocabulary.json")
    p.add_argument("--allow-discharge-summary", action="store_true",
                   help="with --cut-hours, keep discharge summaries (they are written at discharge)")
    p.add_argument("--mimic", default=f"{PROC}/input/mimic", help="MIMIC-III folder (ADMISSIONS, ICUSTAYS) for --cut-hours")
    return p.parse_args(argv)


# ---------------------------------------------------------------- ids, shards
def _nvidia_present() -> bool:
    """An NVIDIA driver's device node exists (a GPU instance or container)."""
    return Path("/dev/nvidiactl").exists() or Path("/proc/driver/nvidia").exists()


def pool_settings(args: argparse.Namespace):
    """Workers x threads and precision of this run (``clinical_ml.extraction.pool``)."""
    from clinical_ml.extraction.pool import PoolSettings, usable_cpus

    cuda = False
    if args.model != "rules" and args.precision == "fp32" and _nvidia_present():
        import torch  # 2 s of import: only where a GPU may be

        cuda = torch.cuda.is_available()
    cpus = usable_cpus()
    workers = args.workers or (1 if cuda or args.model == "rules" else cpus)
    threads = args.threads or max(1, cpus // workers)
    return PoolSettings(workers, threads, args.precision)


def load_extractor(spec: str, settings=None, batch_size: int = 16):
    """An ``extract(texts)`` object over ``settings.workers`` processes (close() it)."""
    from clinical_ml.extraction.pool import ExtractorPool, PoolSettings

    return ExtractorPool(spec, settings or PoolSettings(), batch_size)


def model_fingerprint(spec: str, precision: str = "fp32") -> str:
    """The model's hash (+ its precision, which changes the output): a resume with another
    model or setting starts over."""
    p = Path(spec)
    digest = spec
    for cand in (p / "metadata.json", p / "model.tar.gz", p):
        if cand.is_file():
            digest = sha256_file(cand)
            break
    return digest if precision == "fp32" else f"{digest}+{precision}"


# ---------------------------------------------------------------- extraction
def run_extraction(args: argparse.Namespace, parts: list[Path], out_dir: Path) -> dict:
    from clinical_ml.extraction import finalize

    k, i = args.num_shards, args.shard_index
    final = out_dir / part_name(i)
    work = out_dir / f".work-{i:05d}"
    fingerprint = model_fingerprint(args.model, args.precision)
    manifest_path = out_dir / f"manifest-{i:05d}.json"
    if final.exists() and manifest_path.exists():
        old = json.loads(manifest_path.read_text()).get("model_fingerprint")
        if old != fingerprint:
            log.info("extract-notes: shard %d: the model changed since the last run: starting over", i)
            final.unlink()
            shutil.rmtree(work, ignore_errors=True)
    if work.is_dir() and (work / "model.txt").is_file() and (work / "model.txt").read_text() != fingerprint:
        shutil.rmtree(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "model.txt").write_text(fingerprint)
    for stale in work.glob(".*"):  # partial chunks of a killed run (never renamed into place)
        stale.unlink() if stale.is_file() else shutil.rmtree(stale, ignore_errors=True)
    done: set[tuple] = set()
    sources = ([final] if final.exists() else []) + sorted(work.glob("chunk-*.jsonl"))
    for src in sources:
        done.update(key for key, _ in read_part_lines(src))
    next_chunk = len(list(work.glob("chunk-*.jsonl")))

    ext = None
    shard_keys: set[tuple] = set()
    pending: list[tuple[Any, str]] = []
    extracted = 0
    t0 = time.time()

    def flush() -> None:
        nonlocal ext, next_chunk, extracted
        if not pending:
            return
        if ext is None:
            settings = pool_settings(args)
            log.info("extract-notes: %d worker(s) x %d thread(s), %s precision", settings.workers,
                     settings.threads, settings.precision)
            ext = load_extractor(args.model, settings, args.batch_size)
        lines = []
        for (doc_id, text), ann in zip(pending, ext.extract([t for _, t in pending])):
            ann = finalize(text, ann, doc_id)
            ann.pop("category", None)  # the note's own category is known; not predicted here
            lines.append((id_key(doc_id), json.dumps(ann, ensure_ascii=False) + "\n"))
        with atomic_path(work / f"chunk-{next_chunk:06d}.jsonl") as tmp:  # sorted: merged by streaming
            tmp.write_text("".join(sorted_lines(lines)), encoding="utf-8")
        next_chunk += 1
        extracted += len(pending)
        pending.clear()

    try:
        for note in iter_extract_notes(parts):
            if shard_of_note(note["id"], k) != i:
                continue
            key = id_key(note["id"])
            if key in shard_keys:
                continue
            shard_keys.add(key)
            if key in done:
                continue
            pending.append((note["id"], note["text"]))
            if len(pending) >= args.checkpoint_every:
                flush()
                log.info("extract-notes: shard %d: %d notes extracted (%.1f notes/s)", i, extracted,
                         extracted / max(time.time() - t0, 1e-9))
        flush()
    finally:
        if ext is not None and hasattr(ext, "close"):
            ext.close()
    seconds = time.time() - t0
    resumed = len(done & shard_keys)

    written = merge_sorted(([final] if final.exists() else []) + sorted(work.glob("chunk-*.jsonl")),
                           final, keep=shard_keys.__contains__)
    stats = {"shard": {"index": i, "count": k}, "notes": len(shard_keys), "written": written,
             "resumed": resumed, "extracted": extracted, "seconds": round(seconds, 3),
             "model": args.model if args.model == "rules" else Path(args.model).name,
             "model_fingerprint": fingerprint, "sha256": sha256_file(final)}
    write_json(manifest_path, stats)
    shutil.rmtree(work, ignore_errors=True)
    if written != len(shard_keys):
        raise DataError(f"{final}: {len(shard_keys) - written} notes of shard {i} have no extraction; rerun the shard")
    log.info("extract-notes: shard %d/%d: %d notes (%d done before), extracted %d in %.1fs (%.2f notes/s) -> %s",
             i, k, len(shard_keys), stats["resumed"], extracted, seconds,
             extracted / seconds if seconds > 0 else 0.0, final.name)
    return stats


# ---------------------------------------------------------------- features
def parse_feature_sets(value: str) -> list[tuple[str, float | None, bool]]:
    """``"ihm:48,readmit:all"`` -> [(name, cut hours or None, discharge summaries allowed)]:
    ``H`` keeps notes charted by the reference time + H h (no discharge summary), ``all`` every
    note (the discharge summary included: for tasks predicted at discharge)."""
    out = []
    for item in (v.strip() for v in value.split(",") if v.strip()):
        name, _, cut = item.partition(":")
        if not name.isidentifier() or not cut:
            raise DataError(f"--feature-sets {item!r}: use NAME:HOURS or NAME:all (e.g. ihm:48,readmit:all)")
        if cut == "all":
            out.append((name, None, True))
            continue
        try:
            out.append((name, float(cut), False))
        except ValueError:
            raise DataError(f"--feature-sets {item!r}: {cut!r} is neither hours nor 'all'") from None
    if len({n for n, _, _ in out}) != len(out):
        raise DataError(f"--feature-sets {value!r}: a name appears twice")
    return out


def run_features(args: argparse.Namespace, parts: list[Path], extracted_dir: Path, out: Path,
                 cut_hours: float | None, allow_discharge_summary: bool, vocab_path: Path) -> dict:
    from clinical_ml.notes import features as F

    settings = {"cut_hours": cut_hours, "allow_discharge_summary": bool(allow_discharge_summary)}
    vocabulary = None
    if not args.fit_vocabulary:
        if not vocab_path.is_file():
            raise DataError(f"{vocab_path}: vocabulary not found; fit one on the training split "
                            "(--fit-vocabulary --train-admissions TASKS_OUT) or pass --vocabulary FILE")
        vocabulary = json.loads(vocab_path.read_text(encoding="utf-8"))
        if vocabulary.get("version") != F.VOCABULARY_VERSION or "concepts" not in vocabulary:
            raise DataError(f"{vocab_path}: not a note-feature vocabulary (version {F.VOCABULARY_VERSION}); refit it")
        for key, val in settings.items():
            if vocabulary.get(key) != val:
                log.warning("extract-notes: the vocabulary was fitted with %s=%s, this run uses %s",
                            key, vocabulary.get(key), val)
    train_ids = None
    if args.fit_vocabulary:
        train_ids = read_admission_ids(args.train_admissions, ["train"])
    refs = {}
    if cut_hours is not None:
        from clinical_ml import audit

        refs = read_reference_times(args.mimic)
        audit.ingest_event(args.mimic, ("ADMISSIONS", "ICUSTAYS"), step="extract-notes")

    # note metadata (no text kept): which notes count, for which admission
    use: dict[tuple, int] = {}
    subjects: dict[int, int | None] = {}
    all_keys: set[tuple] = set()
    excluded: dict[str, int] = {}
    for note in iter_extract_notes(parts):
        key = id_key(note["id"])
        all_keys.add(key)
        hadm = note.get("hadm_id")
        if hadm is None:
            excluded["no_hadm_id"] = excluded.get("no_hadm_id", 0) + 1
            continue
        hadm = int(hadm)
        subjects.setdefault(hadm, note.get("subject_id"))
        why = F.exclusion(note.get("category"), F.note_time(note.get("chartdate"), note.get("charttime")),
                          refs.get(hadm), cut_hours, allow_discharge_summary)
        if why:
            excluded[why] = excluded.get(why, 0) + 1
            continue
        use[key] = hadm
    admissions = {h: (s, F.empty_admission()) for h, s in subjects.items()}
    found: set[tuple] = set()
    ext_parts = sorted(extracted_dir.glob("part-*.jsonl")) if extracted_dir.is_dir() else []
    for p in ext_parts:
        for key, line in read_part_lines(p):
            found.add(key)
            hadm = use.get(key)
            if hadm is not None:
                F.add_note(admissions[hadm][1], json.loads(line).get("record"))
    missing = len(all_keys - found)
    if missing:
        raise DataError(f"{extracted_dir}: {missing} of {len(all_keys)} notes have no extraction "
                        f"(parts here: {', '.join(p.name for p in ext_parts) or 'none'}); run every shard "
                        "(--stage extract --shard-index I) into this folder first")
    accs = {h: acc for h, (_, acc) in admissions.items()}
    if vocabulary is None:
        vocabulary = F.fit_vocabulary(accs, train_ids, args.top_k, args.min_admissions, **settings)
        write_json(vocab_path, vocabulary)
    frame = F.feature_frame(admissions, vocabulary)
    with atomic_path(out / FEATURES_FILE) as tmp:
        frame.to_parquet(tmp, index=False)
    if vocab_path.resolve() != (out / "vocabulary.json").resolve():
        write_json(out / "vocabulary.json", vocabulary)
    n_concepts = sum(len(v) for v in vocabulary["concepts"].values())
    stats = {"admissions": len(frame), "notes": len(all_keys), "notes_used": len(use),
             "excluded": dict(sorted(excluded.items())), "columns": len(frame.columns) - 2,
             "concepts": n_concepts, "vocabulary_fitted": bool(args.fit_vocabulary),
             "train_admissions": None if train_ids is None else len(train_ids), **settings,
             "extracted_parts": [p.name for p in ext_parts], "sha256": sha256_file(out / FEATURES_FILE)}
    write_json(out / "manifest.json", stats)
    log.info("extract-notes: features for %d admissions from %d of %d notes (left out: %s); %d concept "
             "columns (vocabulary %s)", stats["admissions"], stats["notes_used"], stats["notes"],
             ", ".join(f"{k} {v}" for k, v in stats["excluded"].items()) or "none", n_concepts,
             f"fitted on {len(train_ids)} training admissions" if train_ids is not None else f"read from {vocab_path}")
    return stats


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.num_shards < 1 or not 0 <= args.shard_index < args.num_shards:
        raise DataError(f"--shard-index {args.shard_index} must be in 0..{args.num_shards - 1}")
    for name in ("batch_size", "checkpoint_every", "top_k"):
        if getattr(args, name) < 1:
            raise DataError(f"--{name.replace('_', '-')} must be at least 1")
    if args.model != "rules":
        args.model = localize(args.model)
    output = Path(localize(args.output))
    if str(output).startswith("s3://"):
        raise DataError(f"--output {output}: write to a local folder (SageMaker uploads it for you)")
    stage = args.stage if args.stage != "auto" else ("both" if args.num_shards == 1 else "extract")
    want_features = stage == "features" or (stage == "both" and (args.fit_vocabulary or args.vocabulary))
    if want_features and args.fit_vocabulary and not args.train_admissions:
        raise DataError("--fit-vocabulary: the vocabulary is fitted on training-split admissions only; pass "
                        "--train-admissions (the build-tasks output folder or a CSV/Parquet with HADM_ID)")
    if stage in ("extract", "both") and args.model != "rules" and not Path(args.model).exists():
        raise DataError(f"--model {args.model}: not found; pass the train-extractor output (a directory "
                        "or model.tar.gz) or 'rules'")
    parts = extract_parts(args.notes)
    extracted_dir = Path(args.extracted) if args.extracted else output / "extracted"
    if stage in ("extract", "both"):
        run_extraction(args, parts, output / "extracted")
    if want_features:
        features = output / "features"
        if args.feature_sets:
            root = Path(args.vocabulary) if args.vocabulary else features
            for name, cut, allow in parse_feature_sets(args.feature_sets):
                run_features(args, parts, extracted_dir, features / name, cut, allow,
                             root / name / "vocabulary.json")
        else:
            run_features(args, parts, extracted_dir, features, args.cut_hours, args.allow_discharge_summary,
                         Path(args.vocabulary) if args.vocabulary else features / "vocabulary.json")
    elif stage == "both":
        log.info("extract-notes: no note features (pass --fit-vocabulary --train-admissions DIR, or --vocabulary FILE)")
    elif stage == "extract" and args.num_shards > 1:
        log.info("extract-notes: shard %d of %d done; note features run once every shard is: --stage features",
                 args.shard_index, args.num_shards)
    return 0


if __name__ == "__main__":
    sys.exit(main())
