"""A task split's Parquet parts as fixed-size float32 row batches, for XGBoost's QuantileDMatrix.

Why: the full MIMIC-III decompensation task has ~3 M hourly training rows x ~205 features, about
2.5 GB as one float32 matrix. Reading it into pandas, converting it to numpy and building a
DMatrix held three such copies at once (and hist then quantised it, a fourth structure). Fed
batch by batch through an ``xgboost.DataIter``, a ``QuantileDMatrix`` holds only XGBoost's
quantised matrix and one batch of float32 rows; labels and other small columns are read whole
(8 bytes a row). Measured on the decompensation features (205, ~12% missing, so XGBoost keeps
the bins sparse): 2.5 GB per 1 M rows against 6.4 GB for the old path (docs/outcomes.md,
"Training at size").

Batches are ``BATCH_ROWS`` rows of the concatenation of the parts in sorted order, i.e. the rows
and order of ``clinical_ml.tasks.io.read_split``; a batch may span parts and row groups. So the
quantised matrix, and the booster, depend on the rows and their order only, not on how
build-tasks sharded them into parts. ``BATCH_ROWS`` belongs to the training recipe: the quantile
sketch is merged batch by batch, so another size can move a cut. In-memory arrays go through the
same batches (``array_batches``), so both give the same booster for the same rows.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import xgboost as xgb

from clinical_ml.io import DataError
from clinical_ml.outcomes.data import check_features, check_task_table, labels, train_features
from clinical_ml.tasks.io import TASKS, label_columns

BATCH_ROWS = 65_536  # 205 features: 54 MB of float32 per batch

Batches = Callable[[], Iterator[np.ndarray]]  # a fresh pass over the rows each call


@dataclass(frozen=True)
class SplitParts:
    """The part files of ``<split>/<task>/``: column names and row count from the Parquet
    footers only; rows are read when a pass over ``batches`` or ``read_columns`` asks."""

    where: str
    parts: tuple[Path, ...]
    part_columns: tuple[tuple[str, ...], ...]
    part_rows: tuple[int, ...]

    @classmethod
    def open(cls, split_dir: str | os.PathLike, task: str) -> "SplitParts":
        """The parts of one task of one split, with ``load_task``'s checks (parts, rows, labels)."""
        if task not in TASKS:
            raise DataError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
        folder = Path(split_dir) / task
        parts = tuple(sorted(folder.glob("part-*.parquet"))) if folder.is_dir() else ()
        if not parts:
            raise DataError(f"{folder}: no part-*.parquet files; run `clinical-ml build-tasks` "
                            f"with --tasks including {task} first")
        columns, rows = [], []
        for p in parts:
            meta = pq.read_metadata(p)
            columns.append(tuple(meta.schema.to_arrow_schema().names))
            rows.append(meta.num_rows)
        split = cls(str(folder), parts, tuple(columns), tuple(rows))
        check_task_table(split.rows, split.columns, task, folder)
        return split

    @property
    def rows(self) -> int:
        return sum(self.part_rows)

    @property
    def columns(self) -> list[str]:
        """Every part's columns in first-seen order (the columns of ``read_split``'s frame)."""
        return list(dict.fromkeys(c for cols in self.part_columns for c in cols))

    def features(self) -> list[str]:
        """The ``f_*`` columns in training order (``train_features`` of the whole frame)."""
        return train_features(self.columns, self.where)

    def check_features(self, features: list[str]) -> None:
        check_features(self.columns, features, self.where)

    def read_columns(self, columns: list[str]) -> pd.DataFrame:
        """A few whole columns (labels, keys), NaN where a part lacks one, as ``read_split`` does."""
        frames = []
        for p, cols in zip(self.parts, self.part_columns):
            present = [c for c in columns if c in cols]
            frames.append(pq.read_table(p, columns=present).to_pandas() if present
                          else pd.DataFrame(index=range(pq.read_metadata(p).num_rows)))
        df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
        return df.reindex(columns=columns)

    def labels(self, task: str) -> np.ndarray:
        """``data.labels`` of the split, reading only the label columns."""
        return labels(self.read_columns(label_columns(task)), task)

    def batches(self, features: list[str], batch_rows: int = BATCH_ROWS) -> Batches:
        """Passes over the rows: float32 ``(n, len(features))`` C-contiguous arrays of
        ``batch_rows`` rows (the last may be shorter); NaN for a null, and for a feature a part
        lacks (as ``read_split`` + ``feature_matrix``). Call ``check_features`` first."""
        return lambda: self._iter_rows(list(features), batch_rows)

    def _iter_rows(self, features: list[str], batch_rows: int) -> Iterator[np.ndarray]:
        width, left = len(features), self.rows
        buf, fill = np.empty((min(batch_rows, left), width), np.float32), 0
        for path, cols in zip(self.parts, self.part_columns):
            have = set(cols)
            present = [f for f in features if f in have]
            absent = [j for j, f in enumerate(features) if f not in have]
            # one row group at a time: pyarrow decodes a row group whole (build-tasks writes
            # 100,000 rows), and over a whole file its reader's memory grows with the file
            with pq.ParquetFile(path, pre_buffer=False) as pf:
                for rb in (b for g in range(pf.num_row_groups)
                           for b in pf.iter_batches(batch_size=batch_rows, row_groups=[g], columns=present,
                                                    use_threads=False)):
                    start = 0
                    while start < rb.num_rows:
                        take = min(len(buf) - fill, rb.num_rows - start)
                        piece = rb.slice(start, take)
                        for j, name in enumerate(features):
                            if name in have:
                                buf[fill:fill + take, j] = piece.column(name).to_numpy(zero_copy_only=False)
                        if absent:
                            buf[fill:fill + take, absent] = np.nan
                        fill, start, left = fill + take, start + take, left - take
                        if fill == len(buf):
                            yield buf
                            buf, fill = np.empty((min(batch_rows, left), width), np.float32), 0
        if left or fill:
            raise DataError(f"{self.where}: the part files changed while they were read "
                            f"({self.rows - left} of {self.rows} rows)")


def array_batches(X: np.ndarray, batch_rows: int = BATCH_ROWS) -> Batches:
    """The same batches over an in-memory feature matrix (rows in order)."""
    return lambda: (np.ascontiguousarray(X[i:i + batch_rows], dtype=np.float32)
                    for i in range(0, len(X), batch_rows))


class RowBatches(xgb.DataIter):
    """``xgboost.DataIter`` over ``batches`` with the matching slices of ``label``; XGBoost
    resets it for every pass it makes over the data (a QuantileDMatrix makes a few)."""

    def __init__(self, batches: Batches, label: np.ndarray | None = None, where: str = "batches",
                 cache_prefix: str | None = None):
        # cache_prefix: where an ExtMemQuantileDMatrix keeps its pages (models.quantile_matrices)
        super().__init__(cache_prefix=cache_prefix, release_data=True)
        self._batches, self._label, self._where = batches, label, where
        self._it: Iterator[np.ndarray] | None = None
        self._row = 0

    def reset(self) -> None:
        self._it, self._row = None, 0

    def next(self, input_data: Callable) -> bool:
        if self._it is None:
            self._it = self._batches()
        X = next(self._it, None)
        rows = self._row + (0 if X is None else len(X))
        if self._label is not None and (rows > len(self._label) or X is None and rows != len(self._label)):
            raise DataError(f"{self._where}: {rows}{'' if X is None else '+'} feature rows for "
                            f"{len(self._label)} labels")
        if X is None:
            return False
        kw = {} if self._label is None else {"label": self._label[self._row:rows]}
        self._row = rows
        input_data(data=X, **kw)
        return True
