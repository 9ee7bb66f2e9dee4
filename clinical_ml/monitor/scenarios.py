"""Drifted traffic from a reference feature frame: the shifts a clinical model meets in practice.

Every scenario draws ``rows`` rows from the reference (distinct rows while it has enough) and then changes them;
``size`` is the scenario's shift size (its unit is documented per scenario and in
docs/monitoring.md):

- ``none``: no change (the false-alarm control);
- ``covariate``: vital-sign location features (min/max/mean/...) shift by ``size`` reference
  standard deviations (e.g. a sicker population, a new monitor calibration);
- ``prevalence``: rows resampled so the label prevalence becomes ``size`` (e.g. 0.5), which
  moves every feature that predicts the outcome;
- ``missingness``: an extra ``size`` fraction of the vital-sign features' values go missing
  (an interface drops a channel);
- ``new_codes``: a ``size`` fraction of the categorical column's values become codes the
  baseline never saw (e.g. ICD-9 codes from a new service line);
- ``units``: temperature features recorded in Fahrenheit instead of Celsius for a ``size``
  fraction of rows (a site changes its charting).

``reference_frame`` builds a self-contained synthetic reference (vital-sign features named as
mimic3-benchmarks' handcrafted features, a label, a diagnosis code column) for tests and the
benchmark when no task split is at hand.
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from clinical_ml.io import DataError

SCENARIOS = ("none", "covariate", "prevalence", "missingness", "new_codes", "units")
DEFAULT_SIZES = {"none": 0.0, "covariate": 0.5, "prevalence": 0.5, "missingness": 0.3,
                 "new_codes": 0.2, "units": 1.0}
VITALS = re.compile(r"heart_rate|respiratory_rate|systolic|diastolic|mean_blood_pressure|"
                    r"oxygen_saturation|temperature")
LOCATION = re.compile(r"(^|_)(min|max|mean|median|first|last)(_|$)")
SPREAD = re.compile(r"(^|_)(std|sd)(_|$)")
TEMPERATURE = re.compile(r"temperature")
CODE_COLUMNS = ("icd9_code", "diagnosis_code", "icd_code")

# channel -> (mean, sd, shift for y=1 in sd units); names as channel_info.json, snake_case
_CHANNELS = {
    "capillary_refill_rate": (0.1, 0.3, 0.2), "diastolic_blood_pressure": (60, 12, -0.3),
    "fraction_inspired_oxygen": (0.45, 0.15, 0.5), "glascow_coma_scale_eye_opening": (3.2, 0.9, -0.6),
    "glascow_coma_scale_motor_response": (5.2, 1.2, -0.7), "glascow_coma_scale_total": (12.5, 3.0, -0.8),
    "glascow_coma_scale_verbal_response": (3.5, 1.6, -0.6), "glucose": (135, 40, 0.3),
    "heart_rate": (86, 16, 0.4), "height": (169, 10, 0.0), "mean_blood_pressure": (78, 13, -0.4),
    "oxygen_saturation": (97, 2.5, -0.4), "respiratory_rate": (19, 5, 0.5),
    "systolic_blood_pressure": (120, 20, -0.4), "temperature": (36.9, 0.6, 0.2),
    "weight": (82, 20, 0.0), "ph": (7.38, 0.06, -0.5),
}
_WINDOWS = ("full", "first10", "first25", "first50", "last10", "last25", "last50")
_STATS = ("min", "max", "mean", "std", "skew", "count")


def reference_frame(rows: int = 20000, prevalence: float = 0.13, seed: int = 0,
                    n_codes: int = 300, channels: Sequence[str] | None = None) -> pd.DataFrame:
    """Synthetic stand-in for a task split: 714 ``f_<channel>_<stat>_<window>`` features
    (17 channels x 6 statistics x 7 windows), label ``y`` and a categorical ``icd9_code``."""
    rng = np.random.default_rng(seed)
    y = (rng.random(rows) < prevalence).astype(np.int8)
    cols: dict[str, np.ndarray] = {}
    for ch, (mu, sd, eff) in _CHANNELS.items():
        if channels is not None and ch not in channels:
            continue
        level = rng.normal(mu + eff * sd * y, sd)
        spread = np.abs(rng.normal(0.35 * sd, 0.1 * sd, rows))
        miss = rng.random(rows) < (0.6 if ch in ("height", "capillary_refill_rate") else 0.05)
        for w_i, w in enumerate(_WINDOWS):
            wl = level + rng.normal(0, 0.25 * sd, rows)
            ws = spread * rng.uniform(0.7, 1.3, rows)
            vals = {"mean": wl, "min": wl - 1.6 * ws, "max": wl + 1.6 * ws, "std": ws,
                    "skew": rng.normal(0, 0.5, rows),
                    "count": rng.poisson(4 + 6 * (w_i == 0), rows).astype("float64")}
            wmiss = miss | (rng.random(rows) < 0.02 * w_i)
            for s in _STATS:
                v = vals[s].astype("float32")
                v[wmiss] = np.nan
                cols[f"f_{ch}_{s}_{w}"] = v
    df = pd.DataFrame(cols)
    ranks = np.arange(1, n_codes + 1)
    p = 1.0 / ranks ** 1.1
    codes = np.array([f"{400 + i // 10:03d}.{i % 10}" for i in range(n_codes)])
    df["icd9_code"] = pd.Series(rng.choice(codes, rows, p=p / p.sum()), dtype="string")
    df["y"] = y
    return df


def _cols(df: pd.DataFrame, pattern: re.Pattern, stat: re.Pattern | None = None) -> list[str]:
    """``f_*`` columns of a channel matching ``pattern`` whose statistic matches ``stat``.

    The statistic is looked for in the name *without* the channel part, so the channel
    ``mean_blood_pressure`` does not make its ``std``/``count`` features look like means.
    """
    out = []
    for c in map(str, df.columns):
        if c.startswith("f_") and pattern.search(c):
            rest = pattern.sub("", c)
            if stat is None or stat.search(rest):
                out.append(c)
    return out


def _sample(ref: pd.DataFrame, rows: int, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` reference rows: distinct rows when the reference has enough (a window of real
    traffic has no copies; copies would make a small reference look like strong evidence of
    drift), with replacement only beyond that."""
    idx = (rng.permutation(len(ref))[:rows] if rows <= len(ref)
           else rng.integers(0, len(ref), rows))
    return ref.iloc[idx].reset_index(drop=True)


