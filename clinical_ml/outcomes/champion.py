"""Champion vs challenger: the production model and the new one, scored on the same held-out rows.

Why a separate step from EvaluateOutcomes: the gate there asks "is the new model good enough at
all"; this one asks "is it at least as good as what is serving now, on the newest data". Both
models predict the same test rows, and every statistic of both (and their differences) is
computed on the same bootstrap resamples (``bootstrap.bootstrap``), so the CI of a difference
is paired: shared row-sampling noise cancels, and the decision is not at the mercy of it.

Promotion rule (``RULE``; docs/retraining.md), per compared task (binary: default ``ihm``):

1. discrimination not worse: the lower bound of the 95% percentile bootstrap CI of
   AUROC(challenger) - AUROC(champion) is above ``-auroc_margin`` (default 0.02), a
   non-inferiority test; a challenger that is clearly better passes, so does an equal one;
2. calibration not worse: ECE(challenger) - ECE(champion), point estimates, is at most
   ``ece_margin`` (default 0.03).

The challenger is promoted when every task passes both; otherwise the champion is kept and the
reason names the failing task, check and numbers. No champion (the first model): promoted.
"""
from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from clinical_ml.io import DataError, sha256_tree
from clinical_ml.outcomes.artifact import OutcomeModel
from clinical_ml.outcomes.bootstrap import DEFAULT_RESAMPLES, batched, bootstrap
from clinical_ml.outcomes.data import TASK_TYPES, check_labels, labels, load_task, manifest_digest
from clinical_ml.outcomes.evaluation import binary_stats

RULE = ("promote when, for every compared task, the lower bound of the 95% paired-bootstrap CI of "
        "AUROC(challenger) - AUROC(champion) is above -auroc_margin and ECE(challenger) - ECE(champion) "
        "is at most ece_margin; otherwise keep the champion")
KEYS = ("subject_id", "hadm_id", "icustay_id", "prediction_hour")
DIFFERENCES = ("auroc", "brier", "ece")
MIN_RESAMPLES = 100


@dataclass(frozen=True)
class Rule:
    auroc_margin: float = 0.02
    ece_margin: float = 0.03

    def describe(self) -> dict:
        return {"text": RULE, **asdict(self), "metric": "auroc", "calibration_metric": "ece",
                "ci": "percentile 95%", "difference": "challenger minus champion"}


def _fmt(v: float | None, sign: str = "") -> str:
    return "undefined" if v is None else f"{v:{sign}.3f}"


def compare_predictions(y: np.ndarray, p_champion: np.ndarray | None, p_challenger: np.ndarray, rule: Rule,
                        resamples: int = DEFAULT_RESAMPLES, seed: int = 0, task: str = "ihm") -> dict:
    """One task's entry: both models' metrics, the paired differences, the checks and the verdict."""
    if resamples < MIN_RESAMPLES:
        raise DataError(f"--bootstrap {resamples}: the rule reads a 95% CI; use at least {MIN_RESAMPLES} resamples")
    stats: dict = {}
    roles = {"challenger": p_challenger} if p_champion is None else {"champion": p_champion, "challenger": p_challenger}
    per_role = {role: binary_stats(y, np.asarray(p, dtype=float)) for role, p in roles.items()}
    for role, fns in per_role.items():
        for metric, fn in fns.items():
            stats[f"{role}.{metric}"] = fn
    if p_champion is not None:
        for metric in DIFFERENCES:
            a, b = per_role["challenger"][metric], per_role["champion"][metric]
            stats[f"difference.{metric}"] = batched(lambda w, a=a, b=b: a(w) - b(w))  # as its two parts
    results = bootstrap(stats, len(y), resamples, seed)  # one set of resamples for everything: paired
    entry: dict = {"type": "binary", "n": int(len(y)), "prevalence": float(np.mean(y))}
    for key, res in results.items():
        group, metric = key.split(".", 1)
        entry.setdefault(group, {})[metric] = res
    if p_champion is None:
        entry.update(promote=True, reason=f"{task}: no champion model; the challenger is the first (AUROC "
                                          f"{_fmt(entry['challenger']['auroc'].get('value'))})")
        return entry
    entry.update(_checks(entry, rule, task))
    return entry


def _checks(entry: dict, rule: Rule, task: str) -> dict:
    d_auc, d_ece = entry["difference"]["auroc"], entry["difference"]["ece"]
    auc = {r: entry[r]["auroc"].get("value") for r in ("challenger", "champion")}
    ece = {r: entry[r]["ece"].get("value") for r in ("challenger", "champion")}
    low = d_auc.get("ci_low")
    auc_ok = low is not None and low > -rule.auroc_margin
    ece_ok = d_ece.get("value") is not None and d_ece["value"] <= rule.ece_margin
    checks = {"auroc_non_inferior": {"passed": auc_ok, "ci_low": low, "threshold": -rule.auroc_margin},
              "calibration_not_worse": {"passed": ece_ok, "ece_difference": d_ece.get("value"),
                                        "threshold": rule.ece_margin}}
    auc_text = (f"AUROC {_fmt(auc['challenger'])} vs champion {_fmt(auc['champion'])} (difference "
                f"{_fmt(d_auc.get('value'), '+')}, 95% CI {_fmt(low)} to {_fmt(d_auc.get('ci_high'))})")
    ece_text = f"ECE {_fmt(ece['challenger'])} vs champion {_fmt(ece['champion'])}"
    if not auc_ok:
        reason = (f"{task}: challenger {auc_text}: the CI's lower bound is not above -{rule.auroc_margin:g} "
                  "(worse discrimination than the champion cannot be ruled out); keep the champion")
    elif not ece_ok:
        reason = (f"{task}: challenger {ece_text}: calibration worse by {_fmt(d_ece.get('value'))}, more than "
                  f"{rule.ece_margin:g}; keep the champion")
    else:
        reason = f"{task}: challenger {auc_text}, {ece_text}: not worse; promote"
    return {"checks": checks, "promote": auc_ok and ece_ok, "reason": reason}


