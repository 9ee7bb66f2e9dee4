"""``clinical-ml``: one console script, one subcommand per step script or tool.

Each subcommand is a module with a plain ``main(argv) -> int`` (the same function a SageMaker
container, the local runner and the tests call). Modules are imported lazily, so
``clinical-ml --help`` is instant and a subcommand pays only for what it uses.
"""
from __future__ import annotations

import importlib
import sys

# name -> ("module[:function]", one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    # data layer
    "validate-data": ("clinical_ml.mimic.validate", "check a MIMIC-III folder (local or s3://): tables, rows, schema, values"),
    "synth": ("clinical_ml.synth.generate", "write a synthetic MIMIC-III (full-release layout) with notes and gold annotations"),
    "synth-report": ("clinical_ml.synth.report", "compare synthetic marginals with a reference MIMIC-III (e.g. the demo)"),
    # processing
    "build-tasks": ("processing.build_tasks", "MIMIC-III -> benchmark tasks (ihm, decomp, los, pheno, readmit) as Parquet"),
    "compare-reference": ("processing.compare_reference", "compare task counts with a mimic3-benchmarks output tree"),
    "build-notes": ("processing.build_notes", "NOTEEVENTS + gold annotations -> note datasets (JSONL splits)"),
    # training / evaluation
    "train-outcomes": ("training.train_outcomes", "train XGBoost, LR and GRU outcome models (SageMaker training contract)"),
    "evaluate": ("processing.evaluate_outcomes", "evaluate outcome models: evaluation.json, model_metrics.json, report.html"),
    "compare-models": ("processing.compare_models", "champion vs challenger on the same held-out rows: paired "
                       "bootstrap CIs and a promote decision (comparison.json)"),
    "train-extractor": ("training.train_extractor", "LoRA fine-tune an encoder/LM for clinical information extraction"),
    "evaluate-extractor": ("processing.evaluate_extractor", "evaluate extractors (fine-tuned, zero-shot, rules) on note test sets"),
    "track-runs": ("processing.track_runs", "log an execution to MLflow: parent run, a child run per tuning trial "
                   "and the extractor"),
    # inference
    "extract": ("inference.extract", "batch extraction: JSONL notes in, JSONL entities/relations/record out"),
    "extract-notes": ("processing.extract_notes", "extraction over build-notes' note shards (sharded, resumable) "
                      "+ per-admission note features"),
    "serve": ("inference.serve", "serve a model on 127.0.0.1 with SageMaker's /ping and /invocations"),
    # monitoring
    "baseline": ("monitoring.baseline", "write Model Monitor statistics.json and constraints.json from training features"),
    "drift": ("monitoring.drift_job", "compare captured traffic with the baseline; violations + CloudWatch metrics"),
    "drift-scenarios": ("monitoring.scenarios", "generate drifted traffic (covariate, prevalence, missingness, codes, units)"),
    # pipeline
    "definition": ("pipelines.commands:definition", "print/write the SageMaker pipeline definition JSON (offline)"),
    "upsert-pipeline": ("pipelines.commands:upsert", "create or update the pipeline, model groups, drift alarms and EventBridge rule"),
    "run-pipeline": ("pipelines.commands:run", "start a pipeline execution with parameter overrides"),
    "run-local": ("pipelines.local.cli", "run the pipeline definition on this machine (no Docker, no AWS)"),
    # compliance
    "audit": ("clinical_ml.audit", "verify a hash-chained audit trail"),
    "lineage": ("clinical_ml.lineage", "print the lineage of a registered model version"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: clinical-ml <command> [options]   (clinical-ml <command> --help for details)", "",
             "commands:"]
    lines += [f"  {name.ljust(width)}  {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"clinical-ml: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target = COMMANDS[name][0]
    module_name, _, func_name = target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name or "main")
    from clinical_ml.io import DataError

    try:
        rc = func(rest)
    except DataError as e:  # bad input: one clear line, no traceback
        print(f"clinical-ml {name}: error: {e}", file=sys.stderr)
        return 2
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
