"""Model Monitor's three files: ``statistics.json``, ``constraints.json``, ``constraint_violations.json``.

Field names and nesting follow the AWS documentation ("Schema for Statistics", "Schema for
Constraints", "Schema for Violations"), so a reader written for Model Monitor output reads
ours. Where we need more (the statistical tolerance of the completeness check, the distance
each drift violation used) we add keys next to the documented ones, as the docs allow for
bring-your-own containers; no documented key changes meaning.

Parsers validate the structure and raise DataError naming the file and the field.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, read_json, write_json

INFERRED_TYPES = ("Integral", "Fractional", "String", "Unknown")
NUMERIC_TYPES = ("Integral", "Fractional")
CHECK_TYPES = ("data_type_check", "completeness_check", "baseline_drift_check",
               "missing_column_check", "extra_column_check", "categorical_values_check")
# Model Monitor's documented defaults, plus two extensions (marked) our checks need.
DEFAULT_MONITORING_CONFIG: dict[str, Any] = {
    "evaluate_constraints": "Enabled",
    "emit_metrics": "Enabled",
    "datatype_check_threshold": 0.1,
    "domain_content_threshold": 0.1,
    "distribution_constraints": {
        "perform_comparison": "Enabled",
        "comparison_threshold": 0.1,
        "comparison_method": "Robust",
        "categorical_comparison_threshold": 0.1,
        "categorical_drift_method": "LInfinity",
    },
    # extensions (not in Model Monitor's schema):
    "completeness_tolerance": 0.05,   # absolute completeness drop tolerated before a violation
    "family_alpha": 0.001,            # per-window false-alarm budget of the Robust checks
}

STATISTICS = "statistics.json"
CONSTRAINTS = "constraints.json"
VIOLATIONS = "constraint_violations.json"


def _need(obj: Any, key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(obj, dict) or key not in obj:
        raise DataError(f"{where}: missing field {key!r}; is this a Model Monitor file?")
    val = obj[key]
    if not isinstance(val, kind):
        raise DataError(f"{where}.{key}: expected {getattr(kind, '__name__', kind)}, "
                        f"got {type(val).__name__}")
    return val


def validate_statistics(doc: dict, source: str = STATISTICS) -> dict:
    """Check ``doc`` has statistics.json's structure; returns it."""
    _need(doc, "version", (int, float), source)
    _need(_need(doc, "dataset", dict, source), "item_count", int, f"{source}.dataset")
    for i, f in enumerate(_need(doc, "features", list, source)):
        where = f"{source}.features[{i}]"
        _need(f, "name", str, where)
        t = _need(f, "inferred_type", str, where)
        if t not in INFERRED_TYPES:
            raise DataError(f"{where}.inferred_type: {t!r} is not one of {INFERRED_TYPES}")
        if t in NUMERIC_TYPES:
            ns = _need(f, "numerical_statistics", dict, where)
            common = _need(ns, "common", dict, f"{where}.numerical_statistics")
            _need(common, "num_present", int, f"{where}.numerical_statistics.common")
            _need(common, "num_missing", int, f"{where}.numerical_statistics.common")
            kll = _need(_need(ns, "distribution", dict, f"{where}.numerical_statistics"),
                        "kll", dict, f"{where}.numerical_statistics.distribution")
            for b in _need(kll, "buckets", list, f"{where}...kll"):
                for k in ("lower_bound", "upper_bound", "count"):
                    _need(b, k, (int, float), f"{where}...kll.buckets[]")
            sketch = _need(kll, "sketch", dict, f"{where}...kll")
            _need(sketch, "parameters", dict, f"{where}...kll.sketch")
            if not all(isinstance(level, list) for level in _need(sketch, "data", list,
                                                                   f"{where}...kll.sketch")):
                raise DataError(f"{where}...kll.sketch.data: expected a list of lists")
        elif t == "String":
            ss = _need(f, "string_statistics", dict, where)
            _need(_need(ss, "common", dict, f"{where}.string_statistics"), "num_present", int,
                  f"{where}.string_statistics.common")
            _need(ss, "distinct_count", (int, float), f"{where}.string_statistics")
            cat = _need(_need(ss, "distribution", dict, f"{where}.string_statistics"),
                        "categorical", dict, f"{where}.string_statistics.distribution")
            for b in _need(cat, "buckets", list, f"{where}...categorical"):
                _need(b, "value", str, f"{where}...categorical.buckets[]")
                _need(b, "count", int, f"{where}...categorical.buckets[]")
    return doc


