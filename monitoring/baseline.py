"""Drift baseline (processing step): training features -> Model Monitor statistics.json + constraints.json.

    python -m monitoring.baseline --train /opt/ml/processing/input/train \
        --output /opt/ml/processing/output/baseline

``--train`` is one split of the task tree (``<train>/<task>/part-*.parquet``, docs/contracts.md),
or a folder/file of Parquet. Monitored columns: the ``f_*`` features (the outcome model's request
fields) plus any ``--categorical`` column present (e.g. a diagnosis code clients send along).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

import pandas as pd

from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from clinical_ml.monitor.env import processing_path
from clinical_ml.monitor import formats, stats

log = get_logger("monitoring.baseline")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clinical-ml baseline", description=__doc__.splitlines()[0])
    p.add_argument("--train", default=os.environ.get("SM_CHANNEL_TRAIN", processing_path("input/train")),
                   help="task split folder (or Parquet folder/file) of the training data")
    p.add_argument("--task", default="ihm", help="task whose features the endpoint serves (default ihm)")
    p.add_argument("--output", default=processing_path("output/baseline"))
    p.add_argument("--features", default=r"^f_", help="regex of monitored numeric columns")
    p.add_argument("--categorical", default="icd9_code",
                   help="comma list of categorical columns to monitor when present")
    p.add_argument("--max-rows", type=int, default=500_000,
                   help="sample at most this many rows (statistics are sketches anyway)")
    p.add_argument("--comparison-method", choices=("Robust", "Simple"), default="Robust")
    p.add_argument("--comparison-threshold", type=float, default=0.1)
    p.add_argument("--categorical-drift-method", choices=("LInfinity", "ChiSquared"), default="LInfinity")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_training(train: str, task: str) -> pd.DataFrame:
    root = Path(train)
    if (root / task).is_dir():
        from clinical_ml.tasks.io import read_split
        return read_split(root, task)
    files = [root] if root.is_file() else sorted(root.rglob("*.parquet")) if root.is_dir() else []
    if not files:
        raise DataError(f"{root}: no {task}/part-*.parquet and no Parquet files; pass the "
                        "build-tasks train split (--train <tasks>/train)")
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def monitored_columns(df: pd.DataFrame, features: str, categorical: str) -> list[str]:
    pat = re.compile(features)
    cols = [c for c in df.columns if pat.search(str(c))]
    cols += [c for c in (x.strip() for x in categorical.split(",")) if c and c in df.columns and c not in cols]
    if not cols:
        raise DataError(f"training data has no column matching {features!r}; is this a task split?")
    return cols


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    df = load_training(args.train, args.task)
    if len(df) == 0:
        raise DataError(f"{args.train}: the training split is empty; nothing to baseline")
    if len(df) > args.max_rows:
        df = df.sample(n=args.max_rows, random_state=args.seed)
    cols = monitored_columns(df, args.features, args.categorical)
    for c in cols:  # categorical columns are text even when codes look numeric ("401.9")
        if not c.startswith("f_") and not pd.api.types.is_numeric_dtype(df[c]):
            df[c] = df[c].astype("string")
    statistics = stats.dataset_statistics(df, cols)
    config = {"distribution_constraints": {
        **formats.DEFAULT_MONITORING_CONFIG["distribution_constraints"],
        "comparison_method": args.comparison_method, "comparison_threshold": args.comparison_threshold,
        "categorical_drift_method": args.categorical_drift_method}}
    constraints = stats.suggest_constraints(statistics, config)
    formats.write_baseline(args.output, statistics, constraints)
    log.info("baseline: %d rows, %d features -> %s", len(df), len(cols), args.output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
