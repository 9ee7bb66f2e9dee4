"""One stay's hourly vitals (a request) -> the task builder's feature row.

The endpoint must compute features exactly as ``build-tasks`` did for training, so this module
does not reimplement them: it loads the request into the same DuckDB tables the builder reads
(``channels`` via ``events.load_var_map``, ``ep`` observations, ``stays_ep``, a one-row points
table) and calls ``clinical_ml.tasks.features.build_features``. The prediction time is the
stay's last hour (rounded up to its hour bin, as the builder bins prediction points).
"""
from __future__ import annotations

import math
import tempfile
from typing import Any

import numpy as np

from inference.codecs import RequestError

# a stay's hours since ICU admission: the longest MIMIC-III ICU stays are about 4,200 h; beyond
# a year the value is a unit mistake, and past 2**63 it would overflow the builder's BIGINT bins
MAX_HOURS = 24 * 365

def _channels() -> dict[str, Any]:
    from clinical_ml.tasks.variables import channels  # noqa: PLC0415

    return {c.name: c for c in channels()}


def observations(rows: list[dict[str, Any]], where: str = "series") -> list[tuple[float, str, float]]:
    """(hours, variable, numeric value) per non-null cell; categorical text -> its code."""
    chans = _channels()
    out = []
    for j, r in enumerate(rows):
        h = r.get("hour")
        if type(h) not in (int, float) or not math.isfinite(h) or not 0 <= h <= MAX_HOURS:
            raise RequestError(400, f"{where}[{j}]: 'hour' must be a number from 0 to {MAX_HOURS} "
                                    "(hours since ICU admission)")
        for k, v in r.items():
            if k == "hour" or v is None:
                continue
            c = chans.get(k)
            if c is None:
                raise RequestError(400, f"{where}[{j}]: unknown channel {k[:40]!r}; channels are "
                                        f"{', '.join(list(chans)[:5])}, ...")
            if isinstance(v, str) and c.categorical:
                if v not in c.values:
                    raise RequestError(400, f"{where}[{j}]: {k} value not in the channel's "
                                            "categories (channel_info.json)")
                x = float(c.values[v])
            elif type(v) in (int, float) and math.isfinite(v):
                x = float(v)
            else:
                raise RequestError(400, f"{where}[{j}]: {k} must be a finite number"
                                        + (" or a category string" if c.categorical else ""))
            out.append((float(h), c.variable, x))
    return out


def features_from_series(rows: list[dict[str, Any]], features: list[str],
                         where: str = "series") -> np.ndarray:
    """A (len(features),) float32 vector for one stay, computed by the task builder's code."""
    import duckdb  # noqa: PLC0415
    import pyarrow as pa  # noqa: PLC0415

    from clinical_ml.tasks import features as tf  # noqa: PLC0415
    from clinical_ml.tasks.events import load_var_map  # noqa: PLC0415

    obs = observations(rows, where)
    last = max(float(r["hour"]) for r in rows)
    tb = max(int(math.ceil(last - 1e-6)), 0)
    con = duckdb.connect()
    try:
        load_var_map(con)
        con.register("obs_in", pa.table({
            "icustay_id": pa.array([0] * len(obs), pa.int64()),
            "variable": pa.array([o[1] for o in obs], pa.string()),
            "value_num": pa.array([o[2] for o in obs], pa.float64()),
            "value_str": pa.array([None] * len(obs), pa.string()),
            "hours": pa.array([o[0] for o in obs], pa.float64())}))
        con.execute("CREATE TEMP TABLE ep AS SELECT * FROM obs_in")
        con.execute("CREATE TEMP TABLE stays_ep AS SELECT 0::BIGINT AS icustay_id, ?::DOUBLE AS los_h",
                    [last + 1.0])
        con.execute("CREATE TEMP TABLE request_points AS SELECT 0::BIGINT AS icustay_id, ?::BIGINT AS tb", [tb])
        with tempfile.TemporaryDirectory(prefix="series-") as tmp:
            tf.build_features(con, ["request_points"], tmp)
            df = con.execute("SELECT * FROM feats").fetch_df()
    except (duckdb.InvalidInputException, duckdb.ConversionException, duckdb.OutOfRangeException) as e:
        # a value the builder's SQL cannot hold is the request's fault, not the server's
        raise RequestError(422, f"{where}: a value is out of range for the feature builder "
                                f"({str(e).splitlines()[0][:120]}); check the units") from None
    finally:
        con.close()
    missing = [f for f in features if f not in df.columns]
    if missing:
        raise RequestError(422, f"the model's features {missing[:3]} are not the task builder's "
                                "(this model was not trained on build-tasks output); send "
                                "prepared features as 'instances'")
    return df[features].to_numpy(dtype=np.float32)[0]
