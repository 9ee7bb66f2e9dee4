"""Baseline vs one window of traffic: Model Monitor's checks, violations and a drift score.

Checks per baseline feature (names as in constraint_violations.json):
``missing_column_check`` / ``extra_column_check`` (schema), ``data_type_check`` (share of values
of the wrong type above ``datatype_check_threshold``), ``completeness_check`` (completeness fell
below the baseline's by more than ``completeness_bound``), ``baseline_drift_check`` (distance
above its threshold, see ``distance``), ``categorical_values_check`` (share of values outside the
baseline domain above ``domain_content_threshold``).

Every distribution check has a score ``statistic / threshold`` (> 1 is a violation). The window's
``drift_score`` is the largest score of the drift-type checks (baseline_drift, completeness,
categorical_values): ``> 1`` means at least one violation, and the alarm's threshold is 1.0.
Schema and type checks are data-integrity problems that retraining would not fix: they are
reported as violations and counted in ``integrity_violations``, not in ``drift_score``.
An empty window is ``status: "no_data"``: no checks, no drift score, no violation.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from clinical_ml.monitor import distance as D
from clinical_ml.monitor.formats import NUMERIC_TYPES, monitoring_config, violation
from clinical_ml.monitor.stats import feature_statistics, sketch_values

DRIFT_CHECKS = ("baseline_drift_check", "completeness_check", "categorical_values_check")


@dataclass
class WindowReport:
    status: str                                   # "no_data" | "ok" | "drift"
    rows_analyzed: int
    drift_score: float | None
    violations: list[dict] = field(default_factory=list)
    features: dict[str, dict] = field(default_factory=dict)   # name -> distance, threshold, score...
    statistics: dict | None = None                # the window's statistics.json
    integrity_violations: int = 0

    @property
    def drifted(self) -> bool:
        return self.status == "drift"

    def summary(self) -> dict[str, Any]:
        return {"status": self.status, "rows_analyzed": self.rows_analyzed,
                "drift_score": self.drift_score, "violations": len(self.violations),
                "integrity_violations": self.integrity_violations,
                "drifted_features": sorted(n for n, f in self.features.items() if f.get("score", 0) > 1)}


def _window_statistics(frame: pd.DataFrame, baseline_types: dict[str, str], with_stats: bool) -> dict | None:
    if not with_stats:
        return None
    feats = [feature_statistics(n, frame[n], t if t != "Unknown" else None)
             for n, t in baseline_types.items() if n in frame.columns]
    return {"version": 0.0, "dataset": {"item_count": int(len(frame))}, "features": feats}


def prepare_baseline(statistics: dict) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Baseline sketches as arrays, once: reuse across windows (``run_checks(prepared=...)``)."""
    out = {}
    for f in statistics["features"]:
        ns = f.get("numerical_statistics")
        if ns:
            out[f["name"]] = sketch_values(ns["distribution"]["kll"]["sketch"])
    return out


def run_checks(statistics: dict, constraints: dict, frame: pd.DataFrame,
               with_statistics: bool = True, prepared: dict | None = None) -> WindowReport:
    """All checks of ``constraints`` on ``frame``; ``statistics`` supplies the baseline distributions."""
    m = int(len(frame))
    if m == 0:
        return WindowReport("no_data", 0, None)
    mc = monitoring_config(constraints)
    dc = mc["distribution_constraints"]
    base_stats = {f["name"]: f for f in statistics["features"]}
    cons = {f["name"]: f for f in constraints["features"]}
    n_checks = 2 * max(len(cons), 1)
    alpha = float(mc["family_alpha"]) / n_checks
    report = WindowReport("ok", m, 0.0)
    prepared = prepared if prepared is not None else prepare_baseline(statistics)
    # numeric columns that arrived as numbers: one 2-D array instead of a Series per feature
    fast = [n for n, c in cons.items() if c["inferred_type"] in NUMERIC_TYPES and n in frame.columns
            and pd.api.types.is_numeric_dtype(frame[n])]
    block = frame[fast].to_numpy(dtype="float64", na_value=np.nan) if fast else np.empty((m, 0))
    arrays = {n: block[:, i] for i, n in enumerate(fast)}
    for col in frame.columns:
        if col not in cons:
            report.violations.append(violation(str(col), "extra_column_check",
                                               f"Column {col} is not in the baseline"))
    for name, c in cons.items():
        if name not in frame.columns:
            report.violations.append(violation(name, "missing_column_check",
                                               f"Baseline column {name} is absent from the window"))
            continue
        fres = _check_feature(name, c, base_stats.get(name, {}), arrays.get(name), frame[name], m, mc, dc,
                              alpha, report.violations, prepared.get(name))
        report.features[name] = fres
    report.integrity_violations = sum(v["constraint_check_type"] not in DRIFT_CHECKS
                                      for v in report.violations)
    scores = [f["score"] for f in report.features.values()]
    report.drift_score = float(max(scores)) if scores else 0.0
    report.status = "drift" if report.drift_score > 1.0 else "ok"
    report.statistics = _window_statistics(frame, {n: c["inferred_type"] for n, c in cons.items()},
                                           with_statistics)
    return report


