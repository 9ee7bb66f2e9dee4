"""Read and write the task tree (docs/contracts.md, "Task tree").

``<out>/<split>/<task>/part-<shard:05d>.parquet``: every reader reads *all* parts of a folder in
sorted order, so K sharded runs (one part each) and one run (one part) give the same union.
Writers are atomic: a part is either complete or absent.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Sequence

import pandas as pd

from clinical_ml.io import DataError, atomic_path

TASKS: tuple[str, ...] = ("ihm", "decomp", "los", "pheno", "readmit")
SPLITS: tuple[str, ...] = ("train", "val", "test")
KEY_COLUMNS: tuple[str, ...] = ("subject_id", "hadm_id", "icustay_id", "prediction_hour")
GROUP_COLUMNS: tuple[str, ...] = ("sex", "age_band", "ethnicity", "insurance")
TIMESERIES = "timeseries"

# The 25 HCUP CCS groups with use_in_benchmark: True in mimic3-benchmarks'
# hcup_ccs_2015_definitions.yaml, in sorted order (the order of the benchmark's label columns).
PHENOTYPES: tuple[str, ...] = (
    "Acute and unspecified renal failure",
    "Acute cerebrovascular disease",
    "Acute myocardial infarction",
    "Cardiac dysrhythmias",
    "Chronic kidney disease",
    "Chronic obstructive pulmonary disease and bronchiectasis",
    "Complications of surgical procedures or medical care",
    "Conduction disorders",
    "Congestive heart failure; nonhypertensive",
    "Coronary atherosclerosis and other heart disease",
    "Diabetes mellitus with complications",
    "Diabetes mellitus without complication",
    "Disorders of lipid metabolism",
    "Essential hypertension",
    "Fluid and electrolyte disorders",
    "Gastrointestinal hemorrhage",
    "Hypertension with complications and secondary hypertension",
    "Other liver diseases",
    "Other lower respiratory disease",
    "Other upper respiratory disease",
    "Pleurisy; pneumothorax; pulmonary collapse",
    "Pneumonia (except that caused by tuberculosis or sexually transmitted disease)",
    "Respiratory failure; insufficiency; arrest (adult)",
    "Septicemia (except in labor)",
    "Shock",
)


def snake(name: str) -> str:
    """``"Congestive heart failure; nonhypertensive"`` -> ``"congestive_heart_failure_nonhypertensive"``."""
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


PHENOTYPE_COLUMNS: tuple[str, ...] = tuple(f"y_{snake(p)}" for p in PHENOTYPES)


def label_columns(task: str) -> list[str]:
    """Label column names of a task: ``["y"]``, or one ``y_<phenotype>`` column per phenotype."""
    if task not in TASKS:
        raise DataError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    return list(PHENOTYPE_COLUMNS) if task == "pheno" else ["y"]


def feature_columns(df: pd.DataFrame | Iterable[str]) -> list[str]:
    """The ``f_*`` feature columns, in the frame's order."""
    cols = df.columns if isinstance(df, pd.DataFrame) else df
    return [c for c in cols if str(c).startswith("f_")]


def part_name(shard: int) -> str:
    return f"part-{int(shard):05d}.parquet"


def _parts(split_dir: str | os.PathLike, name: str) -> list[Path]:
    folder = Path(split_dir) / name
    return sorted(folder.glob("part-*.parquet")) if folder.is_dir() else []


def read_split(split_dir: str | os.PathLike, task: str,
               columns: Sequence[str] | None = None) -> pd.DataFrame:
    """All parts of ``<split_dir>/<task>/`` concatenated in sorted part order.

    ``split_dir`` is one split folder (``<out>/train``). Raises DataError if there is no part.
    """
    if task not in TASKS and task != TIMESERIES:
        raise DataError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    parts = _parts(split_dir, task)
    if not parts:
        raise DataError(f"{Path(split_dir) / task}: no part-*.parquet files; run "
                        f"`clinical-ml build-tasks` with --tasks including {task} first")
    frames = [pd.read_parquet(p, columns=list(columns) if columns is not None else None)
              for p in parts]
    frames = [f for f in frames if len(f.columns)]
    df = pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]
    return df


def read_timeseries(split_dir: str | os.PathLike, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The hourly 17-channel series of one split (all parts)."""
    return read_split(split_dir, TIMESERIES, columns)


def write_part(df: pd.DataFrame, split_dir: str | os.PathLike, task: str, shard: int = 0,
               num_shards: int = 1) -> Path:
    """Write one shard's part of ``<split_dir>/<task>/`` atomically; returns its path."""
    if task not in TASKS and task != TIMESERIES:
        raise DataError(f"unknown task {task!r}; expected one of {', '.join(TASKS)}")
    if not 0 <= shard < max(num_shards, 1):
        raise DataError(f"shard index {shard} outside 0..{num_shards - 1}")
    path = Path(split_dir) / task / part_name(shard)
    with atomic_path(path) as tmp:
        df.reset_index(drop=True).to_parquet(tmp, index=False, compression="zstd")
    return path
