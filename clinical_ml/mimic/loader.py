"""Schema-checked pandas reader for MIMIC-III tables, local or ``s3://``, release or demo layout.

Every table is read with the explicit schema of ``clinical_ml.mimic.schema``: ids and counts as
nullable ``Int64``, measurements as ``float64``, codes and text as strings (ICD-9 codes keep
their leading zeros), timestamps parsed with the release format. Columns come back upper-case
in release order whatever the header case. Large tables are streamed in chunks
(``iter_table``); nothing ever loads CHARTEVENTS (330 M rows) whole.

Quirks of the real data, and what this module does about each (counted in ``LoadStats``):

- **shifted dates**: every date is moved into 2100-2200 per patient; intervals are real, years
  and seasons are not. Kept as is; ``dates_outside_2100_2210`` counts values outside that window
  (a sign the file is not MIMIC-III or was re-shifted).
- **ages > 89**: DOB is shifted so such patients appear ~300 years old. ``age_years`` maps any
  age >= 200 to 91.4 (the median true age of that group in the release) and counts them.
- **VALUE vs VALUENUM**: VALUE is the charted text, VALUENUM the number when there is one;
  rows such as "<0.01" or "UNABLE TO REPORT" have VALUE but no VALUENUM. Kept; counted as
  ``value_without_valuenum``; ``numeric_value`` recovers numbers from VALUE where possible.
- **ICUSTAY_ID missing in events**: some CHARTEVENTS/OUTPUTEVENTS/INPUTEVENTS rows have no
  ICUSTAY_ID although HADM_ID and CHARTTIME place them in a stay. Kept (null); counted as
  ``missing_icustay_id``; the task builder re-attaches them by time.
- **duplicate rows**: identical rows except ROW_ID. Counted as ``duplicate_rows`` (within a
  chunk); dropped only with ``dedupe=True``.
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
import pandas as pd

from clinical_ml.io import DataError
from clinical_ml.mimic.files import TableFile, header_line, locate_table, open_binary
from clinical_ml.mimic.schema import TableSchema, table as table_schema

TIMESTAMP_FORMAT = "%Y-%m-%d %H:%M:%S"
SHIFTED_AGE = 91.4  # median true age of patients older than 89 in MIMIC-III
DTYPES = {"int": "Int64", "float": "float64", "str": "string", "datetime": "datetime64[s]"}


@dataclass
class LoadStats:
    """What the reader saw and did, per table: rows read and quirk counts."""

    rows: Counter = field(default_factory=Counter)
    quirks: dict[str, Counter] = field(default_factory=dict)

    def add(self, table: str, quirk: str, n: int) -> None:
        if n:
            self.quirks.setdefault(table, Counter())[quirk] += int(n)

    def as_dict(self) -> dict:
        return {"rows": dict(self.rows), "quirks": {t: dict(c) for t, c in self.quirks.items()}}


def pandas_dtypes(name: str) -> dict[str, str]:
    """Column -> pandas dtype of a table as this reader returns it."""
    return {c.name: DTYPES[c.type] for c in table_schema(name).columns}


def check_header(tf: TableFile, schema: TableSchema, header: str) -> list[str]:
    """The file's column names (as written); DataError for empty files, wrong delimiters,
    missing columns."""
    if not header.strip():
        raise DataError(f"{tf.uri}: empty file (no header row); table {schema.name} needs columns "
                        f"{', '.join(schema.names)}")
    cols = next(csv.reader([header]))
    upper = [c.strip().upper() for c in cols]
    missing = [c for c in schema.names if c not in upper]
    if missing and len(cols) == 1:
        for sep in (";", "\t", "|"):
            if sep in header:
                raise DataError(f"{tf.uri}: table {schema.name}: header is not comma-separated "
                                f"(found {sep!r}); MIMIC-III files are comma-separated CSV")
    if missing:
        raise DataError(f"{tf.uri}: table {schema.name} is missing column(s) {', '.join(missing)}")
    return cols


def _locate_bad_utf8(tf: TableFile) -> str:
    """Where the first non-UTF-8 byte is: 'line L, column C' (best effort)."""
    with open_binary(tf) as f:
        reader = csv.reader(io.TextIOWrapper(f, encoding="utf-8", errors="replace", newline=""))
        header = next(reader, [])
        for lineno, row in enumerate(reader, start=2):
            for name, cell in zip(header, row):
                if "\ufffd" in cell:
                    return f"line {lineno}, column {name.upper()}"
    return "unknown position"


def _convert(df: pd.DataFrame, schema: TableSchema, tf: TableFile, first_line: int) -> pd.DataFrame:
    out = {}
    for name in df.columns:
        col = schema.column(name)
        raw = df[name]
        present = raw.notna()
        if col.type == "str":
            out[name] = raw.astype("string")
            continue
        if col.type == "datetime":
            val = pd.to_datetime(raw, format=TIMESTAMP_FORMAT, errors="coerce")
            retry = present & val.isna()
            if retry.any():  # date-only or ISO variants
                val = val.astype("datetime64[s]")
                val[retry] = pd.to_datetime(raw[retry], format="ISO8601", errors="coerce")
            val = val.astype("datetime64[s]")
        else:
            val = pd.to_numeric(raw, errors="coerce")
        bad = present & val.isna()
        if bad.any():
            line = first_line + int(np.flatnonzero(bad.to_numpy())[0])
            kind = {"datetime": "a timestamp (YYYY-MM-DD HH:MM:SS)", "int": "an integer", "float": "a number"}[col.type]
            raise DataError(f"{tf.uri}: table {schema.name}, column {name}: {int(bad.sum())} value(s) are not "
                            f"{kind} (first at line {line}); fix or remove these rows")
        if col.type == "int":
            frac = val.notna() & (val.astype("float64") % 1 != 0)
            if frac.any():
                line = first_line + int(np.flatnonzero(frac.to_numpy())[0])
                raise DataError(f"{tf.uri}: table {schema.name}, column {name}: non-integer id/count "
                                f"(first at line {line})")
            val = val.astype("Int64")
        elif col.type == "float":
            val = val.astype("float64")
        out[name] = val
    return pd.DataFrame(out, index=df.index)


def _count_quirks(df: pd.DataFrame, name: str, stats: LoadStats) -> None:
    if "ICUSTAY_ID" in df and name.endswith("EVENTS"):
        stats.add(name, "missing_icustay_id", int(df["ICUSTAY_ID"].isna().sum()))
    if "VALUE" in df and "VALUENUM" in df:
        stats.add(name, "value_without_valuenum", int((df["VALUE"].notna() & df["VALUENUM"].isna()).sum()))
    for c in df.columns:
        if str(df[c].dtype).startswith("datetime64"):
            years = df[c].dt.year
            stats.add(name, "dates_outside_2100_2210",
                      int(((years < 2100) | (years > 2210)).sum()) if c not in ("DOB",) else 0)


def iter_table(src: str, name: str, columns: Sequence[str] | None = None, chunksize: int = 1_000_000,
               dedupe: bool = False, stats: LoadStats | None = None) -> Iterator[pd.DataFrame]:
    """Chunks of a table with the explicit schema (upper-case columns in release order).

    ``columns`` selects columns (any case); ``dedupe`` drops rows identical except ROW_ID.
    Raises DataError naming the file and column for anything that does not fit the schema.
    """
    schema = table_schema(name)
    tf = locate_table(src, schema.name)
    stats = stats if stats is not None else LoadStats()
    file_cols = check_header(tf, schema, header_line(tf))
    by_upper = {c.strip().upper(): c for c in file_cols}
    want = [c.upper() for c in columns] if columns else schema.names
    unknown = [c for c in want if c not in schema.names]
    if unknown:
        raise DataError(f"table {schema.name} has no column(s) {', '.join(unknown)}")
    want = [c for c in schema.names if c in want]  # release order
    usecols = [by_upper[c] for c in want]
    first_line = 2
    try:
        with open_binary(tf) as f:
            reader = pd.read_csv(f, usecols=usecols, dtype=str, keep_default_na=False, na_values=[""],
                                 chunksize=chunksize, encoding="utf-8", engine="c")
            for raw in reader:
                raw = raw.rename(columns={v: k for k, v in by_upper.items()})[want]
                df = _convert(raw, schema, tf, first_line)
                first_line += len(raw)
                if len(want) > 1:
                    key = [c for c in want if c != "ROW_ID"]
                    dup = df.duplicated(subset=key)
                    stats.add(schema.name, "duplicate_rows", int(dup.sum()))
                    if dedupe:
                        df = df[~dup]
                _count_quirks(df, schema.name, stats)
                stats.rows[schema.name] += len(df)
                yield df.reset_index(drop=True)
    except UnicodeDecodeError:
        raise DataError(f"{tf.uri}: table {schema.name}: bytes that are not UTF-8 at "
                        f"{_locate_bad_utf8(tf)}; re-export the file as UTF-8") from None
    except pd.errors.ParserError as e:
        raise DataError(f"{tf.uri}: table {schema.name}: malformed CSV ({str(e).splitlines()[0]})") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{tf.uri}: empty file (no header row)") from None


def read_table(src: str, name: str, columns: Sequence[str] | None = None, dedupe: bool = False,
               stats: LoadStats | None = None) -> pd.DataFrame:
    """A whole table (small tables; use ``iter_table`` for the event tables)."""
    chunks = list(iter_table(src, name, columns, dedupe=dedupe, stats=stats))
    if not chunks:
        want = [c.upper() for c in columns] if columns else table_schema(name).names
        dtypes = pandas_dtypes(name)
        return pd.DataFrame({c: pd.Series(dtype=dtypes[c]) for c in table_schema(name).names if c in want})
    return pd.concat(chunks, ignore_index=True)


def age_years(dob: pd.Series, when: pd.Series, stats: LoadStats | None = None) -> pd.Series:
    """Age in years at ``when``; the release's ~300-year ages (> 89, shifted) become 91.4."""
    age = (when - dob).dt.days / 365.2425
    shifted = age >= 200
    if stats is not None:
        stats.add("PATIENTS", "age_over_89_shifted", int(shifted.sum()))
    return age.where(~shifted, SHIFTED_AGE)


def numeric_value(df: pd.DataFrame) -> pd.Series:
    """VALUENUM, falling back to a number parsed from VALUE ("7.2", not "<0.01" or text)."""
    parsed = pd.to_numeric(df["VALUE"], errors="coerce") if "VALUE" in df else np.nan
    return df["VALUENUM"].fillna(parsed) if "VALUENUM" in df else parsed
