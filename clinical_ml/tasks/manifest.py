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


def _merge(a: Any, b: Any, key: str = "") -> Any:
    """Sum counts (ints, and floats that are sums); keep the first value of anything else."""
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
        merged = _merge({k: v for k, v in merged.items() if k not in ("config", "features")},
                        m) | {"config": merged["config"], "features": merged.get("features")}
    for split in merged.get("tasks", {}).values():
        for task, v in split.items():
            n = v.get("rows", 0)
            if "sum_y" in v:
                v["mean_y"] = round(v["sum_y"] / n, 6) if n else None
            if isinstance(v.get("positives"), dict):
                v["prevalence"] = {c: round(p / n, 6) if n else None for c, p in v["positives"].items()}
            elif "positives" in v:
                v["prevalence"] = round(v["positives"] / n, 6) if n else None
    merged["shard"] = {"index": None, "count": len(ms)}
    return merged
