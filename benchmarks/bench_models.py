"""Outcome-model benchmark: training and evaluation time per task, and the IHM bar.

On a synthetic MIMIC-III of ``--patients`` patients (generated and built into a task tree
unless ``--tasks-dir`` points at an existing one), trains XGBoost, LR and GRU with the
training step's defaults, evaluates each task on the test split, and records:

- seconds per task and model for training, seconds per task for evaluation (with bootstrap);
- the bar: XGBoost in-hospital-mortality AUROC beats LR or lies within LR's 95% CI, and both
  AUROCs are far from chance (lower 95% bound >= ``FAR_FROM_CHANCE``).

    python benchmarks/bench_models.py --out bench-results/models.json   # make bench-models
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: XGBoost/torch with a fixed thread count on a
# shared or oversubscribed host otherwise slow down 10-30x. Must precede their import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

FAR_FROM_CHANCE = 0.6


def _run(module: str, argv: list[str]) -> float:
    """Run a step's main() in-process; returns seconds."""
    import importlib

    t0 = time.perf_counter()
    rc = importlib.import_module(module).main(argv)
    if rc:
        raise SystemExit(f"{module} failed with exit code {rc}")
    return time.perf_counter() - t0


def _rows(split: Path) -> dict:
    import pyarrow.parquet as pq

    out = {}
    for task_dir in sorted(p for p in split.iterdir() if p.is_dir()):
        out[task_dir.name] = sum(pq.ParquetFile(f).metadata.num_rows for f in task_dir.glob("part-*.parquet"))
    return out


def bar(ihm: dict) -> dict:
    xgb, lr = ihm["xgboost"]["auroc"], ihm["lr"]["auroc"]
    beats_or_within = xgb["value"] >= lr["value"] or xgb["value"] >= lr["ci_low"]
    far = min(xgb["ci_low"], lr["ci_low"]) >= FAR_FROM_CHANCE
    return {"xgboost_auroc": xgb, "lr_auroc": lr, "gru_auroc": ihm.get("gru", {}).get("auroc"),
            "xgboost_minus_lr": ihm.get("comparisons", {}).get("xgboost_minus_lr_auroc"),
            "xgboost_beats_lr_or_within_its_ci": bool(beats_or_within),
            f"both_lower_ci_at_least_{FAR_FROM_CHANCE}": bool(far), "passed": bool(beats_or_within and far)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="bench-results/models.json")
    p.add_argument("--patients", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default=None, help="keep synthetic data and models here")
    p.add_argument("--tasks-dir", default=None, help="existing task tree (skips synth + build-tasks)")
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--nthread", type=int, default=2)
    p.add_argument("--gru-epochs", type=int, default=3)
    p.add_argument("--max-rounds", type=int, default=500)
    args = p.parse_args(argv)

    from clinical_ml.io import read_json, write_json
    from clinical_ml.outcomes.artifact import load
    from clinical_ml.outcomes.evaluation import evaluate

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="bench-models-"))
    work.mkdir(parents=True, exist_ok=True)
    setup: dict = {}
    if args.tasks_dir:
        tasks = Path(args.tasks_dir)
    else:
        tasks = work / "tasks"
        setup["synth_seconds"] = _run("clinical_ml.synth.generate", [
            "--out", str(work / "mimic"), "--patients", str(args.patients), "--seed", str(args.seed)])
        setup["build_tasks_seconds"] = _run("processing.build_tasks", [
            "--mimic", str(work / "mimic"), "--out", str(tasks)])
    model_dir = work / "model"
    train_seconds = _run("training.train_outcomes", [
        "--train", str(tasks / "train"), "--validation", str(tasks / "val"), "--model-dir", str(model_dir),
        "--seed", str(args.seed), "--nthread", str(args.nthread), "--gru-epochs", str(args.gru_epochs),
        "--max-rounds", str(args.max_rounds)])
    meta = read_json(model_dir / "metadata.json")
    model = load(model_dir)
    evaluation, eval_seconds = {"gate": {}, "tasks": {}}, {}
    for task in model.tasks:
        t0 = time.perf_counter()
        doc, _ = evaluate(model, tasks / "test", resamples=args.bootstrap, seed=0, tasks=[task])
        eval_seconds[task] = round(time.perf_counter() - t0, 3)
        evaluation["gate"].update(doc["gate"])
        evaluation["tasks"].update(doc["tasks"])
    per_task = {}
    for task, summary in meta["training"].items():
        per_task[task] = {
            "rows": {s: _rows(tasks / s).get(task, 0) for s in ("train", "val", "test")},
            "train_seconds": {m: summary[m]["seconds"] for m in ("xgboost", "lr", "gru")
                              if isinstance(summary.get(m), dict) and "seconds" in summary[m]},
            "xgboost_rounds": summary.get("xgboost", {}).get("rounds"),
            "eval_seconds": eval_seconds.get(task),
            "primary": {m: evaluation["tasks"][task].get(m, {}) for m in ("xgboost", "lr", "gru")
                        if m in evaluation["tasks"][task]},
        }
        for m, res in per_task[task]["primary"].items():  # keep the headline metrics only
            keep = ("auroc", "auprc", "brier", "ece", "kappa", "mad", "macro_auroc", "micro_auroc")
            per_task[task]["primary"][m] = {k: v for k, v in res.items() if k in keep}
    result = {
        "benchmark": "models", "patients": None if args.tasks_dir else args.patients,
        "seed": args.seed, "bootstrap_resamples": args.bootstrap, "nthread": args.nthread,
        "gru_epochs": args.gru_epochs, "gru_device": meta["training"].get("ihm", {}).get("gru", {}).get("device"),
        "setup": setup, "train_total_seconds": round(train_seconds, 3), "tasks": per_task,
        "gate": evaluation["gate"], "ihm_bar": bar(evaluation["tasks"]["ihm"]) if "ihm" in evaluation["tasks"] else None,
        "environment": {"python": platform.python_version(), "cpus": os.cpu_count(),
                        "machine": platform.machine()},
        "code_version": meta["code_version"],
    }
    write_json(args.out, result)
    print(f"wrote {args.out}: gate {result['gate']}; ihm bar passed: "
          f"{(result['ihm_bar'] or {}).get('passed')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