def rows_sha256(df: pd.DataFrame) -> str:
    """Hash of the scored rows' keys, so two comparisons can be shown to use the same rows."""
    keys = df[[k for k in KEYS if k in df.columns]].to_csv(index=False, float_format="%.6f")
    return hashlib.sha256(keys.encode()).hexdigest()


def _model_info(model: OutcomeModel, given: str | Path) -> dict:
    return {"path": str(given), **{k: model.metadata.get(k) for k in ("code_version", "data_manifest_sha256", "created")},
            "fingerprint": sha256_tree(model.dir)}


def _check_model(model: OutcomeModel, role: str, task: str, name: str) -> None:
    """A task or model the other side has and this one lacks: say which file is missing."""
    if task not in model.tasks:
        raise DataError(f"{model.dir / 'feature_spec.json'}: the {role} model has no {task!r} task (trained: "
                        f"{', '.join(model.tasks) or 'none'}); compare models trained for the same task")
    if name not in model.models(task):
        raise DataError(f"{model.dir / task / (name + '.json' if name == 'xgboost' else name)}: not found: the "
                        f"{role} model has no {name} model for {task} (it has {', '.join(model.models(task)) or 'none'})")


def _predict(model: OutcomeModel, role: str, task: str, name: str, df: pd.DataFrame, where: Path) -> np.ndarray:
    try:
        p = np.asarray(model.predict(task, df, name), dtype=float)
    except DataError as e:
        raise DataError(f"{where}: the {role} model ({model.dir}) cannot score these rows: {e}") from None
    if p.shape != (len(df),) or not np.isfinite(p).all():
        raise DataError(f"{where}: the {role} model ({model.dir}) gave {p.shape} predictions for {len(df)} rows "
                        "or non-finite ones")
    return p


def compare(champion: OutcomeModel | None, challenger: OutcomeModel, test_dir: str | Path,
            tasks: list[str] | None = None, model: str = "xgboost", rule: Rule | None = None,
            resamples: int = DEFAULT_RESAMPLES, seed: int = 0,
            given: dict[str, str] | None = None) -> dict:
    """The comparison document (docs/contracts.md, "comparison.json"); ``given``: the paths the
    caller was handed for ``champion``/``challenger``, recorded instead of unpacked folders."""
    rule, test_dir, given = rule or Rule(), Path(test_dir), given or {}
    tasks = tasks or ["ihm"]
    bad = [t for t in tasks if TASK_TYPES.get(t) != "binary"]
    if bad:
        raise DataError(f"--tasks {','.join(bad)}: the comparison takes binary tasks (ihm, decomp, readmit)")
    if not test_dir.is_dir():
        raise DataError(f"{test_dir}: test split folder not found; pass the held-out split of the new window")
    sides = {"challenger": challenger} if champion is None else {"champion": champion, "challenger": challenger}
    doc: dict = {"decision": {}, "rule": rule.describe(), "model": model, "tasks": {},
                 "bootstrap": {"resamples": resamples, "seed": seed, "ci": "percentile 95%", "unit": "row",
                               "paired": True},
                 "champion": None if champion is None else _model_info(champion, given.get("champion", champion.dir)),
                 "challenger": _model_info(challenger, given.get("challenger", challenger.dir)),
                 "test": {"path": str(test_dir), "data_manifest_sha256": manifest_digest([test_dir])[0]}}
    doc["identical_models"] = champion is not None and doc["champion"]["fingerprint"] == doc["challenger"]["fingerprint"]
    for task in tasks:
        for role, m in sides.items():
            _check_model(m, role, task, model)
        df = load_task(test_dir, task)
        y = labels(df, task)
        check_labels(task, y, str(test_dir / task))
        preds = {role: _predict(m, role, task, model, df, test_dir / task) for role, m in sides.items()}
        entry = compare_predictions(y, preds.get("champion"), preds["challenger"], rule, resamples, seed, task)
        entry["rows_sha256"] = rows_sha256(df)
        doc["tasks"][task] = entry
    failed = [t for t, e in doc["tasks"].items() if not e["promote"]]
    doc["decision"] = {"promote": not failed,
                       "reason": "; ".join(doc["tasks"][t]["reason"] for t in (failed or tasks))}
    _check_finite(doc)
    return doc


def _check_finite(obj) -> None:
    """No NaN reaches a property file (JsonGet and json.loads elsewhere would choke on it)."""
    if isinstance(obj, dict):
        for v in obj.values():
            _check_finite(v)
    elif isinstance(obj, list):
        for v in obj:
            _check_finite(v)
    elif isinstance(obj, float) and not math.isfinite(obj):
        raise DataError("comparison: a non-finite number reached comparison.json; this is a bug")
