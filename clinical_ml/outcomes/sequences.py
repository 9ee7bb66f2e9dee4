"""Hourly 17-channel series -> fixed-width tensors, following mimic3-benchmarks' discretizer.

Conventions (from its discretizer_config.json / channel_info.json):
- one bin per hour since ICU admission; the last observed value in a bin is kept;
- a bin with no observation takes the previous bin's value ("previous" imputation) and, before
  the first observation, the channel's normal value;
- a 0/1 mask channel per variable says whether the bin held a real observation.
Difference: categorical channels (GCS components, capillary refill) are encoded as their
ordinal score (e.g. "4 Spontaneously" and "Spontaneously" -> 4) instead of one-hot, which keeps
the order the scale means and 34 inputs instead of 76.

A prediction at hour ``h`` may only see bins wholly before ``h``: bins ``0 .. floor(h) - 1``
(at least one), so the GRU output at index ``n_bins(h) - 1`` is leakage-free.
"""
from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd

# snake_case channel -> (categorical?, normal value); order = mimic3-benchmarks id_to_channel
CHANNELS: dict[str, tuple[bool, float]] = {
    "capillary_refill_rate": (True, 0.0),
    "diastolic_blood_pressure": (False, 59.0),
    "fraction_inspired_oxygen": (False, 0.21),
    "glascow_coma_scale_eye_opening": (True, 4.0),
    "glascow_coma_scale_motor_response": (True, 6.0),
    "glascow_coma_scale_total": (True, 15.0),
    "glascow_coma_scale_verbal_response": (True, 5.0),
    "glucose": (False, 128.0),
    "heart_rate": (False, 86.0),
    "height": (False, 170.0),
    "mean_blood_pressure": (False, 77.0),
    "oxygen_saturation": (False, 98.0),
    "respiratory_rate": (False, 19.0),
    "systolic_blood_pressure": (False, 118.0),
    "temperature": (False, 36.6),
    "weight": (False, 81.0),
    "ph": (False, 7.4),
}

# text without a leading number -> score (GCS eye 1-4, verbal 1-5, motor 1-6; capillary refill
# 0 normal / 1 abnormal, as mimic3-benchmarks' preprocessing maps the raw MIMIC strings)
_GCS_WORDS: dict[str, dict[str, float]] = {
    "capillary_refill_rate": {"normal <3 secs": 0, "normal": 0, "brisk": 0,
                              "abnormal >3 secs": 1, "abnormal": 1, "delayed": 1},
    "glascow_coma_scale_eye_opening": {"none": 1, "no response": 1, "to pain": 2,
                                       "to speech": 3, "spontaneously": 4},
    "glascow_coma_scale_verbal_response": {"no response": 1, "no response-ett": 1, "et/trach": 1,
                                           "incomprehensible sounds": 2, "inappropriate words": 3,
                                           "confused": 4, "oriented": 5},
    "glascow_coma_scale_motor_response": {"no response": 1, "abnormal extension": 2,
                                          "abnormal flexion": 3, "flex-withdraws": 4,
                                          "localizes pain": 5, "obeys commands": 6},
}
_LEADING_NUMBER = re.compile(r"^\s*(\d+(?:\.\d+)?)")


def encode_categorical(channel: str, values: pd.Series) -> np.ndarray:
    """Strings like "4 Spontaneously", "Obeys Commands", "1.0" -> ordinal floats (NaN if unknown)."""
    words = _GCS_WORDS.get(channel, {})

    def one(v) -> float:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return np.nan
        s = str(v).strip()
        m = _LEADING_NUMBER.match(s)
        if m:
            return float(m.group(1))
        return float(words.get(s.lower(), np.nan))

    uniq = pd.unique(values.astype(object))
    table = {u: one(u) for u in uniq}
    return values.astype(object).map(table).to_numpy(dtype=float)


