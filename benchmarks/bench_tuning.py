"""``make bench-tuning``: the tuned outcome model against the untuned default, same data and seed.

Reads an execution's TuneOutcomes record (default: the latest execution with one under
``runs/``), trains ``training/train_outcomes.py`` once more with the default hyperparameters on
the very channels the trials got (train, validation, note_features), with the trials' thread
count (1) and seed, and compares validation AUROC of in-hospital mortality, the tuning
objective, with every trial's. Writes ``bench-results/tuning.json`` with the trial table.

    python benchmarks/bench_tuning.py --run runs/<execution id> --out bench-results/tuning.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from clinical_ml.io import read_json, write_json  # noqa: E402
from clinical_ml.outcomes.objective import OBJECTIVE, metric_definitions, metric_lines  # noqa: E402
from pipelines.local.tuning import read_metrics  # noqa: E402


def latest_run(runs: Path) -> Path:
    found = sorted(runs.glob("*/steps/TuneOutcomes/output/tuning.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        sys.exit(f"bench-tuning: no execution with a TuneOutcomes step under {runs}; run `make demo` first")
    return found[-1].parents[3]


def default_trial(trial_dir: Path, threads: int) -> tuple[dict, float]:
    """Train with the default hyperparameters on the trial's channels; its validation metrics."""
    data = trial_dir / "input" / "data"
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, str(ROOT / "training" / "train_outcomes.py"), "--train", str(data / "train"),
               "--validation", str(data / "validation"), "--note-features", str(data / "note_features"),
               "--model-dir", out, "--seed", "0", "--nthread", str(threads)]
        t0 = time.monotonic()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                       env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        seconds = time.monotonic() - t0
        meta = read_json(Path(out) / "metadata.json")
    values = dict(line.split("=", 1) for line in metric_lines(meta["training"]))
    return {k: float(v) for k, v in values.items()}, seconds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="execution folder (default: the latest with a TuneOutcomes step)")
    ap.add_argument("--runs", type=Path, default=ROOT / "runs")
    ap.add_argument("--out", type=Path, default=ROOT / "bench-results" / "tuning.json")
    args = ap.parse_args(argv)
    run = args.run or latest_run(args.runs)
    step = run / "steps" / "TuneOutcomes"
    record = read_json(step / "output" / "tuning.json")
    summaries = record["TrainingJobSummaries"]
    trial_dir = step / "trials" / summaries[0]["TrainingJobName"]
    threads = int(summaries[0]["HyperParameters"].get("nthread") or 1)
    default, seconds = default_trial(trial_dir, threads)
    trials = []
    for s in summaries:
        log = (step / "trials" / s["TrainingJobName"] / "logs" / "step.log")
        # read as the tuning job reads them: the definition's MetricDefinitions regexes
        metrics = read_metrics(log.read_text(errors="replace"), metric_definitions()) if log.is_file() else {}
        trials.append({"name": s["TrainingJobName"], "status": s["TrainingJobStatus"],
                       "objective": (s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value"),
                       "tuned": s["TunedHyperParameters"], "metrics": metrics})
    best = next((t for t in trials if t["objective"] is not None), None)
    result = {"run": str(run), "tuning_job": record["HyperParameterTuningJobName"],
              "strategy": record["HyperParameterTuningJobConfig"].get("Strategy"), "objective": OBJECTIVE,
              "threads_per_trial": threads, "default": {"metrics": default, "seconds": round(seconds, 1)},
              "best": best, "trials": trials,
              "tuned_minus_default": (round(best["objective"] - default[OBJECTIVE], 6)
                                      if best and OBJECTIVE in default else None)}
    write_json(args.out, result)
    print(f"{OBJECTIVE}: default {default.get(OBJECTIVE, float('nan')):.4f}, tuned (best of {len(trials)}) "
          f"{best['objective'] if best else float('nan'):.4f}; {args.out}")
    for t in trials:
        print(f"  {t['name']:<44} {t['status']:<9} {t['objective'] if t['objective'] is not None else '-'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
