"""``clinical-ml run-local``: execute the pipeline definition on this machine (no AWS; with
``--containers`` each job runs in its image, docs/containers.md).

The definition is the JSON that ``make definition`` writes and ``make upsert-pipeline``
uploads, built by the same ``get_pipeline`` code (``pipelines.commands.build_definition``);
there is no second, hand-written DAG. See docs/local-runner.md.

    clinical-ml run-local [--param Name=Value ...] [--data DIR] [--corpora DIR] [--from-step S] [--run-dir runs]
    clinical-ml run-local --demo          # the whole loop: synth data, train, deploy, drift, retrain
    clinical-ml run-local --containers    # the same, every Processing/Training job in its image
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from clinical_ml.io import DataError, read_json

from pipelines.local.runner import (CORPORA_PARAMETER, DATA_PARAMETER, build_definition, corpora_value, parse_params,
                                    run_execution)


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="clinical-ml run-local", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                    help="override a pipeline parameter (repeatable)")
    ap.add_argument("--data", type=Path, help=f"MIMIC-III folder to run on (sets {DATA_PARAMETER})")
    ap.add_argument("--corpora", metavar="DIR|s3://...|none",
                    help=f"annotated corpora (brat / PubTator / JSONL) for the extractor (sets {CORPORA_PARAMETER}; "
                         "'none': synthetic notes only; with --demo the default is ../shared/data when present)")
    ap.add_argument("--demo", action="store_true",
                    help="the whole loop on synthetic data: train, register, deploy, traffic, drift, retrain")
    ap.add_argument("--from-step", help="resume the latest execution (or --resume RUN) from this step")
    ap.add_argument("--resume", metavar="RUN", help="execution id under --run-dir to reuse succeeded steps from")
    ap.add_argument("--run-dir", type=Path, default=Path("runs"), help="where run folders go (default: runs)")
    ap.add_argument("--definition", type=Path, help="run this definition JSON instead of building it")
    ap.add_argument("--trigger", default="manual", help="recorded as the Trigger parameter (manual|schedule|drift)")
    ap.add_argument("--no-cache", action="store_true", help="ignore CacheConfig: run every step")
    ap.add_argument("--containers", action="store_true",
                    help="run every Processing/Training job inside its image (make images first; docs/containers.md)")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.demo:
        from pipelines.local.demo import run_demo  # the demo's imports only when asked for

        return run_demo(args)
    params = parse_params(args.param)
    if args.data:
        if not args.data.exists():
            raise DataError(f"--data {args.data}: no such folder")
        params[DATA_PARAMETER] = str(args.data.resolve())
    if args.corpora:
        params[CORPORA_PARAMETER] = corpora_value(args.corpora)
    definition = read_json(args.definition) if args.definition else build_definition()
    ex, summary = run_execution(definition, args.run_dir, params, trigger=args.trigger, from_step=args.from_step,
                                resume=args.resume, use_cache=not args.no_cache, containers=args.containers)
    from pipelines.local.report import write_report
    write_report(ex.run_dir, {"executions": [summary], "registered": [], "endpoint": None, "drift": None})
    if ex.failure:
        print(f"run-local: step {ex.failure.step} failed: {ex.failure.message}\n"
              f"  log: {ex.failure.log}\n  run folder: {ex.run_dir}", file=sys.stderr)
        return 1
    print(f"run-local: execution {ex.execution_id} succeeded\n  run folder: {ex.run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
