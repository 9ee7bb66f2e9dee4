"""``make bench-extract``: batch extraction throughput of the encoder on real notes, and what
the speed-ups cost in F1.

Variants (``clinical_ml.extraction.pool``), all on the same notes, side by side in one run:

- ``fp32_1x2``: fp32, one process with 2 intra-op threads: the code before this benchmark
  (the baseline of the 4x bar);
- ``int8_1x2``: dynamic int8 linear layers, one process, 2 threads;
- ``fp32_2x1``: fp32, 2 worker processes with 1 thread each;
- ``int8_2x1``: int8, 2 worker processes with 1 thread each;
- ``bf16_1x2``, ``bf16_2x1``: the encoder under bf16 autocast, only where the CPU does bf16 in
  hardware (``precision.cpu_bf16``; elsewhere they are skipped and the JSON says so).

Each variant runs in its own process (peak RSS is its own), ``--rounds`` times in turns
(ABCDABCD: a noisy neighbour hits every variant alike); the median is reported. Notes:
``--notes`` MTSamples notes drawn with ``random.Random(0).sample`` (the "200 real notes").
F1: lenient per-label and micro entity F1 of each precision on the real corpora's test splits
(``--f1-docs`` per corpus), through ``corpus_eval.score`` as EvaluateExtractor scores them.
Batch invariance: of 24 notes, how many get the same annotation extracted together and one by
one, per precision (what "2 shards == 1 run, byte for byte" needs).

Writes ``bench-results/extract.json`` and the projection for MIMIC-III's 2,083,180 notes.

    python benchmarks/bench_extract.py --model runs/latest/.../TrainExtractor/output/model.tar.gz
"""
from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("CLINICAL_ML_SHARED_DATA", ROOT.parent / "shared" / "data"))
VARIANTS = {"fp32_1x2": (1, 2, "fp32"), "int8_1x2": (1, 2, "int8"), "bf16_1x2": (1, 2, "bf16"),
            "fp32_2x1": (2, 1, "fp32"), "int8_2x1": (2, 1, "int8"), "bf16_2x1": (2, 1, "bf16")}
MIMIC_NOTES = 2_083_180
MIMIC_MEAN_CHARS = 1_800  # assumed: NOTEEVENTS.csv is about 4 GB for 2.08 M rows


def say(msg: str) -> None:
    print(f"[bench-extract] {msg}", file=sys.stderr, flush=True)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=None,
                   help="encoder extractor directory or model.tar.gz (default: the newest demo run's)")
    p.add_argument("--out", default=str(ROOT / "bench-results" / "extract.json"))
    p.add_argument("--shared", default=str(SHARED))
    p.add_argument("--notes", type=int, default=200)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--f1-docs", type=int, default=0, help="test documents per corpus (0: all)")
    p.add_argument("--child", default=None, help=argparse.SUPPRESS)
    p.add_argument("--texts", default=None, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def newest_demo_model(runs: Path = ROOT / "runs") -> str:
    """The newest ``make demo`` TrainExtractor output (model.tar.gz)."""
    found = sorted(runs.glob("*/steps/TrainExtractor/output/model.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise SystemExit(f"no TrainExtractor model under {runs}: run `make demo` first or pass --model DIR")
    return str(found[-1])


def real_notes(shared: Path, n: int) -> list[str]:
    from clinical_ml.notes.datasets import read_mtsamples

    docs = list(read_mtsamples(shared / "mtsamples"))
    return [d["text"] for d in random.Random(0).sample(docs, min(n, len(docs)))]


def child(args) -> int:
    """One timed run of one variant (in its own process): JSON on stdout."""
    from clinical_ml.extraction.pool import ExtractorPool, PoolSettings

    workers, threads, precision = VARIANTS[args.child]
    texts = json.loads(Path(args.texts).read_text())
    t0 = time.time()
    with ExtractorPool(args.model, PoolSettings(workers, threads, precision)) as pool:
        pool.extract(texts[:2 * workers])  # warm-up: every worker loaded and past its first batch
        load_s = time.time() - t0
        t1 = time.time()
        out = pool.extract(texts)
        seconds = time.time() - t1
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "load_s": load_s, "entities": sum(len(a["entities"]) for a in out),
                      "rss_mb_main": round(own, 1), "rss_mb_worker": round(kids, 1) if workers > 1 else None,
                      "rss_mb_total": round(own + (kids * workers if workers > 1 else 0), 1)}))
    return 0


