"""A dataset -> Model Monitor ``statistics.json`` and suggested ``constraints.json``.

Numeric features get Model Monitor's numerical statistics: counts, mean, sum, std_dev, min,
max, a 10-bucket equal-width histogram (``kll.buckets``, as the prebuilt container
materializes) and a KLL-shaped quantile sketch (``kll.sketch``: ``parameters {c, k}`` and
``data``, one list per compactor level, an item on level ``h`` standing for ``2**h`` rows).
Our sketch is the deterministic end state of a KLL compaction: the sorted values thinned
evenly to at most ``k`` items on one level, which keeps the CDF within ``1/k`` of the data's
and is what the drift check compares against. String features get category counts.
"""
from __future__ import annotations

import math
from typing import Any, Iterable

import numpy as np
import pandas as pd

from clinical_ml.monitor.formats import DEFAULT_MONITORING_CONFIG, NUMERIC_TYPES

SKETCH_K = 1024
SKETCH_C = 0.64
HIST_BUCKETS = 10
MAX_DOMAIN = 5000      # string domains larger than this are not stored (no unseen-value check)
MAX_CATEGORY_BUCKETS = 5000


def infer_type(s: pd.Series, datatype_threshold: float = 0.1) -> tuple[str, pd.Series]:
    """(inferred_type, values coerced to that type).

    Numbers are Integral when every present value is a whole number, else Fractional. A column
    declared as text (string/categorical dtype) is String. An object column is numeric when at most ``datatype_threshold`` of its present values fail to parse
    (CSV capture arrives as text), else String.
    """
    present = s.dropna()
    if len(present) == 0:
        return "Unknown", s
    if pd.api.types.is_bool_dtype(s):
        return "Integral", s.astype("float64")
    if pd.api.types.is_numeric_dtype(s):
        return numeric_type(s.to_numpy(dtype="float64", na_value=np.nan)), s
    if isinstance(s.dtype, pd.StringDtype) or isinstance(s.dtype, pd.CategoricalDtype):
        return "String", s.astype("string")  # declared text (e.g. ICD-9 "401.9") stays text
    parsed = pd.to_numeric(s, errors="coerce")
    bad = len(present) - int(parsed.notna().sum())
    if bad <= datatype_threshold * len(present):
        return numeric_type(parsed.to_numpy(dtype="float64", na_value=np.nan)), parsed
    return "String", s.astype("string")


def numeric_type(values: np.ndarray) -> str:
    v = values[np.isfinite(values)]
    return "Integral" if v.size and np.all(v == np.round(v)) else "Fractional"


def sketch(values: np.ndarray, k: int = SKETCH_K) -> dict:
    """KLL-shaped sketch of finite ``values``: ``{"parameters": {"c", "k"}, "data": [[...], ...]}``."""
    v = np.sort(values[np.isfinite(values)])
    n = v.size
    level = 0 if n <= k else math.ceil(math.log2(n / k))
    if level:
        m = math.ceil(n / 2 ** level)
        v = v[np.minimum(((np.arange(m) + 0.5) * n / m).astype(np.int64), n - 1)]
    # 7 significant digits: float32 features lose nothing, the file stays a few MB
    data: list[list[float]] = [[] for _ in range(level)] + [[float(f"{x:.7g}") for x in v]]
    return {"parameters": {"c": SKETCH_C, "k": float(k)}, "data": data}


def sketch_values(sk: dict) -> tuple[np.ndarray, np.ndarray]:
    """(sorted items, weights) of a KLL sketch: an item on level h weighs 2**h."""
    items, weights = [], []
    for h, level in enumerate(sk.get("data", [])):
        items.extend(level)
        weights.extend([2.0 ** h] * len(level))
    x = np.asarray(items, dtype="float64")
    w = np.asarray(weights, dtype="float64")
    order = np.argsort(x, kind="stable")
    return x[order], w[order]


def histogram(values: np.ndarray, buckets: int = HIST_BUCKETS) -> list[dict]:
    v = values[np.isfinite(values)]
    if v.size == 0:
        return []
    lo, hi = float(v.min()), float(v.max())
    counts, edges = np.histogram(v, bins=buckets, range=(lo, hi if hi > lo else lo + 1.0))
    return [{"lower_bound": float(edges[i]), "upper_bound": float(edges[i + 1]),
             "count": int(counts[i])} for i in range(len(counts))]


def numeric_statistics(values: np.ndarray) -> dict:
    finite = values[np.isfinite(values)]
    n = finite.size
    out: dict[str, Any] = {"common": {"num_present": int(n), "num_missing": int(values.size - n)}}
    if n:
        out.update(mean=float(finite.mean()), sum=float(finite.sum()),
                   std_dev=float(finite.std()), min=float(finite.min()), max=float(finite.max()))
    else:
        out.update(mean=0.0, sum=0.0, std_dev=0.0, min=0.0, max=0.0)
    out["distribution"] = {"kll": {"buckets": histogram(finite), "sketch": sketch(finite)}}
    return out


def string_statistics(s: pd.Series) -> dict:
    present = s.dropna().astype(str)
    counts = present.value_counts()
    buckets = [{"value": str(v), "count": int(c)} for v, c in counts.iloc[:MAX_CATEGORY_BUCKETS].items()]
    return {"common": {"num_present": int(len(present)), "num_missing": int(len(s) - len(present))},
            "distinct_count": int(len(counts)),
            "distribution": {"categorical": {"buckets": buckets}}}


def feature_statistics(name: str, s: pd.Series, inferred: str | None = None) -> dict:
    if inferred is None:
        inferred, s = infer_type(s)
    entry: dict[str, Any] = {"name": name, "inferred_type": inferred}
    if inferred in NUMERIC_TYPES or inferred == "Unknown":
        vals = pd.to_numeric(s, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        entry["numerical_statistics"] = numeric_statistics(vals)
    else:
        entry["string_statistics"] = string_statistics(s)
    return entry


def dataset_statistics(df: pd.DataFrame, columns: Iterable[str] | None = None) -> dict:
    """statistics.json for ``df`` (all columns, or ``columns`` in that order)."""
    cols = list(df.columns if columns is None else columns)
    return {"version": 0.0, "dataset": {"item_count": int(len(df))},
            "features": [feature_statistics(c, df[c]) for c in cols]}


def suggest_constraints(statistics: dict, monitoring_config: dict | None = None) -> dict:
    """constraints.json suggested from baseline statistics (as Model Monitor's baseline job does)."""
    features = []
    for f in statistics["features"]:
        entry: dict[str, Any] = {"name": f["name"], "inferred_type": f["inferred_type"]}
        if "numerical_statistics" in f:
            ns = f["numerical_statistics"]
            common = ns["common"]
            entry["completeness"] = _completeness(common)
            entry["num_constraints"] = {"is_non_negative": bool(common["num_present"] == 0
                                                                or ns["min"] >= 0)}
        else:
            ss = f["string_statistics"]
            entry["completeness"] = _completeness(ss["common"])
            if ss["distinct_count"] <= MAX_DOMAIN:
                entry["string_constraints"] = {"domains": [b["value"] for b in
                                                           ss["distribution"]["categorical"]["buckets"]]}
        features.append(entry)
    mc = {**DEFAULT_MONITORING_CONFIG, **(monitoring_config or {})}
    return {"version": 0.0, "features": features, "monitoring_config": mc}


def _completeness(common: dict) -> float:
    total = common["num_present"] + common["num_missing"]
    return float(common["num_present"] / total) if total else 1.0
