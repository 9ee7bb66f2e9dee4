"""Outcome risk behind the endpoint: request instances -> feature matrix -> per-task outputs.

The model directory is the training step's (docs/contracts.md, "Outcome model directory").
Predictions come from the artifact's own loader (``clinical_ml.outcomes.artifact.load``) when it
is installed. For the hot path the server also loads each task's ``<task>/xgboost.json``
booster and predicts a float32 row through ``inference.fast_xgb`` (tens of microseconds instead
of building a DataFrame and a DMatrix per request); at load time both paths score the same
probe rows and the fast path is used only if they agree, so the endpoint cannot drift from what
evaluation measured.
"""
from __future__ import annotations

import io
import operator
import os
from pathlib import Path
from typing import Any, Callable

import numpy as np

from clinical_ml.io import DataError, read_json, sha256_tree
from clinical_ml.logs import get_logger
from clinical_ml.outcomes.models import finish_xgboost, xgboost_target_transform
from inference.codecs import RequestError, parse_csv
from inference.fast_xgb import make_predictor

log = get_logger(__name__)
_F32_MAX = float(np.finfo(np.float32).max)
_OK_TYPES = {int, float, type(None)}
_CSV_PLAIN = b"0123456789.,-+eE \t\r\n"  # bytes of a body of plain numbers (and empty cells)


def _load_artifact(model_dir: Path):
    """The outcome engineer's loader, or None while that module is absent from this build."""
    try:
        from clinical_ml.outcomes import artifact  # noqa: PLC0415 (optional at import time)
    except ImportError:
        return None
    return artifact.load(model_dir)


def _series_featurizer() -> Callable | None:
    """``inference.series.features_from_series`` when the task builder's code is importable."""
    try:
        from clinical_ml.tasks import features  # noqa: F401, PLC0415
        from inference.series import features_from_series  # noqa: PLC0415
    except ImportError:
        return None
    return features_from_series


