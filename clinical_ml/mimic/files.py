"""Where each MIMIC-III table lives in a source folder (local path or ``s3://`` prefix).

The full release ships ``TABLE.csv.gz`` with upper-case headers; the PhysioNet demo ships
``TABLE.csv`` (or ``table.csv``) with lower-case headers. Readers (the pandas loader, the DuckDB
task builder) should not care: ``locate_table`` returns one ``TableFile`` that says which file,
whether it is gzip-compressed and which header case it carries, so a reader can map columns to
``clinical_ml.mimic.schema`` without sniffing again.

Files in the folder that are not release tables (e.g. the demo's ``LABEVENTS_partial.csv``)
are reported by ``unrecognised_files`` and otherwise ignored.
"""
from __future__ import annotations

import gzip
import io
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

from clinical_ml.io import DataError, localize
from clinical_ml.mimic.schema import ALL_TABLES, table as table_schema

_SUFFIXES = (".csv.gz", ".csv")


@dataclass(frozen=True)
class TableFile:
    table: str          # upper-case table name, e.g. "CHARTEVENTS"
    uri: str            # local path or s3:// URI of the file
    compressed: bool    # gzip (.csv.gz)
    upper_header: bool  # header row is upper case (release) rather than lower case (demo)

    @property
    def is_s3(self) -> bool:
        return self.uri.startswith("s3://")


def is_s3(src: str) -> bool:
    return str(src).startswith("s3://")


def _split_s3(uri: str) -> tuple[str, str]:
    rest = uri[len("s3://"):]
    bucket, _, key = rest.partition("/")
    return bucket, key


def _s3_client():
    import boto3  # imported lazily: local runs never need it

    return boto3.client("s3", endpoint_url=os.environ.get("AWS_ENDPOINT_URL") or None)


def _list_names(src: str) -> dict[str, str]:
    """File name -> full URI/path of the files directly inside ``src``."""
    if is_s3(src):
        bucket, prefix = _split_s3(src.rstrip("/") + "/")
        names: dict[str, str] = {}
        try:
            paginator = _s3_client().get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
                for obj in page.get("Contents", []):
                    name = obj["Key"][len(prefix):]
                    if name:
                        names[name] = f"s3://{bucket}/{obj['Key']}"
        except Exception as e:  # botocore errors: no bucket, no credentials, ...
            raise DataError(f"{src}: cannot list this S3 prefix ({type(e).__name__}: {e}); "
                            "check the URI and your AWS credentials") from None
        return names
    root = Path(src)
    if not root.is_dir():
        raise DataError(f"{src}: MIMIC-III source folder not found; pass a folder holding "
                        "TABLE.csv.gz or table.csv files (or an s3:// prefix)")
    return {p.name: str(p) for p in root.iterdir() if p.is_file()}


def _candidates(table: str) -> list[str]:
    return [name + suffix for name in (table.upper(), table.lower()) for suffix in _SUFFIXES]


def _read_head(uri: str, compressed: bool, nbytes: int = 65536) -> bytes:
    """The first bytes of the (decompressed) file: enough for the header row."""
    if is_s3(uri):
        bucket, key = _split_s3(uri)
        try:
            raw = _s3_client().get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{nbytes - 1}")["Body"].read()
        except Exception as e:
            raise DataError(f"{uri}: cannot read ({type(e).__name__}: {e})") from None
        if compressed:
            try:
                return zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(raw, nbytes)
            except zlib.error:
                raise DataError(f"{uri}: not a valid gzip file; re-download it") from None
        return raw
    try:
        if compressed:
            with gzip.open(uri, "rb") as f:
                return f.read(nbytes)
        with open(uri, "rb") as f:
            return f.read(nbytes)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{uri}: cannot read ({e}); re-download it") from None


def header_line(tf_or_uri: TableFile | str, compressed: bool | None = None) -> str:
    """The header row of a table file, decoded; '' for an empty file."""
    if isinstance(tf_or_uri, TableFile):
        uri, compressed = tf_or_uri.uri, tf_or_uri.compressed
    else:
        uri = tf_or_uri
        compressed = uri.endswith(".gz") if compressed is None else compressed
    head = _read_head(uri, bool(compressed))
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    try:
        return line.decode("utf-8").lstrip("\ufeff")
    except UnicodeDecodeError:
        raise DataError(f"{uri}: header row is not UTF-8 text") from None


def _header_is_upper(uri: str, compressed: bool, fallback: bool) -> bool:
    try:
        line = header_line(uri, compressed)
    except DataError:
        return fallback  # unreadable: the reader will raise the real error later
    letters = [c for c in line if c.isalpha()]
    if not letters:
        return fallback
    return sum(c.isupper() for c in letters) * 2 > len(letters)


def _table_file(table: str, name: str, uri: str) -> TableFile:
    compressed = name.endswith(".gz")
    fallback = name.split(".")[0].isupper()
    return TableFile(table=table, uri=uri, compressed=compressed,
                     upper_header=_header_is_upper(uri, compressed, fallback))


def _find(table: str, names: dict[str, str]) -> str | None:
    for cand in _candidates(table):
        if cand in names:
            return cand
    return None


def locate_table(src: str, table: str) -> TableFile:
    """The file holding ``table`` in ``src`` (release or demo layout); DataError when absent."""
    key = table_schema(table).name
    src = localize(str(src))
    names = _list_names(src)
    found = _find(key, names)
    if found is None:
        raise DataError(f"table {key} not found in {src}: expected {key}.csv.gz or "
                        f"{key}.csv (or lower-case {key.lower()}.csv[.gz])")
    return _table_file(key, found, names[found])


def list_tables(src: str) -> dict[str, TableFile]:
    """Every release table present in ``src``, by upper-case name (sorted)."""
    src = localize(str(src))
    names = _list_names(src)
    out: dict[str, TableFile] = {}
    for key in ALL_TABLES:
        found = _find(key, names)
        if found is not None:
            out[key] = _table_file(key, found, names[found])
    return out


def missing_tables(src: str) -> list[str]:
    """Release tables absent from ``src``."""
    present = list_tables(src)
    return [t for t in ALL_TABLES if t not in present]


def unrecognised_files(src: str) -> list[str]:
    """Names of CSV files in ``src`` that are not release tables (e.g. ``LABEVENTS_partial.csv``)."""
    src = localize(str(src))
    names = _list_names(src)
    known = {c for t in ALL_TABLES for c in _candidates(t)}
    return sorted(n for n in names if n.lower().endswith(_SUFFIXES) and n not in known)


def open_binary(tf: TableFile) -> io.BufferedIOBase:
    """A binary stream of the (decompressed) file; S3 objects are streamed, not downloaded."""
    if tf.is_s3:
        bucket, key = _split_s3(tf.uri)
        try:
            body = _s3_client().get_object(Bucket=bucket, Key=key)["Body"]
        except Exception as e:
            raise DataError(f"{tf.uri}: cannot read ({type(e).__name__}: {e})") from None
        return gzip.GzipFile(fileobj=body) if tf.compressed else body
    return gzip.open(tf.uri, "rb") if tf.compressed else open(tf.uri, "rb")
