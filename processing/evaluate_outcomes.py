"""Evaluate the outcome models on the test split (SageMaker processing contract).

Inputs: the tuned model (``model.tar.gz`` or an unpacked directory), the test split of the task
tree and, with ``--baselines`` (default ``input/baselines``; absent or empty: none), the LR/GRU
baselines of the TrainBaselines step, scored on the same rows. Outputs in ``--output``:

- ``evaluation.json``: the pipeline's PropertyFile (``gate.*`` read by the condition step);
- ``model_metrics.json``: ModelQuality statistics for the Model Registry;
- ``report.html``: plots and tables.

With ``--note-features DIR`` (default ``input/note_features``; ``DIR/{ihm,readmit}/
note_features.parquet``) and a model trained with note features, ``evaluation.json`` also gets
``note_features``: AUROC/AUPRC of the table model and its with-notes variant on the same test
rows, the difference and its paired bootstrap CI (never in ``gate``; model_metrics.json is the
table model's). Absent or empty folder: as without it.

    python processing/evaluate_outcomes.py --model model/ --test tasks/test --output eval/
    clinical-ml evaluate --model model.tar.gz --test tasks/test --output eval --bootstrap 200
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

# Idle OpenMP threads sleep instead of spinning: XGBoost/torch with a fixed thread count on a
# shared or oversubscribed host otherwise slow down 10-30x. Must precede their import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from clinical_ml.io import processing_dir, resolve_model_dir, write_json, write_text
from clinical_ml.logs import get_logger
from clinical_ml.outcomes import model_metrics, note_features, report
from clinical_ml.outcomes.artifact import load
from clinical_ml.outcomes.bootstrap import DEFAULT_RESAMPLES
from clinical_ml.outcomes.evaluation import MIN_GROUP, evaluate

log = get_logger("evaluate_outcomes")
BASE = processing_dir()


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=f"{BASE}/input/model", help="model.tar.gz, or a folder holding it or the model files")
    p.add_argument("--test", default=f"{BASE}/input/test", help="test split folder of the task tree")
    p.add_argument("--baselines", default=f"{BASE}/input/baselines",
                   help="baseline models (train-outcomes --models lr,gru): model.tar.gz or folder; "
                        "absent or empty: the model's own baselines, if any")
    p.add_argument("--note-features", default=f"{BASE}/input/note_features",
                   help="note features folder <task>/note_features.parquet; absent or empty: none")
    p.add_argument("--output", default=f"{BASE}/output/evaluation", help="output folder")
    p.add_argument("--tasks", default="", help="comma list; default: every trained task with test data")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="bootstrap resamples for 95%% CIs")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--min-group", type=int, default=MIN_GROUP, help="smallest subgroup that gets an AUROC")
    p.add_argument("--threshold", type=float, default=0.5, help="decision threshold for model_metrics.json")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    out = Path(args.output)
    sources = note_features.locate(args.note_features)  # a wrong layout fails before the work
    with tempfile.TemporaryDirectory(prefix="model-") as scratch:
        baselines = Path(args.baselines)
        if baselines.is_file() or (baselines.is_dir() and any(baselines.iterdir())):
            baselines = resolve_model_dir(baselines, Path(scratch) / "baselines")
        else:
            log.info("no baselines in %s: the model's own models only", args.baselines)
            baselines = None
        model = load(resolve_model_dir(args.model, Path(scratch) / "model"), baselines)
        tasks = [t.strip() for t in args.tasks.split(",") if t.strip()] or None
        doc, preds = evaluate(model, args.test, resamples=args.bootstrap, seed=args.seed,
                              min_group=args.min_group, tasks=tasks)
        metrics_doc = model_metrics.build(doc, preds, args.threshold)  # the table model only
        note_preds: dict = {}
        if sources:
            doc["note_features"], note_preds = note_features.evaluate_variants(
                model, args.test, sources, list(doc["tasks"]), args.bootstrap, args.seed)
        else:
            log.info("no note features in %s: table models only", args.note_features)
    write_json(out / "model_metrics.json", metrics_doc)
    write_text(out / "report.html", report.render(doc, preds, note_preds))
    write_json(out / "evaluation.json", doc)  # last: its presence means the folder is complete
    for key, value in doc["gate"].items():
        log.info("gate %s = %.4f", key, value)
    return 0


if __name__ == "__main__":
    sys.exit(main())