def covariate(ref, rows, size, rng):
    df = _sample(ref, rows, rng)
    for c in _cols(df, VITALS, LOCATION):
        df[c] = (df[c] + size * float(ref[c].std())).astype(df[c].dtype)
    return df


def prevalence(ref, rows, size, rng):
    if "y" not in ref.columns:
        raise DataError("prevalence scenario: the reference has no binary label column 'y'; "
                        "use a binary task split (ihm, decomp, readmit)")
    pos, neg = ref[ref["y"] == 1], ref[ref["y"] == 0]
    if len(pos) == 0 or len(neg) == 0:
        raise DataError("prevalence scenario: the reference needs both classes")
    n_pos = int(rng.binomial(rows, size))
    return pd.concat([_sample(pos, n_pos, rng), _sample(neg, rows - n_pos, rng)],
                     ignore_index=True).sample(frac=1.0, random_state=int(rng.integers(1 << 31))
                                               ).reset_index(drop=True)


def missingness(ref, rows, size, rng):
    df = _sample(ref, rows, rng)
    for c in _cols(df, VITALS):
        drop = rng.random(rows) < size
        df.loc[drop, c] = np.nan
    return df


def new_codes(ref, rows, size, rng):
    df = _sample(ref, rows, rng)
    col = next((c for c in CODE_COLUMNS if c in df.columns), None) or next(
        (c for c in df.columns if not str(c).startswith("f_") and df[c].dtype.kind in "OSU"
         or str(df[c].dtype) == "string"), None)
    if col is None:
        raise DataError("new_codes scenario: the reference has no categorical column "
                        f"(looked for {', '.join(CODE_COLUMNS)} or any string column)")
    hit = rng.random(rows) < size
    unseen = np.array([f"V9{i:02d}.{j}" for i in range(20) for j in range(10)])  # not in any baseline
    df[col] = df[col].astype("string")
    df.loc[hit, col] = rng.choice(unseen, int(hit.sum()))
    return df


def units(ref, rows, size, rng):
    df = _sample(ref, rows, rng)
    temp_loc, temp_spread = _cols(df, TEMPERATURE, LOCATION), _cols(df, TEMPERATURE, SPREAD)
    if not temp_loc:
        raise DataError("units scenario: no temperature features (f_*temperature*) in the reference")
    hit = rng.random(rows) < size
    for c in temp_loc:
        df.loc[hit, c] = df.loc[hit, c] * 9.0 / 5.0 + 32.0
    for c in temp_spread:
        df.loc[hit, c] = df.loc[hit, c] * 9.0 / 5.0
    return df


def none(ref, rows, size, rng):
    return _sample(ref, rows, rng)


GENERATORS: dict[str, Callable[..., pd.DataFrame]] = {
    "none": none, "covariate": covariate, "prevalence": prevalence, "missingness": missingness,
    "new_codes": new_codes, "units": units}


def generate(reference: pd.DataFrame, scenario: str, rows: int, size: float | None = None,
             seed: int = 0) -> pd.DataFrame:
    """``rows`` rows of ``scenario`` traffic drawn from ``reference``."""
    if scenario not in GENERATORS:
        raise DataError(f"unknown scenario {scenario!r}; expected one of {', '.join(SCENARIOS)}")
    if len(reference) == 0:
        raise DataError("drift scenarios: the reference frame is empty")
    rng = np.random.default_rng(seed)
    return GENERATORS[scenario](reference, int(rows), DEFAULT_SIZES[scenario] if size is None
                                else float(size), rng)
