"""NOTEEVENTS as the text to extract from: chunked reading, category selection, cohort filter
and the note shards ``notes/extract/part-XXXXX.jsonl`` (docs/contracts.md "Notes").

NOTEEVENTS of the full release is ~2 M notes / ~4 GB: it is read ``chunk_rows`` rows at a time
(``iter_noteevents``), never whole. ``ExtractShardWriter`` spools each selected category to
its own file while the table streams by, then writes the shards in category order (discharge
summaries first), ``notes_per_shard`` notes each, into a temporary folder renamed into place
when complete. An empty selection still writes one empty ``part-00000.jsonl`` (an S3 prefix
without objects does not exist, and the next step's input must).

Nothing here logs note text or patient identifiers; counts only.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Iterable, Iterator

from clinical_ml.io import DataError, atomic_path, iter_jsonl, localize, sha256_file, write_json
from clinical_ml.logs import get_logger

log = get_logger(__name__)

DISCHARGE_SUMMARY = "Discharge summary"
ALL_CATEGORIES = "all"
REQUIRED_COLUMNS = ("ROW_ID", "SUBJECT_ID", "HADM_ID", "CATEGORY", "TEXT")
OPTIONAL_COLUMNS = ("CHARTDATE", "CHARTTIME", "ISERROR")
EXTRACT_DIR = "extract"
PART_GLOB = "part-*.jsonl"


def category_key(category: str) -> str:
    """Categories compare stripped and case-insensitively (the release writes 'Physician ')."""
    return " ".join(str(category).split()).casefold()


def parse_categories(spec: str) -> list[str] | None:
    """``--categories`` -> ordered category keys, or None for every category.

    Comma-separated, matched case-insensitively; "Discharge summary" goes first whenever it is
    listed (discharge summaries are the notes to extract first), the rest keep the order given.
    ``all`` keeps every category (discharge summaries first, then the others alphabetically)."""
    names = [category_key(c) for c in spec.split(",") if c.strip()]
    if not names:
        raise DataError("--categories is empty; pass e.g. 'Discharge summary' or "
                        "'Discharge summary,Nursing,Radiology' or 'all'")
    if ALL_CATEGORIES in names:
        return None
    out: list[str] = []
    for n in names:
        if n not in out:
            out.append(n)
    ds = category_key(DISCHARGE_SUMMARY)
    if ds in out:
        out.remove(ds)
        out.insert(0, ds)
    return out


def _int_or_none(v: Any) -> int | None:
    s = str(v).strip() if v is not None else ""
    if not s or s.lower() == "nan":
        return None
    try:
        return int(float(s))
    except ValueError:
        return None


def _text_or_none(v: Any) -> str | None:
    s = str(v).strip() if v is not None else ""
    return s or None


def noteevents_columns(src: str):
    """(TableFile, upper-case header columns) of NOTEEVENTS; DataError naming what is missing."""
    import csv

    from clinical_ml.mimic.files import header_line, locate_table

    tf = locate_table(src, "NOTEEVENTS")
    cols = [c.strip().upper() for c in next(csv.reader([header_line(tf)]), [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise DataError(f"{tf.uri}: NOTEEVENTS lacks columns {missing}; expected the MIMIC-III "
                        f"NOTEEVENTS header ({', '.join(REQUIRED_COLUMNS + OPTIONAL_COLUMNS)}, ...)")
    return tf, cols


def iter_noteevents(src: str, chunk_rows: int = 20_000, stats: dict | None = None) -> Iterator[Any]:
    """NOTEEVENTS as pandas frames of at most ``chunk_rows`` rows (string columns, upper-case
    names, only the columns used), error notes (ISERROR=1) dropped; ``stats`` (if given)
    gets ``rows`` and ``error_rows``. A header-only table yields nothing."""
    import pandas as pd

    from clinical_ml.mimic.files import open_binary

    tf, _ = noteevents_columns(src)
    wanted = set(REQUIRED_COLUMNS) | set(OPTIONAL_COLUMNS)
    stats = stats if stats is not None else {}
    stats.setdefault("rows", 0)
    stats.setdefault("error_rows", 0)
    with open_binary(tf) as f:
        reader = pd.read_csv(f, dtype=str, keep_default_na=False, chunksize=max(1, int(chunk_rows)),
                             usecols=lambda c: c.strip().upper() in wanted)
        for df in reader:
            df.columns = [c.strip().upper() for c in df.columns]
            for c in OPTIONAL_COLUMNS:
                if c not in df.columns:
                    df[c] = ""
            stats["rows"] += len(df)
            if len(df):
                err = df["ISERROR"].str.strip() == "1"
                stats["error_rows"] += int(err.sum())
                df = df[~err]
            if len(df):
                yield df


def note_line(row: Any) -> dict:
    """One NOTEEVENTS row (an itertuples row) as an extract-shard line."""
    cdate = _text_or_none(row.CHARTDATE)
    return {"id": int(row.ROW_ID), "text": row.TEXT, "category": " ".join(str(row.CATEGORY).split()),
            "subject_id": _int_or_none(row.SUBJECT_ID), "hadm_id": _int_or_none(row.HADM_ID),
            "chartdate": cdate[:10] if cdate else None, "charttime": _text_or_none(row.CHARTTIME)}


class ExtractShardWriter:
    """Collects the cohort's notes of the selected categories and writes the note shards.

    Use as a context manager: ``add(row)`` for every NOTEEVENTS row; on a clean exit the
    shards are in place (``stats`` says what was kept and dropped); on an error nothing is."""

    def __init__(self, out_dir: str | os.PathLike, categories: list[str] | None = None,
                 admissions: set[int] | None = None, notes_per_shard: int = 10_000):
        if notes_per_shard < 1:
            raise DataError(f"--notes-per-shard {notes_per_shard}: must be at least 1")
        self.out_dir = Path(out_dir)
        self.categories = categories
        self.admissions = admissions
        self.notes_per_shard = int(notes_per_shard)
        self._spools: dict[str, Any] = {}
        self._names: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self.stats: dict[str, Any] = {"notes": 0, "dropped_category": 0, "dropped_cohort": 0}

    def __enter__(self) -> "ExtractShardWriter":
        self._ctx = atomic_path(self.out_dir)
        self._tmp = self._ctx.__enter__()
        self._tmp.mkdir(parents=True)
        return self

    def add(self, row: Any) -> bool:
        key = category_key(row.CATEGORY)
        if self.categories is not None and key not in self.categories:
            self.stats["dropped_category"] += 1
            return False
        if self.admissions is not None and _int_or_none(row.HADM_ID) not in self.admissions:
            self.stats["dropped_cohort"] += 1
            return False
        f = self._spools.get(key)
        if f is None:
            f = self._spools[key] = open(self._tmp / f".spool-{len(self._spools):04d}", "w+", encoding="utf-8")
            self._names[key] = " ".join(str(row.CATEGORY).split())
            self._counts[key] = 0
        f.write(json.dumps(note_line(row), ensure_ascii=False) + "\n")
        self._counts[key] += 1
        self.stats["notes"] += 1
        return True

    def _order(self) -> list[str]:
        if self.categories is not None:
            return [k for k in self.categories if k in self._spools]
        ds = category_key(DISCHARGE_SUMMARY)
        return ([ds] if ds in self._spools else []) + sorted(k for k in self._spools if k != ds)

    def _write_parts(self) -> list[dict]:
        parts: list[dict] = []
        out = None

        def open_next():
            name = f"part-{len(parts):05d}.jsonl"
            parts.append({"name": name, "notes": 0})
            return open(self._tmp / name, "w", encoding="utf-8")

        for key in self._order():
            f = self._spools[key]
            f.seek(0)
            for line in f:
                if out is None or parts[-1]["notes"] >= self.notes_per_shard:
                    if out is not None:
                        out.close()
                    out = open_next()
                out.write(line)
                parts[-1]["notes"] += 1
        if out is None:  # no note selected: one empty shard, so the folder (S3 prefix) exists
            out = open_next()
        out.close()
        for p in parts:
            p["sha256"] = sha256_file(self._tmp / p["name"])
        return parts

    def _close_spools(self) -> None:
        for f in self._spools.values():
            f.close()
        for p in self._tmp.glob(".spool-*"):
            p.unlink()

    def _finish(self) -> None:
        parts = self._write_parts()
        self._close_spools()
        self.stats.update({
            "categories": {self._names[k]: self._counts[k] for k in self._order()},
            "parts": len(parts), "notes_per_shard": self.notes_per_shard,
            "selected_categories": "all" if self.categories is None else list(self.categories),
            "cohort_admissions": None if self.admissions is None else len(self.admissions)})
        write_json(self._tmp / "manifest.json", {**self.stats, "shards": parts})

    def __exit__(self, exc_type, exc, tb) -> bool:
        try:
            if exc_type is None:
                self._finish()
        except BaseException:
            self._close_spools()
            self._ctx.__exit__(*sys.exc_info())
            raise
        self._close_spools()
        self._ctx.__exit__(exc_type, exc, tb)
        return False


# ---------------------------------------------------------------- admissions (cohort) files
def _hadm_column(cols: Iterable[str], path: Path) -> str:
    for c in cols:
        if str(c).strip().upper() == "HADM_ID":
            return c
    raise DataError(f"{path}: no HADM_ID column; pass a CSV/Parquet with a HADM_ID (or hadm_id) "
                    "column, or a build-tasks output folder")


def _ids_from_file(path: Path, splits: tuple[str, ...] | None) -> set[int]:
    import pandas as pd

    name = path.name.lower()
    if name.endswith(".parquet"):
        import pyarrow.parquet as pq

        cols = pq.read_schema(path).names
        hadm = _hadm_column(cols, path)
        split_col = next((c for c in cols if c.lower() == "split"), None)
        df = pq.read_table(path, columns=[hadm] + ([split_col] if split_col and splits else [])).to_pandas()
    elif name.endswith((".csv", ".csv.gz")):
        df = pd.read_csv(path, dtype=str, keep_default_na=False,
                         usecols=lambda c: c.strip().upper() in ("HADM_ID", "SPLIT"))
        hadm = _hadm_column(df.columns, path)
        split_col = next((c for c in df.columns if c.strip().lower() == "split"), None)
    else:
        raise DataError(f"{path}: admissions must be a .csv, .csv.gz or .parquet file (or a "
                        "build-tasks output folder)")
    if split_col and splits:
        df = df[df[split_col].astype(str).str.strip().isin(splits)]
    return {i for i in (_int_or_none(v) for v in df[hadm].tolist()) if i is not None}


def read_admission_ids(path: str | os.PathLike, splits: Iterable[str] | None = None) -> set[int]:
    """HADM_IDs of a cohort: a CSV/Parquet file with a HADM_ID column (a ``split`` column, when
    present, is filtered to ``splits``), or a build-tasks output tree
    (``<split>/<task>/part-*.parquet``; only the ``splits`` folders when given) or one split's
    folder of it (``<task>/part-*.parquet``, as a processing job gets ``input/train``: all of it)."""
    local = localize(str(path))
    if local.startswith("s3://"):
        raise DataError(f"{path}: admissions must be a local file or folder (a processing job "
                        "gets its inputs under /opt/ml/processing/input)")
    p = Path(local)
    want = tuple(splits) if splits else None
    if p.is_file():
        return _ids_from_file(p, want)
    if not p.is_dir():
        raise DataError(f"{p}: admissions file or folder not found")
    tree = [q for q in sorted(p.glob("*/*/part-*.parquet"))
            if q.parent.name != "timeseries" and (want is None or q.parent.parent.name in want)]
    if not tree and not any(p.glob("*/*/part-*.parquet")):  # one split's folder (<task>/part-*.parquet),
        tree = [q for q in sorted(p.glob("*/part-*.parquet"))  # e.g. a job's input/train: taken whole
                if q.parent.name != "timeseries"]
    files = tree or [q for q in sorted(p.iterdir())
                     if q.is_file() and q.name.lower().endswith((".parquet", ".csv", ".csv.gz"))]
    if not files:
        raise DataError(f"{p}: no build-tasks parts (<split>/<task>/part-*.parquet"
                        f"{' for ' + ','.join(want) if want else ''}) and no CSV/Parquet files here")
    ids: set[int] = set()
    for q in files:
        ids |= _ids_from_file(q, None if tree else want)
    return ids


# ---------------------------------------------------------------- reading the shards back
def extract_parts(path: str | os.PathLike) -> list[Path]:
    """The note shards under ``path``: a folder of ``part-*.jsonl``, or a folder holding
    ``extract/`` or ``notes/extract/`` (a build-notes output)."""
    p = Path(localize(str(path)))
    for cand in (p, p / EXTRACT_DIR, p / "notes" / EXTRACT_DIR):
        parts = sorted(cand.glob(PART_GLOB)) if cand.is_dir() else []
        if parts:
            return parts
    raise DataError(f"{p}: no note shards (part-*.jsonl) here or under extract/ or notes/extract/; "
                    "run build-notes first (it writes notes/extract/part-XXXXX.jsonl)")


def iter_extract_notes(parts: Iterable[Path]) -> Iterator[dict]:
    """Every note line of the shards, in order; DataError naming the file and line when bad."""
    for part in parts:
        for n, obj, _ in iter_jsonl(part, "rerun build-notes"):
            if not isinstance(obj, dict) or "id" not in obj or not isinstance(obj.get("text"), str):
                raise DataError(f"{part}:{n}: a note shard line needs 'id' and a string 'text'")
            yield obj


def read_reference_times(mimic: str) -> dict[int, Any]:
    """hadm_id -> reference time (earlier of ADMITTIME and the first ICU INTIME)."""
    import pandas as pd

    from clinical_ml.mimic.files import locate_table, open_binary
    from clinical_ml.notes.features import parse_time, reference_time

    def read(table: str, cols: tuple[str, ...]):
        tf = locate_table(mimic, table)
        with open_binary(tf) as f:
            df = pd.read_csv(f, dtype=str, keep_default_na=False, usecols=lambda c: c.strip().upper() in cols)
        df.columns = [c.strip().upper() for c in df.columns]
        if set(cols) - set(df.columns):
            raise DataError(f"{tf.uri}: {table} lacks columns {sorted(set(cols) - set(df.columns))}")
        return df

    try:
        adm = read("ADMISSIONS", ("HADM_ID", "ADMITTIME"))
    except DataError as e:
        raise DataError(f"--cut-hours needs the ADMISSIONS table (ADMITTIME) in --mimic: {e}") from None
    intimes: dict[int, list] = {}
    try:
        icu = read("ICUSTAYS", ("HADM_ID", "INTIME"))
        for h, t in zip(icu["HADM_ID"], icu["INTIME"]):
            if h.strip():
                intimes.setdefault(int(float(h)), []).append(parse_time(t))
    except DataError:
        log.info("notes: no ICUSTAYS in --mimic: the cut counts from ADMITTIME only")
    out = {}
    for h, t in zip(adm["HADM_ID"], adm["ADMITTIME"]):
        if h.strip():
            hadm = int(float(h))
            out[hadm] = reference_time(parse_time(t), intimes.get(hadm, ()))
    return out
