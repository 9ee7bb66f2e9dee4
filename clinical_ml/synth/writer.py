"""Deterministic, streaming ``TABLE.csv.gz`` writers in the MIMIC-III release format.

The release quotes headers and string values and writes timestamps as ``YYYY-MM-DD HH:MM:SS``;
Arrow's CSV writer does the same. Gzip headers carry no file name and mtime 0, so the same
rows give byte-identical files (the determinism the tests check). Rows arrive in chunks and go
straight to the compressor: memory stays flat whatever the number of patients.
"""
from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from clinical_ml.mimic.schema import TableSchema

_ARROW = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "datetime": pa.timestamp("s")}
_OPTS = pacsv.WriteOptions(include_header=False, quoting_style="needed")


def arrow_schema(schema: TableSchema) -> pa.Schema:
    return pa.schema([pa.field(c.name, _ARROW[c.type]) for c in schema.columns])


def _column(values: Any, typ: str, n: int) -> pa.Array:
    """One column from numpy/list values; NaN / None / NaT (-1 sentinel for ints) become null."""
    if values is None:
        return pa.nulls(n, _ARROW[typ])
    if typ == "datetime":
        arr = np.asarray(values)
        if arr.dtype.kind in "iu":  # seconds since epoch; INT64_MIN = null
            mask = arr == np.iinfo(np.int64).min
            return pa.array(arr.astype("datetime64[s]"), type=pa.timestamp("s"), mask=mask)
        return pa.array(arr, type=pa.timestamp("s"))
    if typ == "int":
        arr = np.asarray(values)
        if arr.dtype == object:
            return pa.array(list(arr), type=pa.int64())
        if arr.dtype.kind == "f":
            mask = np.isnan(arr)
            return pa.array(np.where(mask, 0, arr).astype(np.int64), mask=mask)
        return pa.array(arr.astype(np.int64))
    if typ == "float":
        arr = np.asarray(values, dtype=np.float64)
        return pa.array(arr, mask=np.isnan(arr))
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        return values
    return pa.array(values, type=pa.string(), from_pandas=True)


def numbers_as_text(values: np.ndarray) -> pa.Array:
    """VALUE strings for numeric measurements (already rounded by the caller); NaN -> null."""
    arr = np.asarray(values, dtype=np.float64)
    return pc.cast(pa.array(arr, mask=np.isnan(arr)), pa.string())


def to_arrow(schema: TableSchema, columns: dict[str, Any]) -> pa.Table | None:
    """Columns (release names; ROW_ID optional) -> an Arrow table in release order, or None."""
    unknown = set(columns) - set(schema.names)
    if unknown:
        raise KeyError(f"{schema.name}: not release columns: {sorted(unknown)}")
    n = next((len(v) for v in columns.values() if v is not None), 0)
    if n == 0:
        return None
    cols = [c for c in schema.columns if c.name != "ROW_ID" or "ROW_ID" in columns]
    arrays = [_column(columns.get(c.name), c.type, n) for c in cols]
    return pa.Table.from_arrays(arrays, schema=pa.schema([pa.field(c.name, _ARROW[c.type]) for c in cols]))


class TableWriter:
    """Append chunks of rows (dict column -> values) to ``path`` as gzip-compressed CSV."""

    def __init__(self, path: Path, schema: TableSchema, compresslevel: int = 4):
        self.schema = schema
        self.path = Path(path)
        self.rows = 0
        self._raw = open(self.path, "wb")
        self._gz = gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0,
                                 compresslevel=compresslevel)
        header = ",".join(f'"{c}"' for c in schema.names) + "\n"
        self._gz.write(header.encode())

    def write(self, columns: dict[str, Any] | pa.Table | None) -> int:
        """Append rows; ROW_ID is numbered here (1, 2, ... across chunks) when absent."""
        table = columns if isinstance(columns, pa.Table) or columns is None else to_arrow(self.schema, columns)
        if table is None or table.num_rows == 0:
            return 0
        n = table.num_rows
        if "ROW_ID" not in table.column_names:
            table = table.add_column(0, "ROW_ID", pa.array(np.arange(self.rows + 1, self.rows + 1 + n)))
        table = table.select(self.schema.names).cast(arrow_schema(self.schema))
        buf = io.BytesIO()
        pacsv.write_csv(table, buf, _OPTS)
        self._gz.write(buf.getbuffer())
        self.rows += n
        return n

    def close(self) -> None:
        self._gz.close()
        self._raw.close()
