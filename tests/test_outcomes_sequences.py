"""The hourly-series encoding: categorical scores, last value per bin, forward fill, masks,
and no look-ahead past the prediction hour."""
from __future__ import annotations

import numpy as np
import pandas as pd

from clinical_ml.outcomes.sequences import (CHANNELS, channel_stats, encode_categorical, n_bins,
                                            series_channels, stay_tensors)


def test_categorical_strings_map_to_ordinal_scores():
    eye = pd.Series(["4 Spontaneously", "Spontaneously", "To Speech", "2 To pain", "None", None, "??"])
    got = encode_categorical("glascow_coma_scale_eye_opening", eye)
    np.testing.assert_array_equal(got[:5], [4, 4, 3, 2, 1])
    assert np.isnan(got[5:]).all()
    motor = pd.Series(["Obeys Commands", "2 Abnorm extensn", "Abnormal Flexion", "Localizes Pain"])
    np.testing.assert_array_equal(encode_categorical("glascow_coma_scale_motor_response", motor), [6, 2, 3, 5])
    verbal = pd.Series(["1.0 ET/Trach", "No Response-ETT", "Confused", "Incomprehensible sounds"])
    np.testing.assert_array_equal(encode_categorical("glascow_coma_scale_verbal_response", verbal), [1, 1, 4, 2])
    crr = pd.Series(["Normal <3 secs", "Abnormal >3 secs", "0.0", "1.0"])
    np.testing.assert_array_equal(encode_categorical("capillary_refill_rate", crr), [0, 1, 0, 1])
    np.testing.assert_array_equal(encode_categorical("glascow_coma_scale_total", pd.Series(["15", "3"])), [15, 3])


def test_bins_forward_fill_masks_and_no_lookahead():
    ts = pd.DataFrame({
        "icustay_id": [7, 7, 7, 7, 8],
        "hour": [0.2, 0.9, 3.5, 5.0, 1.0],
        "heart_rate": [100.0, 110.0, np.nan, 150.0, 90.0],
        "glascow_coma_scale_total": [None, "15", "9", None, None],
    })
    channels = series_channels(ts)
    assert channels == ["glascow_coma_scale_total", "heart_rate"]
    stats = {"mean": [0.0, 0.0], "std": [1.0, 1.0], "normal": [15.0, 86.0]}
    # a prediction at hour 5.0 may see bins 0..4 only: the value at hour 5.0 is not in them
    T = int(n_bins(np.array([5.0]))[0])
    assert T == 5
    out = stay_tensors(ts, {7: T, 9: 2}, channels, stats)
    x = out[7]
    assert x.shape == (5, 4)
    np.testing.assert_array_equal(x[:, 1], [110, 110, 110, 110, 110])  # last value in bin 0, then carried
    np.testing.assert_array_equal(x[:, 0], [15, 15, 15, 9, 9])
    np.testing.assert_array_equal(x[:, 2:], [[1, 1], [0, 0], [0, 0], [1, 0], [0, 0]])
    assert 150 not in x  # hour 5.0 is the prediction hour: never inside its own input
    # a stay without any series: normal values, empty mask
    np.testing.assert_array_equal(out[9], [[15, 86, 0, 0], [15, 86, 0, 0]])


def test_channel_stats_standardise_and_fall_back_to_normal():
    ts = pd.DataFrame({"icustay_id": [1, 1], "hour": [0.0, 1.0], "heart_rate": [80.0, 100.0],
                       "ph": [np.nan, np.nan]})
    stats = channel_stats(ts, ["heart_rate", "ph"])
    assert stats["mean"] == [90.0, CHANNELS["ph"][1]]
    assert stats["std"] == [10.0, 1.0]