def _check_feature(name: str, c: dict, base: dict, arr: np.ndarray | None, col: pd.Series, m: int,
                   mc: dict, dc: dict, alpha: float, out: list[dict],
                   sketch: tuple[np.ndarray, np.ndarray] | None) -> dict:
    btype = c["inferred_type"]
    n_present = int(np.isfinite(arr).sum()) if arr is not None else int(col.notna().sum())
    res: dict[str, Any] = {"completeness": n_present / m}
    # completeness
    c0 = float(c.get("completeness", 1.0))
    common = (base.get("numerical_statistics") or base.get("string_statistics") or {}).get("common", {})
    n_base = common.get("num_present", 0) + common.get("num_missing", 0)
    bound = D.completeness_bound(c0, n_base, m, alpha, float(mc["completeness_tolerance"]))
    drop = c0 - res["completeness"]
    comp_score = max(drop, 0.0) / bound
    if comp_score > 1:
        out.append(violation(name, "completeness_check",
                             f"Data completeness {res['completeness']:.4f} is below the baseline "
                             f"completeness {c0:.4f} by more than {bound:.4f}",
                             completeness=res["completeness"], baseline_completeness=c0))
    scores = [comp_score]
    if btype in NUMERIC_TYPES:
        if arr is not None:
            values, wrong = arr, 0
        else:
            parsed = pd.to_numeric(col, errors="coerce")
            values = parsed.to_numpy(dtype="float64", na_value=np.nan)
            wrong = n_present - int(np.isfinite(values).sum())
        _type_check(name, btype, wrong, n_present, mc, out)
        ns = base.get("numerical_statistics")
        if ns and dc["perform_comparison"] == "Enabled":
            bx, bw = sketch if sketch is not None else sketch_values(ns["distribution"]["kll"]["sketch"])
            dist = D.cdf_linf(bx, bw, values)
            m_num = int(np.isfinite(values).sum())
            thr = D.numeric_threshold(dc["comparison_method"], float(dc["comparison_threshold"]),
                                      ns["common"]["num_present"], m_num, alpha, bx.size)
            res.update(distance=dist, threshold=thr, method="LInfinity")
            scores.append(dist / thr if np.isfinite(thr) else 0.0)
            if dist > thr:
                out.append(violation(name, "baseline_drift_check",
                                     f"Baseline drift distance: {dist:.4f} exceeds threshold: {thr:.4f}",
                                     distance=dist, threshold=thr, method="LInfinity"))
    elif btype == "String":
        values = col.dropna().astype(str)
        counts = values.value_counts().to_dict()
        ss = base.get("string_statistics")
        if ss and dc["perform_comparison"] == "Enabled":
            bcounts = {b["value"]: b["count"] for b in ss["distribution"]["categorical"]["buckets"]}
            dist = D.categorical_linf(bcounts, counts)
            method = dc["categorical_drift_method"]
            thr = D.categorical_threshold(dc["comparison_method"],
                                          float(dc["categorical_comparison_threshold"]),
                                          ss["common"]["num_present"], len(values), alpha,
                                          len(set(bcounts) | set(counts)))
            score = dist / thr if np.isfinite(thr) else 0.0
            extra: dict[str, Any] = {}
            if method == "ChiSquared":
                p = D.chi_square_pvalue(bcounts, counts)
                extra["p_value"] = p
                if p >= alpha:
                    score = min(score, 1.0)
            res.update(distance=dist, threshold=thr, method=method, **extra)
            scores.append(score)
            if score > 1:
                out.append(violation(name, "baseline_drift_check",
                                     f"Baseline drift distance: {dist:.4f} exceeds threshold: {thr:.4f}",
                                     distance=dist, threshold=thr, method=method, **extra))
        domain = c.get("string_constraints", {}).get("domains")
        if domain is not None and len(values):
            dom = set(domain)
            unseen = sum(v for k, v in counts.items() if k not in dom) / len(values)
            thr_d = float(mc["domain_content_threshold"])
            res["unseen_fraction"] = unseen
            scores.append(unseen / thr_d if thr_d > 0 else 0.0)
            if unseen > thr_d:
                out.append(violation(name, "categorical_values_check",
                                     f"{unseen:.2%} of values are outside the baseline domain "
                                     f"(threshold {thr_d:.2%})", unseen_fraction=unseen))
    res["score"] = float(max(scores))
    return res


def _type_check(name: str, btype: str, wrong: int, n_present: int, mc: dict, out: list[dict]) -> None:
    thr = float(mc["datatype_check_threshold"])
    if n_present and wrong / n_present > thr:
        out.append(violation(name, "data_type_check",
                             f"{wrong / n_present:.2%} of values are not {btype} (threshold {thr:.2%})",
                             mismatch_fraction=wrong / n_present))