def timed(args, name: str, texts_file: Path) -> dict:
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    r = subprocess.run([sys.executable, __file__, "--model", args.model, "--child", name, "--texts", str(texts_file)],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    if r.returncode:
        raise SystemExit(f"variant {name} failed:\n{r.stderr[-2000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def f1_stage(args, precisions: list[str], texts: list[str]) -> dict:
    """Lenient F1 per corpus and precision, and each precision's batch invariance."""
    from clinical_ml.extraction import load
    from clinical_ml.extraction.corpus_eval import score
    from clinical_ml.notes.corpora import read_corpora

    import torch

    torch.set_num_threads(2)
    corpora = {c: sp["test"][:args.f1_docs or None] for c, sp in read_corpora(args.shared).items() if sp["test"]}
    out: dict = {"batch_invariance": {}}
    for q in precisions:
        ext = load(args.model, precision=q)
        for corpus, docs in corpora.items():
            m = score(docs, ext.extract([d["text"] for d in docs]))
            lenient = m["entities"]["lenient"]
            out.setdefault(corpus, {})[q] = {
                "docs": len(docs), "lenient_micro_f1": round(lenient["micro"]["f1"], 4),
                "lenient_f1": {lab: round(v["f1"], 4) for lab, v in lenient["per_label"].items()}}
            say(f"F1 {q} {corpus}: lenient micro {lenient['micro']['f1']:.4f}")
        probe = texts[:24]
        together = ext.extract(probe)
        alone = [ext.extract([t])[0] for t in probe]
        same = sum(json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True) for a, b in zip(together, alone))
        out["batch_invariance"][q] = {"notes": len(probe), "identical": same}
        say(f"{q}: {same} of {len(probe)} notes annotated alike together and one by one")
    for corpus, row in out.items():
        if corpus == "batch_invariance" or "fp32" not in row:
            continue
        for q in [q for q in precisions if q != "fp32" and q in row]:
            diff = {lab: round(100 * (row[q]["lenient_f1"][lab] - row["fp32"]["lenient_f1"][lab]), 2)
                    for lab in row["fp32"]["lenient_f1"]}
            diff["micro"] = round(100 * (row[q]["lenient_micro_f1"] - row["fp32"]["lenient_micro_f1"]), 2)
            row[f"{q}_minus_fp32_points"] = diff
    return out


def projection(chars_per_s: float) -> dict:
    """Hours for MIMIC-III's notes on N machines like this one (2 cores), from characters per
    second: the encoder's cost grows with the text, so notes/s of 3,100-character notes would
    mislead for MIMIC-III's shorter average note."""
    rate = chars_per_s / MIMIC_MEAN_CHARS
    return {"notes": MIMIC_NOTES, "assumed_mean_chars": MIMIC_MEAN_CHARS, "notes_per_s_2_cores": round(rate, 2),
            "hours": {str(n): round(MIMIC_NOTES / (rate * n) / 3600, 1) for n in (1, 8, 16, 64)}}


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.child:
        return child(args)
    args.model = args.model or newest_demo_model()
    from clinical_ml.io import write_json

    shared = Path(args.shared)
    if not (shared / "mtsamples").is_dir():
        raise SystemExit(f"{shared}/mtsamples not found: the benchmark needs real notes (--shared)")
    texts = real_notes(shared, args.notes)
    work = Path(args.out).parent / ".bench-extract"
    work.mkdir(parents=True, exist_ok=True)
    if Path(args.model).is_file():  # a model.tar.gz: unpacked once for every variant
        from clinical_ml.io import resolve_model_dir

        shutil.rmtree(work / "model", ignore_errors=True)
        args.model = str(resolve_model_dir(args.model, work / "model"))
    texts_file = work / "notes.json"
    texts_file.write_text(json.dumps(texts))
    chars = sum(map(len, texts))
    from clinical_ml.extraction.precision import cpu_bf16

    names = [v for v in args.variants.split(",") if v]
    skipped = [n for n in names if VARIANTS[n][2] == "bf16" and not cpu_bf16()]
    names = [n for n in names if n not in skipped]
    if skipped:
        say(f"no bf16 arithmetic on this CPU: skipping {', '.join(skipped)}")
    runs: dict[str, list[dict]] = {n: [] for n in names}
    for r in range(args.rounds):
        for n in names:
            runs[n].append(timed(args, n, texts_file))
            say(f"round {r + 1} {n}: {len(texts) / runs[n][-1]['seconds']:.2f} notes/s")
    table = {}
    for n, rs in runs.items():
        sec = statistics.median(x["seconds"] for x in rs)
        table[n] = {"notes_per_s": round(len(texts) / sec, 2), "chars_per_s": round(chars / sec),
                    "seconds_median": round(sec, 2), "seconds_all": [round(x["seconds"], 2) for x in rs],
                    "load_s": round(statistics.median(x["load_s"] for x in rs), 1),
                    "entities": rs[0]["entities"], "peak_rss_mb": rs[0]["rss_mb_total"],
                    "peak_rss_mb_per_process": max(rs[0]["rss_mb_main"], rs[0]["rss_mb_worker"] or 0)}
    base = table.get("fp32_1x2")
    if base:
        for row in table.values():
            row["speedup_vs_fp32_1x2"] = round(row["notes_per_s"] / base["notes_per_s"], 2)
    precisions = sorted({VARIANTS[n][2] for n in names}, key=lambda q: q != "fp32")
    f1 = f1_stage(args, precisions, texts)
    best = max(table, key=lambda n: table[n]["notes_per_s"])
    res = {"created": time.strftime("%Y-%m-%dT%H:%M:%S"), "model": args.model, "cpus": os.cpu_count(),
           "notes": {"source": "MTSamples, random.Random(0).sample", "n": len(texts),
                     "mean_chars": round(chars / len(texts))},
           "rounds": args.rounds, "throughput": table, "f1": f1, "fastest": best,
           "cpu_bf16": cpu_bf16(), "skipped": skipped,
           "projection_mimic_iii": {n: projection(row["chars_per_s"]) for n, row in table.items()}}
    write_json(Path(args.out), res)
    say(f"wrote {args.out}: fastest {best} {table[best]['notes_per_s']} notes/s"
        + (f" ({table[best]['speedup_vs_fp32_1x2']}x fp32_1x2)" if base else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
