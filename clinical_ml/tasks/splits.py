"""Subject-level hashing: shards and train/val/test splits.

Both use one integer hash written identically in Python and in DuckDB SQL (a Knuth
multiplicative hash, bits 16..31), so a subject's shard and split never depend on the engine,
the DuckDB version, the process or the order of input rows. Python's ``hash`` and DuckDB's
``hash()`` are not used: neither is promised stable across versions.

Splits: a subject listed in mimic3-benchmarks' published ``testset.csv``/``valset.csv``
(embedded as ``resources/published_splits.csv``: test 15 %, val 18 % of the rest) keeps its
published split, so real MIMIC-III reproduces the benchmark's partition exactly; any other
subject (synthetic data, new ids) gets a stable hash split with the same proportions
(test 15 %, val 15 %, train 70 %).
"""
from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources

from clinical_ml.sql import Sql, raw, render

_MULT = 2654435761
_MOD = 1 << 32
_SALT_SHARD = 0
_SALT_SPLIT = 0x5BD1E995
TEST_PCT, VAL_PCT = 15, 15


def subject_hash(subject_id: int, salt: int = 0) -> int:
    return (((int(subject_id) + salt) * _MULT) % _MOD) >> 16


def hash_sql(col: str, salt: int = 0) -> Sql:
    """``subject_hash`` in SQL; ``col`` is an SQL expression written by this code."""
    return render("((((CAST({col} AS HUGEINT) + {salt}) * {mult}) % {mod}) // 65536)",
                  col=raw(col), salt=int(salt), mult=_MULT, mod=_MOD)


def shard_of(subject_id: int, num_shards: int) -> int:
    return subject_hash(subject_id, _SALT_SHARD) % num_shards


def shard_sql(col: str, num_shards: int) -> Sql:
    return render("({h} % {n})", h=hash_sql(col, _SALT_SHARD), n=int(num_shards))


def hash_split(subject_id: int) -> str:
    b = subject_hash(subject_id, _SALT_SPLIT) % 100
    return "test" if b < TEST_PCT else "val" if b < TEST_PCT + VAL_PCT else "train"


def hash_split_sql(col: str) -> Sql:
    return render("(CASE WHEN ({b}) < {test} THEN 'test' WHEN ({b}) < {test_val} THEN 'val' ELSE 'train' END)",
                  b=hash_split_sql_bucket(col), test=TEST_PCT, test_val=TEST_PCT + VAL_PCT)


def hash_split_sql_bucket(col: str) -> Sql:
    return render("{h} % 100", h=hash_sql(col, _SALT_SPLIT))


@lru_cache(maxsize=1)
def published_splits() -> dict[int, str]:
    """subject_id -> train | val | test, from the benchmark's published lists."""
    with resources.files("clinical_ml.tasks.resources").joinpath("published_splits.csv").open(
            "r", encoding="utf-8") as f:
        return {int(r["subject_id"]): r["split"] for r in csv.DictReader(f)}


def split_of(subject_id: int, source: str = "auto") -> str:
    """``auto``: published split when listed, else hash; ``hash``: always hash;
    ``published``: published split or ``None`` for an unlisted subject."""
    if source == "hash":
        return hash_split(subject_id)
    pub = published_splits().get(int(subject_id))
    if source == "published" or pub is not None:
        return pub
    return hash_split(subject_id)
