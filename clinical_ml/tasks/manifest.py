"""Merge the per-shard manifests of a task tree into one view (counts summed).

Each shard writes ``<out>/manifest-<shard:05d>.json``; the union of K shards is the sum of
their counts, the same numbers one run reports (tested). Ratios (prevalence, mean LOS) are
recomputed from the summed counts rather than averaged.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, read_json

_RATIOS = {"prevalence", "mean_y"}
_NOT_SUMMED = {"schema_version", "seconds"}
_MAXED = {"step_peak_rss_mib"}  # per-phase peaks: shards run apart, so the largest, not a sum


def _merge(a: Any, b: Any, key: str = "") -> Any:
    """Sum counts (ints, and floats that are sums); keep the first value of anything else."""
    if key in _MAXED and isinstance(a, dict) and isinstance(b, dict):
        return {k: max(a.get(k, 0), b.get(k, 0)) for k in {**a, **b}}
    if isinstance(a, dict) and isinstance(b, dict):
        out = dict(a)
        for k, v in b.items():
            out[k] = _merge(a[k], v, k) if k in a else v
        return out
    if isinstance(a, bool) or isinstance(b, bool) or key in _RATIOS or key in _NOT_SUMMED:
        return a
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a + b
    return a


def load(out: str | Path) -> dict:
    """All shard manifests of ``out`` merged; DataError when there is none."""
    paths = sorted(Path(out).glob("manifest-*.json"))
    if not paths:
        raise DataError(f"{out}: no manifest-*.json; is this a build-tasks output folder?")
    ms = [read_json(p) for p in paths]
    counts = {m["shard"]["count"] for m in ms}
    if len(counts) != 1 or len(ms) != next(iter(counts)):
        raise DataError(f"{out}: {len(ms)} shard manifests for a {sorted(counts)}-shard run; "
                        "wait for every shard (or remove stale outputs)")
    merged = ms[0]
    for m in ms[1:]:
        merged = merge({k: v for k, v in merged.items() if k not in ("config", "features")},
                       m) | {"config": merged["config"], "features": merged.get("features")}
    recompute_ratios(merged.get("tasks", {}))
    merged["shard"] = {"index": None, "count": len(ms)}
    return merged


def merge(a: dict, b: dict) -> dict:
    """Two manifests (or manifest fragments of disjoint subjects: shards, batches) as one:
    counts summed, per-phase peaks maxed, anything else the first's; ratios need
    ``recompute_ratios`` afterwards."""
    return _merge(a, b)


def recompute_ratios(tasks: dict) -> None:
    """Prevalence and mean LOS from summed counts (``{split: {task: counts}}``, in place)."""
    for split in tasks.values():
        for task, v in split.items():
            n = v.get("rows", 0)
            if "sum_y" in v:
                v["sum_y"] = round(v["sum_y"], 6)  # a sum of rounded parts: no float noise
                v["mean_y"] = round(v["sum_y"] / n, 6) if n else None
            if isinstance(v.get("positives"), dict):
                v["prevalence"] = {c: round(p / n, 6) if n else None for c, p in v["positives"].items()}
            elif "positives" in v:
                v["prevalence"] = round(v["positives"] / n, 6) if n else None
