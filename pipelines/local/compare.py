"""Compare the outputs of two executions step by step, by content hash (host run vs container run).

    python -m pipelines.local.compare RUN_A RUN_B [--step BuildTasks --step EvaluateOutcomes]

For each step: the sha256 of every task Parquet file and JSON report in its declared outputs
(``output/<OutputName>/``; ``model.tar.gz`` left out: a tarball records file times). Exit 0 when every step listed is
equal, 1 otherwise, naming the files that differ.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from clinical_ml.io import DataError, sha256_file

DEFAULT_STEPS = ("BuildTasks", "EvaluateOutcomes")
PATTERNS = ("*.parquet", "*.json")
# files that record when or where they were made, not what
SKIP = {"manifest.json", "status.json", "processingjobconfig.json", "resourceconfig.json",
        "model_metrics.json"}  # evaluation_time


def output_hashes(step_dir: Path) -> dict[str, str]:
    out = Path(step_dir) / "output"
    if not out.is_dir():
        raise DataError(f"{step_dir}: no output folder (did the step run?)")
    hashes = {}
    for pattern in PATTERNS:
        for f in sorted(out.rglob(pattern)):
            rel = f.relative_to(out).as_posix()
            # only what the step publishes: output/<OutputName>/...; a file a host run leaves at
            # output/ itself is in no declared output (a container, like SageMaker, drops it)
            if f.is_file() and f.name not in SKIP and "/" in rel:
                hashes[rel] = sha256_file(f)
    return hashes


def compare(run_a: Path, run_b: Path, steps: tuple[str, ...] = DEFAULT_STEPS) -> dict[str, dict]:
    report = {}
    for step in steps:
        a, b = output_hashes(Path(run_a) / "steps" / step), output_hashes(Path(run_b) / "steps" / step)
        differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
        report[step] = {"files": len(a), "equal": not differ and bool(a), "differ": differ,
                        "sha256": {k: a[k] for k in sorted(a) if k.endswith((".parquet", "evaluation.json"))}}
    return report


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m pipelines.local.compare", description=__doc__.splitlines()[0])
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    ap.add_argument("--step", action="append", help=f"step to compare (repeatable; default {', '.join(DEFAULT_STEPS)})")
    args = ap.parse_args(argv)
    report = compare(args.run_a, args.run_b, tuple(args.step or DEFAULT_STEPS))
    print(json.dumps(report, indent=1))
    return 0 if all(r["equal"] for r in report.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