def validate_constraints(doc: dict, source: str = CONSTRAINTS) -> dict:
    """Check ``doc`` has constraints.json's structure; returns it."""
    _need(doc, "version", (int, float), source)
    for i, f in enumerate(_need(doc, "features", list, source)):
        where = f"{source}.features[{i}]"
        _need(f, "name", str, where)
        t = _need(f, "inferred_type", str, where)
        if t not in INFERRED_TYPES:
            raise DataError(f"{where}.inferred_type: {t!r} is not one of {INFERRED_TYPES}")
        c = _need(f, "completeness", (int, float), where)
        if not 0.0 <= c <= 1.0:
            raise DataError(f"{where}.completeness: {c} outside [0, 1]")
        if "string_constraints" in f:
            _need(f["string_constraints"], "domains", list, f"{where}.string_constraints")
    mc = _need(doc, "monitoring_config", dict, source)
    dc = _need(mc, "distribution_constraints", dict, f"{source}.monitoring_config")
    if dc.get("comparison_method", "Robust") not in ("Simple", "Robust"):
        raise DataError(f"{source}.monitoring_config.distribution_constraints.comparison_method:"
                        " expected Simple or Robust")
    if dc.get("categorical_drift_method", "LInfinity") not in ("LInfinity", "ChiSquared"):
        raise DataError(f"{source}.monitoring_config.distribution_constraints."
                        "categorical_drift_method: expected LInfinity or ChiSquared")
    return doc


def validate_violations(doc: dict, source: str = VIOLATIONS) -> dict:
    """Check ``doc`` has constraint_violations.json's structure; returns it."""
    for i, v in enumerate(_need(doc, "violations", list, source)):
        where = f"{source}.violations[{i}]"
        _need(v, "feature_name", str, where)
        t = _need(v, "constraint_check_type", str, where)
        if t not in CHECK_TYPES:
            raise DataError(f"{where}.constraint_check_type: {t!r} is not one of {CHECK_TYPES}")
        _need(v, "description", str, where)
    return doc


def monitoring_config(constraints: dict) -> dict:
    """The constraints' monitoring_config with every default filled in."""
    mc = {**DEFAULT_MONITORING_CONFIG, **constraints.get("monitoring_config", {})}
    mc["distribution_constraints"] = {**DEFAULT_MONITORING_CONFIG["distribution_constraints"],
                                      **constraints.get("monitoring_config", {})
                                      .get("distribution_constraints", {})}
    return mc


def read_baseline(baseline_dir: str | os.PathLike) -> tuple[dict, dict]:
    """(statistics, constraints) from a baseline folder, both validated."""
    d = Path(baseline_dir)
    stats = validate_statistics(read_json(d / STATISTICS), str(d / STATISTICS))
    cons = validate_constraints(read_json(d / CONSTRAINTS), str(d / CONSTRAINTS))
    names_s = [f["name"] for f in stats["features"]]
    names_c = [f["name"] for f in cons["features"]]
    if names_s != names_c:
        raise DataError(f"{d}: statistics.json and constraints.json list different features; "
                        "regenerate both with `clinical-ml baseline`")
    return stats, cons


def write_baseline(out_dir: str | os.PathLike, statistics: dict, constraints: dict) -> None:
    d = Path(out_dir)
    write_json(d / STATISTICS, validate_statistics(statistics), indent=None)  # sketches: keep it compact
    write_json(d / CONSTRAINTS, validate_constraints(constraints))


def violation(feature: str, check: str, description: str, **extra: Any) -> dict:
    """One violation record; ``extra`` (e.g. distance, threshold) goes beside the documented keys."""
    if check not in CHECK_TYPES:
        raise ValueError(f"unknown check {check!r}")
    return {"feature_name": feature, "constraint_check_type": check,
            "description": description, **extra}
