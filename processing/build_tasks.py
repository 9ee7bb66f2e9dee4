"""MIMIC-III -> benchmark tasks (ihm, decomp, los, pheno, readmit) as Parquet.

Processing contract: reads a MIMIC-III folder (``/opt/ml/processing/input/mimic``; release
``TABLE.csv.gz`` or demo ``table.csv``); writes the task tree of docs/contracts.md under
``/opt/ml/processing/output``: ``{train,val,test}/<task>/part-<shard>.parquet``, the
per-stay series under ``<split>/timeseries/`` and manifests (counts per filter step, label
prevalence, content hashes). Definitions: docs/tasks.md.

Sharding: ``--num-shards K --shard-index I`` keeps the subjects whose stable SUBJECT_ID hash
falls in shard I; the union of K runs equals one run. Inside a SageMaker Processing job with
instance_count K the defaults come from /opt/ml/config/resourceconfig.json (this host's
position among the sorted hosts), so every instance writes its own ``part-<I>`` files into the
same output prefix. The MIMIC-III input must be FullyReplicated: the tables are single files,
so ShardedByS3Key would hand whole tables to single instances.

    clinical-ml build-tasks --mimic DIR --out DST [--tasks ihm,los] [--num-shards 4 --shard-index 0]
    python -m processing.build_tasks ...   |   python processing/build_tasks.py ...

Missing tables (clinical_ml/tasks/tables.py): the asked tasks the input allows are built and
the others named, with the tables they lack, in a warning line, in the printed JSON
(``not_built``) and in the manifest (``task_plan``). Exit status: 0 when at least one asked
task was built; 2 (one error line naming each task's missing tables) when none could be, or
when a cohort table (ICUSTAYS, ADMISSIONS, PATIENTS, DIAGNOSES_ICD) is missing.

Data window: ``--data-window-start/--data-window-end`` (the pipeline's DataWindowStart/
DataWindowEnd: ISO 8601 or ``none``, default from ``$DATA_WINDOW_START/$DATA_WINDOW_END``, else
none) build tasks only from admissions with ADMITTIME in [start, end); MIMIC-III's per-patient
date shift makes that anonymized time (clinical_ml/tasks/window.py, docs/retraining.md). No
admission in the window: exit 2 with the input's ADMITTIME range.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from clinical_ml.io import DataError, localize, sagemaker_shard
from clinical_ml.logs import get_logger

log = get_logger("build_tasks")
PROC = "/opt/ml/processing"
def parse_args(argv: list[str] | None):
    from clinical_ml.tasks.io import TASKS

    k, i = sagemaker_shard()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mimic", "--input", dest="mimic", default=f"{PROC}/input/mimic",
                   help="MIMIC-III folder (or s3:// prefix)")
    p.add_argument("--out", "--output", dest="out", default=f"{PROC}/output", help="task tree root")
    p.add_argument("--tasks", default=",".join(TASKS), help="comma-separated subset of " + ",".join(TASKS))
    p.add_argument("--num-shards", type=int, default=k)
    p.add_argument("--shard-index", type=int, default=i)
    p.add_argument("--sample-every", type=int, default=4,
                   help="decomp/los: keep every H-th hourly sample in train (1 = reference)")
    p.add_argument("--eval-sample-every", type=int, default=1,
                   help="decomp/los: the same for val/test (default 1: the reference's hourly samples)")
    p.add_argument("--split-source", choices=("auto", "published", "hash"), default="auto",
                   help="auto: published mimic3-benchmarks split when the subject is listed, else hash")
    p.add_argument("--memory-limit", default=os.environ.get("CLINICAL_ML_DUCKDB_MEMORY", "1536MB"),
                   help="DuckDB memory limit; larger intermediates spill to --temp-dir")
    p.add_argument("--batch-stays", type=int, default=int(os.environ.get("CLINICAL_ML_BATCH_STAYS", "1000")),
                   help="ICU stays per subject batch after the one events scan (bounds peak RSS "
                        "whatever the shard's size); 0 = the whole shard at once")
    p.add_argument("--threads", type=int, default=max(1, min(os.cpu_count() or 1, 8)))
    p.add_argument("--temp-dir", default=None, help="spill folder (default: a fresh temp folder)")
    p.add_argument("--no-timeseries", action="store_true", help="skip writing <split>/timeseries")
    p.add_argument("--data-window-start", default=os.environ.get("DATA_WINDOW_START", "none"),
                   help="keep admissions with ADMITTIME >= this ISO 8601 time; none = open")
    p.add_argument("--data-window-end", default=os.environ.get("DATA_WINDOW_END", "none"),
                   help="keep admissions with ADMITTIME < this ISO 8601 time; none = open")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from clinical_ml import audit
    from clinical_ml.mimic.schema import TASK_TABLES
    from clinical_ml.tasks.build import BuildConfig, build

    a = parse_args(argv)
    tasks = tuple(t.strip() for t in a.tasks.split(",") if t.strip())
    cfg = BuildConfig(mimic=localize(a.mimic), out=localize(a.out), tasks=tasks,
                      num_shards=a.num_shards, shard_index=a.shard_index,
                      sample_every=a.sample_every, eval_sample_every=a.eval_sample_every,
                      split_source=a.split_source, memory_limit=a.memory_limit, threads=a.threads,
                      batch_stays=a.batch_stays,
                      temp_dir=a.temp_dir, timeseries=not a.no_timeseries,
                      data_window_start=a.data_window_start, data_window_end=a.data_window_end)
    if cfg.out.startswith("s3://"):
        raise DataError(f"--out {cfg.out}: write to a local folder (SageMaker uploads "
                        "/opt/ml/processing/output for you)")
    m = build(cfg)
    audit.ingest_event(cfg.mimic, TASK_TABLES, step="build-tasks")
    counts = {s: {t: v["rows"] for t, v in m["tasks"][s].items()} for s in m["tasks"]}
    out = {"shard": m["shard"], "rows": counts, "seconds": m["seconds"]}
    if "data_window" in m["cohort"]:
        out["data_window"] = {**m["data_window"], "admissions": m["cohort"]["data_window"]["admissions"]}
    if m["task_plan"]["not_built"]:
        out["not_built"] = m["task_plan"]["not_built"]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