class OutcomeModel:
    """Loaded outcome model: feature order, task types, boosters, version."""

    kind = "outcomes"

    def __init__(self, model_dir: str | os.PathLike, max_rows: int = 1000, max_hours: int = 2000):
        self.dir = Path(model_dir)
        spec = read_json(self.dir / "feature_spec.json")
        self.metadata = read_json(self.dir / "metadata.json")
        self.features: list[str] = list(spec.get("features") or [])
        self.channels: list[str] = list(spec.get("channels") or [])
        self.tasks: dict[str, dict[str, Any]] = dict(spec.get("tasks") or {})
        if not self.features or not self.tasks:
            raise DataError(f"{self.dir}/feature_spec.json: needs non-empty 'features' and 'tasks'")
        self.getter = operator.itemgetter(*self.features) if len(self.features) > 1 else (
            lambda d: (d[self.features[0]],))
        self.max_rows, self.max_hours = max_rows, max_hours
        self.version = str(self.metadata.get("version") or sha256_tree(self.dir)[:12])
        self.meta = {"model_version": self.version, "model_type": "outcomes",
                     "code_version": self.metadata.get("code_version")}
        self.columns = self._columns()
        self.artifact = _load_artifact(self.dir)
        self.boosters = self._boosters()
        self.featurize = _series_featurizer()
        self.fast = self._check_fast_path()
        log.info("outcome model %s: %d features, tasks %s, fast path %s", self.version,
                 len(self.features), ",".join(self.tasks), self.fast)

    # -- loading ----------------------------------------------------------------------------
    def _boosters(self) -> dict[str, Any]:
        import xgboost as xgb  # noqa: PLC0415

        out = {}
        for task in self.tasks:
            f = self.dir / task / "xgboost.json"
            if f.is_file():
                b = xgb.Booster()
                b.load_model(f)
                b.set_param({"nthread": 1})  # one row per request: threads cost more than they save
                out[task] = make_predictor(b, len(self.features))
        if self.artifact is None and set(out) != set(self.tasks):
            missing = sorted(set(self.tasks) - set(out))
            raise DataError(f"{self.dir}: no <task>/xgboost.json for {missing}; pass the "
                            "training step's model directory")
        return out

    def _fast_predict(self, task: str, x: np.ndarray) -> np.ndarray:
        kind = self.tasks[task].get("type")
        # the same finishing step as the artifact's predict (target transform, no negative hours)
        return finish_xgboost(kind, self.boosters[task](x), xgboost_target_transform(self.tasks[task], kind))

    def _check_fast_path(self) -> bool:
        """True when the boosters alone reproduce the artifact's predictions on probe rows."""
        if self.artifact is None:
            return True
        if set(self.boosters) != set(self.tasks):
            return False
        import pandas as pd  # noqa: PLC0415

        rng = np.random.default_rng(0)
        x = rng.normal(size=(8, len(self.features))).astype(np.float32)
        x[::2, ::3] = np.nan
        df = pd.DataFrame(x, columns=self.features)
        for task in self.tasks:
            ref = np.asarray(self.artifact.predict(task, df, model="xgboost"), dtype=np.float64)
            got = np.asarray(self._fast_predict(task, x), dtype=np.float64)
            if ref.shape != got.shape or not np.allclose(ref, got, rtol=1e-5, atol=1e-6):
                log.warning("task %s: booster and artifact disagree; serving through artifact", task)
                return False
        return True

    def _columns(self) -> list[str]:
        cols = []
        for task, t in self.tasks.items():
            if t.get("type") == "multilabel":
                cols += [f"{task}.{lab}" for lab in t.get("labels", [])]
            else:
                cols.append(task)
        return cols

    # -- requests -> matrix ------------------------------------------------------------------
    def _row_from_dict(self, d: dict, where: str) -> tuple:
        """The row in feature order. Other keys (an ``id``, context such as diagnosis codes that
        the drift monitor reads from capture) are ignored; a misspelt feature still fails, as
        the real name is then missing."""
        try:
            return self.getter(d)
        except KeyError:
            missing = [f for f in self.features if f not in d]
            raise RequestError(400, f"{where}: missing feature(s) {missing[:5]} ({len(missing)} in "
                                    "all); send null for a value that was not measured") from None

    def _bad_value(self, row: Any, where: str) -> RequestError:
        """The error for the first value of ``row`` that is not a finite float32 or null."""
        for j, v in enumerate(row):
            t = type(v)
            if t is not float and t is not int and v is not None:
                return RequestError(400, f"{where}: feature {self.features[j]!r} must be a number "
                                         f"or null, got {t.__name__}")
            if v is not None and not -_F32_MAX <= v <= _F32_MAX:
                return RequestError(400, f"{where}: feature {self.features[j]!r} is not a finite "
                                         "number in float32 range")
        return RequestError(400, f"{where}: values must be numbers or null")

    def matrix_from_json(self, rows: list[Any], where: str = "instances") -> np.ndarray:
        """Instances (objects by feature name or arrays in feature order) -> float32 matrix.

        Types are checked in bulk (``map(type, ...)`` into a set) and ranges with numpy, so a
        714-feature row costs tens of microseconds; the slow per-value scan runs only to word
        the error for a bad row.
        """
        if not rows:
            raise RequestError(400, f"{where}: empty list; send at least one instance")
        self._check_count(len(rows))
        n = len(self.features)
        out = []
        for i, r in enumerate(rows):
            if type(r) is dict:
                row = self._row_from_dict(r, f"{where}[{i}]")
            elif type(r) is list:
                if len(r) != n:
                    raise RequestError(400, f"{where}[{i}]: {len(r)} values, the model takes {n} "
                                            "features in feature_spec order")
                row = r
            else:
                raise RequestError(400, f"{where}[{i}]: an instance is an object of features or "
                                        f"an array of {n} numbers")
            if not set(map(type, row)) <= _OK_TYPES:
                raise self._bad_value(row, f"{where}[{i}]")
            out.append(row)
        try:
            x = np.array(out, dtype=np.float64)  # None -> NaN (XGBoost's missing value)
        except (OverflowError, ValueError, TypeError):
            raise RequestError(400, f"{where}: a value does not fit a number (float32)") from None
        big = np.abs(x) > _F32_MAX  # NaN compares False
        if big.any():
            i = int(np.argwhere(big)[0][0])
            raise self._bad_value(out[i], f"{where}[{i}]")
        return x.astype(np.float32)

    def matrix_from_csv_bytes(self, raw: bytes) -> np.ndarray:
        """CSV body -> matrix: pandas' C parser for plain numeric bodies (a 1,000-row batch in
        milliseconds), the strict row-by-row reader for anything else (header, quotes, text,
        nan/inf spelled out) so every rejection still names its row and column."""
        if not raw.translate(None, _CSV_PLAIN):  # C-speed scan; a regex took ~0.2 s per MB
            import pandas as pd  # noqa: PLC0415

            try:
                x = pd.read_csv(io.BytesIO(raw), header=None, dtype=np.float64, engine="c",
                                keep_default_na=False, na_values=[""], skip_blank_lines=True,
                                ).to_numpy()
            except (ValueError, pd.errors.ParserError, pd.errors.EmptyDataError):
                x = None
            if x is not None and x.ndim == 2 and x.shape[1] == len(self.features) and len(x):
                self._check_count(len(x))
                if not (np.abs(np.nan_to_num(x, nan=0.0)) > _F32_MAX).any():
                    return x.astype(np.float32)
        return self.matrix_from_csv(parse_csv(raw))

    def matrix_from_csv(self, rows: list[list[str]]) -> np.ndarray:
        if rows and rows[0] and rows[0][0].strip() == self.features[0]:
            rows = rows[1:]  # tolerate a header line written in feature order
        if not rows:
            raise RequestError(400, "CSV holds no data rows")
        self._check_count(len(rows))
        n = len(self.features)
        x = np.empty((len(rows), n), dtype=np.float32)
        for i, r in enumerate(rows):
            if len(r) != n:
                raise RequestError(400, f"CSV row {i + 1}: {len(r)} columns, the model takes {n} "
                                        "features in feature_spec order (empty cell = missing)")
            for j, cell in enumerate(r):
                c = cell.strip()
                if not c:
                    x[i, j] = np.nan
                    continue
                try:
                    v = float(c)
                except ValueError:
                    raise RequestError(400, f"CSV row {i + 1}, column {j + 1} "
                                            f"({self.features[j]!r}): not a number") from None
                if not -_F32_MAX <= v <= _F32_MAX:
                    raise RequestError(400, f"CSV row {i + 1}, column {j + 1} ({self.features[j]!r}):"
                                            " not a finite number; leave the cell empty if missing")
                x[i, j] = v
        return x

    def matrix_from_series(self, stays: list[Any]) -> np.ndarray:
        """Hourly vitals per stay -> one feature row per stay, with the task builder's code."""
        if self.featurize is None:
            raise RequestError(422, "this build has no series featurizer (clinical_ml.tasks."
                                    "features); send prepared features as 'instances'")
        if not stays:
            raise RequestError(400, "series: empty; send the stay's hourly rows")
        if len(stays) > 32:
            raise RequestError(413, f"{len(stays)} stays in one series request; the limit is 32")
        out = []
        for i, rows in enumerate(stays):
            at = f"series[{i}]" if len(stays) > 1 else "series"
            if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
                raise RequestError(400, f"{at}: a list of hourly objects {{'hour': .., "
                                        "'heart_rate': .., ...}}")
            if len(rows) > self.max_hours:
                raise RequestError(413, f"{at}: {len(rows)} hourly rows, limit {self.max_hours}")
            out.append(self.featurize(rows, self.features, at))
        return np.vstack(out)

    def _check_count(self, n: int) -> None:
        if n > self.max_rows:
            raise RequestError(413, f"{n} instances in one request; the limit is {self.max_rows}: "
                                    "split the batch or use batch transform")

    # -- predict -----------------------------------------------------------------------------
    def predict_matrix(self, x: np.ndarray) -> dict[str, np.ndarray]:
        if self.fast:
            return {t: self._fast_predict(t, x) for t in self.tasks}
        import pandas as pd  # noqa: PLC0415

        df = pd.DataFrame(x, columns=self.features)
        return {t: np.asarray(self.artifact.predict(t, df, model="xgboost")) for t in self.tasks}

    def records(self, preds: dict[str, np.ndarray], ids: list | None = None) -> list[dict[str, Any]]:
        """Per-instance outputs: a float per binary/regression task, {label: p} for multilabel."""
        n = len(next(iter(preds.values())))
        cols: dict[str, list] = {}
        for task, p in preds.items():
            t = self.tasks[task]
            if t.get("type") == "multilabel":
                labels = t.get("labels", [])
                p2 = np.asarray(p, dtype=np.float64).reshape(n, -1).tolist()
                cols[task] = [dict(zip(labels, r)) for r in p2]
            else:
                cols[task] = np.asarray(p, dtype=np.float64).reshape(n).tolist()
        out = [{task: cols[task][i] for task in cols} for i in range(n)]
        if ids:
            for rec, i in zip(out, ids):
                if i is not None:
                    rec["id"] = i
        return out