def encode_channels(ts: pd.DataFrame, channels: list[str]) -> np.ndarray:
    """(rows, channels) float matrix; absent channels are all-missing."""
    out = np.full((len(ts), len(channels)), np.nan)
    for j, ch in enumerate(channels):
        if ch not in ts.columns:
            continue
        if CHANNELS.get(ch, (False, 0.0))[0]:
            out[:, j] = encode_categorical(ch, ts[ch])
        else:
            out[:, j] = pd.to_numeric(ts[ch], errors="coerce").to_numpy(dtype=float)
    return out


def series_channels(ts: pd.DataFrame) -> list[str]:
    """Channel columns of a timeseries frame, known ones in canonical order, unknown ones after."""
    cols = [c for c in ts.columns if c not in ("icustay_id", "hour")]
    known = [c for c in CHANNELS if c in cols]
    return known + [c for c in cols if c not in CHANNELS]


def n_bins(hours: np.ndarray) -> np.ndarray:
    return np.maximum(1, np.floor(np.asarray(hours, float))).astype(int)


def channel_stats(ts: pd.DataFrame, channels: list[str]) -> dict[str, list[float]]:
    """Mean/std of observed, encoded values (training split) for standardisation."""
    x = encode_channels(ts, channels)
    normal = np.array([CHANNELS.get(c, (False, 0.0))[1] for c in channels])
    mean, std = normal.copy(), np.ones(len(channels))
    if len(x):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-missing channel
            mean, std = np.nanmean(x, 0), np.nanstd(x, 0)
    mean = np.where(np.isfinite(mean), mean, normal)
    std = np.where(np.isfinite(std) & (std > 1e-6), std, 1.0)
    return {"mean": [float(v) for v in mean], "std": [float(v) for v in std],
            "normal": [float(v) for v in normal]}


def stay_tensors(ts: pd.DataFrame, stay_lengths: dict[int, int], channels: list[str],
                 stats: dict[str, list[float]]) -> dict[int, np.ndarray]:
    """{icustay_id: float32 array [T, 2C]} of standardised, forward-filled values + masks.

    ``stay_lengths`` gives T (number of hourly bins) per stay; stays without any series get
    normal values and an all-zero mask.
    """
    C = len(channels)
    mean, std, normal = (np.asarray(stats[k], float) for k in ("mean", "std", "normal"))
    ts = ts[ts["icustay_id"].isin(list(stay_lengths))]
    out: dict[int, np.ndarray] = {}
    if len(ts):
        hours = pd.to_numeric(ts["hour"], errors="coerce").to_numpy(dtype=float)
        keep = np.isfinite(hours) & (hours >= 0)
        ts = ts.loc[keep]
        frame = pd.DataFrame(encode_channels(ts, channels), columns=range(C))
        frame["icustay_id"] = ts["icustay_id"].to_numpy()
        frame["bin"] = np.floor(hours[keep]).astype(int)
        frame["hour"] = hours[keep]
        frame = frame.sort_values(["icustay_id", "hour"], kind="mergesort")
        last = frame.groupby(["icustay_id", "bin"], sort=True)[list(range(C))].last()
        for stay, block in last.groupby(level=0, sort=False):
            T = stay_lengths[int(stay)]
            bins = block.index.get_level_values(1).to_numpy()
            vals = block.to_numpy(dtype=float)
            inside = bins < T
            grid = np.full((T, C), np.nan)
            grid[bins[inside]] = vals[inside]
            out[int(stay)] = grid
    result: dict[int, np.ndarray] = {}
    for stay, T in stay_lengths.items():
        grid = out.get(int(stay))
        if grid is None:
            grid = np.full((T, C), np.nan)
        mask = np.isfinite(grid)
        # forward fill along time: index of last observed row per channel
        idx = np.where(mask, np.arange(T)[:, None], -1)
        np.maximum.accumulate(idx, axis=0, out=idx)
        filled = np.where(idx >= 0, grid[np.maximum(idx, 0), np.arange(C)], normal)
        x = (filled - mean) / std
        result[int(stay)] = np.concatenate([x, mask.astype(float)], axis=1).astype(np.float32)
    return result
