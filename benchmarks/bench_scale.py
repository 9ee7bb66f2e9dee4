"""Rehearse the pipeline at fractions of the real MIMIC-III's size (issue "full MIMIC-III scale").

For each fraction of the release (46,520 patients; default 1/16, 1/8, 1/4) it generates a
release-density synthetic MIMIC-III (``clinical-ml synth --density release``, cached under
--work), then runs, each in its own process, measured (wall, CPU of the process tree, peak RSS
sampled at 20 Hz):

- BuildTasks: one shard, then ``--shards K`` shards one after another as K instances would;
- TrainOutcomes: every task, ``--models`` (default XGBoost, the served model);
- BuildNotes (the tables without the synthetic gold, as the real database comes) + ExtractNotes:
  the cohort's discharge summaries through ``--extractor``
  (default ``rules``: the encoder's rate on 2 cores is ``make bench-extract``'s figure, and
  the projection below uses it).

It fits wall = a * patients^b per step (least squares in log-log), checks RSS flatness
(largest / smallest peak) and projects the full release: on this machine, on one
ml.m5.4xlarge (16 vCPU; CPU seconds / 8 busy threads, an optimistic bound) and on K
instances (the slowest shard). Results: ``bench-results/scale.json``; ``--plot`` writes a PNG.

    python benchmarks/bench_scale.py --out bench-results/scale.json [--fractions 1/16,1/8,1/4]
        [--shards 2] [--plot docs/scale.png]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_tasks import run_measured, synth  # noqa: E402
from clinical_ml.io import write_json  # noqa: E402

RELEASE_PATIENTS = 46_520
M5_4XLARGE_THREADS = 8  # 16 vCPU = 8 physical cores; DuckDB and XGBoost threads
STEPS = ("build_tasks", "build_tasks_sharded_max", "train_outcomes", "build_notes", "extract_notes")


def _py(*args: str) -> list[str]:
    return [sys.executable, *args]


def _without_gold(src: Path) -> Path:
    """The tables of ``src`` without ``annotations/``: BuildNotes as on the real database,
    whose notes have no gold (the synthetic gold is read whole, to split it, and would grow)."""
    d = src.with_name(src.name + "-nogold")
    d.mkdir(exist_ok=True)
    for f in src.glob("*.csv.gz"):
        if not (d / f.name).exists():
            (d / f.name).symlink_to(f)
    return d


def step(name: str, cmd: list[str], work: Path, n: int) -> dict:
    r = run_measured(cmd, cwd=str(REPO), log=work / f"{name}-{n}.log")
    if r["returncode"] != 0:
        raise SystemExit(f"{name} failed at {n} patients; see {work / f'{name}-{n}.log'}")
    print(f"[{n}] {name}: {r['seconds']} s wall, {r['cpu_seconds']} s CPU, peak {r['peak_rss_mib']} MiB",
          flush=True)
    return r


def run_size(n: int, a: argparse.Namespace, work: Path) -> dict:
    src = synth(n, a.seed, work, "release", workers=min(2, os.cpu_count() or 1))
    res: dict = {"patients": n, "input_mib": round(sum(f.stat().st_size for f in src.glob("*.csv.gz")) / 2**20, 1)}
    tasks, spill = work / f"tasks-{n}", work / "spill"
    for d in (tasks, work / f"tasks-{n}-k", work / f"model-{n}", work / f"notes-{n}", work / f"extract-{n}"):
        shutil.rmtree(d, ignore_errors=True)
    threads = str(min(2, os.cpu_count() or 1))
    build = ["-m", "processing.build_tasks", "--mimic", str(src), "--threads", threads, "--temp-dir", str(spill)]
    res["build_tasks"] = step("build_tasks", _py(*build, "--out", str(tasks)), work, n)
    m = json.loads((tasks / "manifest.json").read_text())
    res["build_tasks"].update(step_seconds=m["step_seconds"], step_peak_rss_mib=m["step_peak_rss_mib"],
                              batches=m["batches"]["count"], stays=m["cohort"]["remove_age_under_18"]["icustays"],
                              rows={s: {t: v["rows"] for t, v in m["tasks"][s].items()} for s in m["tasks"]})
    shards = [step(f"build_tasks_shard{i}", _py(*build, "--out", str(work / f"tasks-{n}-k"),
                                                 "--num-shards", str(a.shards), "--shard-index", str(i)), work, n)
              for i in range(a.shards)]
    res["build_tasks_sharded"] = {"shards": a.shards, "per_shard": shards}
    res["build_tasks_sharded_max"] = max(shards, key=lambda r: r["seconds"])
    shutil.rmtree(work / f"tasks-{n}-k", ignore_errors=True)
    res["train_outcomes"] = step("train_outcomes", _py(
        "-m", "training.train_outcomes", "--train", str(tasks / "train"), "--validation", str(tasks / "val"),
        "--model-dir", str(work / f"model-{n}"), "--models", a.models, "--nthread", threads), work, n)
    meta = json.loads((work / f"model-{n}" / "metadata.json").read_text())
    res["train_outcomes"]["per_task"] = {t: {"n_train": v["n_train"], **({"xgboost_seconds": v["xgboost"]["seconds"],
                                                                           "rounds": v["xgboost"]["rounds"]}
                                                                          if "xgboost" in v else {})}
                                         for t, v in meta["training"].items()}
    res["build_notes"] = step("build_notes", _py("-m", "clinical_ml.cli", "build-notes", "--input", str(_without_gold(src)),
                                                 "--output", str(work / f"notes-{n}"), "--admissions", str(tasks)),
                              work, n)
    res["extract_notes"] = step("extract_notes", _py(
        "-m", "clinical_ml.cli", "extract-notes", "--model", a.extractor, "--notes", str(work / f"notes-{n}" / "notes"),
        "--output", str(work / f"extract-{n}"), "--stage", "extract"), work, n)
    res["extract_notes"]["notes"] = sum(1 for f in (work / f"extract-{n}" / "extracted").glob("part-*.jsonl")
                                        for _ in f.open())
    for d in (work / f"model-{n}", work / f"notes-{n}", work / f"extract-{n}"):
        shutil.rmtree(d, ignore_errors=True)
    return res


def fit(ns: list[int], ys: list[float]) -> dict:
    """wall = a * n^b by least squares on logs; the exponent b says how the step grows."""
    if len(ns) < 2:
        return {"exponent": None}
    b, log_a = np.polyfit(np.log(ns), np.log(np.maximum(ys, 1e-3)), 1)
    return {"exponent": round(float(b), 3), "coefficient": float(math.exp(log_a))}


def summarize(sizes: list[dict], shards: int, notes_per_s_encoder: float | None) -> dict:
    ns = [s["patients"] for s in sizes]
    out: dict = {}
    for name in STEPS:
        walls = [s[name]["seconds"] for s in sizes]
        cpus = [s[name]["cpu_seconds"] for s in sizes]
        rss = [s[name]["peak_rss_mib"] for s in sizes]
        f, fc = fit(ns, walls), fit(ns, cpus)
        scale = RELEASE_PATIENTS / ns[-1]
        b = f["exponent"] if f["exponent"] is not None else 1.0
        bc = fc["exponent"] if fc["exponent"] is not None else 1.0
        out[name] = {"wall_exponent": f["exponent"], "cpu_exponent": fc["exponent"],
                     "peak_rss_mib": rss, "rss_largest_over_smallest": round(max(rss) / min(rss), 3),
                     "full_release_wall_s_here": round(walls[-1] * scale ** max(b, 1.0), 1),
                     "full_release_cpu_s": round(cpus[-1] * scale ** max(bc, 1.0), 1)}
        out[name]["full_release_wall_s_m5_4xlarge"] = round(out[name]["full_release_cpu_s"] / M5_4XLARGE_THREADS, 1)
    out["build_tasks_sharded_max"]["note"] = (f"slowest of {shards} shards: the wall time on {shards} "
                                              "instances (each scans the whole input, keeps its subjects)")
    if notes_per_s_encoder:
        notes = sizes[-1]["extract_notes"]["notes"] * RELEASE_PATIENTS / ns[-1]
        out["extract_notes"]["encoder_projection"] = {
            "discharge_summaries_full_release": round(notes), "encoder_notes_per_s_2_cores": notes_per_s_encoder,
            "hours_2_cores": round(notes / notes_per_s_encoder / 3600, 2)}
    return out


def plot(sizes: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [s["patients"] for s in sizes]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 4))
    for name in STEPS:
        ax1.plot(ns, [s[name]["seconds"] for s in sizes], "o-", label=name)
        ax2.plot(ns, [s[name]["peak_rss_mib"] for s in sizes], "o-", label=name)
    ax1.set(xscale="log", yscale="log", xlabel="patients (release density)", ylabel="wall seconds",
            title="time per step")
    ax2.set(xscale="log", xlabel="patients (release density)", ylabel="peak RSS (MiB)", title="memory per step",
            ylim=(0, None))
    for ax in (ax1, ax2):
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.minorticks_off()
    ax1.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench-results/scale.json")
    p.add_argument("--fractions", default="1/16,1/8,1/4", help="fractions of the release's 46,520 patients")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--shards", type=int, default=2, help="K for the sharded BuildTasks run")
    p.add_argument("--models", default="xgboost", help="train-outcomes --models")
    p.add_argument("--extractor", default="rules", help="extract-notes --model")
    p.add_argument("--encoder-notes-per-s", type=float, default=None,
                   help="the encoder's notes/s on 2 cores (bench-results/extract.json) for the projection")
    p.add_argument("--work", default=str(REPO / "bench-results" / ".work-scale"))
    p.add_argument("--plot", default=None, help="PNG of time and memory per step and size")
    a = p.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    ns = [round(RELEASE_PATIENTS * Fraction(f)) for f in a.fractions.split(",") if f]
    res: dict = {"host": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                          "load_average_at_start": [round(x, 1) for x in os.getloadavg()]},
                 "release_patients": RELEASE_PATIENTS, "fractions": a.fractions, "sizes": []}
    t0 = time.perf_counter()
    for n in ns:
        res["sizes"].append(run_size(n, a, work))
        res["summary"] = summarize(res["sizes"], a.shards, a.encoder_notes_per_s)
        res["seconds"] = round(time.perf_counter() - t0, 1)
        write_json(a.out, res)  # after every size: a long run killed later keeps what it measured
    if a.plot:
        plot(res["sizes"], Path(a.plot))
    for name, s in res["summary"].items():
        print(f"{name}: exponent {s['wall_exponent']}, RSS {s['peak_rss_mib']} MiB "
              f"(x{s['rss_largest_over_smallest']}), full release here ~{s['full_release_wall_s_here']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
