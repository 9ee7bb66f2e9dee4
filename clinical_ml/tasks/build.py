"""Build the task tree for one shard: MIMIC-III folder -> Parquet per split and task + manifests.

``build(BuildConfig(...))`` is what ``clinical-ml build-tasks`` and the processing step call.
The steps (cohort, events, episodes, labels, features) live in their own modules; this one
wires them, assigns splits, writes parts atomically and records the manifest. Only the asked
tasks the input's tables allow are built (``tables.plan``; the event tables are loaded only
when both exist, readmission being the one task that does without them); the manifest's
``task_plan`` names the others. A data window (``window.py``) keeps the stays of admissions
admitted in it; the manifest's ``data_window`` records it. Paths, settings
and values reach DuckDB as bound parameters, connection config or ``clinical_ml.sql`` literals.
"""
from __future__ import annotations

import resource
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from clinical_ml.io import DataError, atomic_path, sha256_file, write_json
from clinical_ml.logs import get_logger
from clinical_ml.mimic.files import locate_table
from clinical_ml.sql import Sql, ident, join, literal, raw, render
from clinical_ml.tasks import cohort, events, features, labels, manifest, sources, tables
from clinical_ml.tasks import subject_batches
from clinical_ml.tasks.io import (PHENOTYPE_COLUMNS, SPLITS, TASKS, TIMESERIES,
                                  part_name)
from clinical_ml.tasks.splits import hash_split_sql, published_splits
from clinical_ml.tasks.variables import channels
from clinical_ml.tasks.window import Window

log = get_logger(__name__)
SCHEMA_VERSION = 1


@dataclass
class BuildConfig:
    mimic: str
    out: str
    tasks: tuple[str, ...] = TASKS
    num_shards: int = 1
    shard_index: int = 0
    sample_every: int = 4        # decomp/los: keep every H-th hour in train
    eval_sample_every: int = 1   # decomp/los: val/test keep the reference's hourly samples
    split_source: str = "auto"   # auto | published | hash
    memory_limit: str = "1536MB"
    batch_stays: int = 1000      # stays per subject batch after the scan (subject_batches.py); 0: one batch
    threads: int = 2
    temp_dir: str | None = None
    timeseries: bool = True
    data_window_start: str | None = None  # ISO 8601 or "none": ADMITTIME >= start
    data_window_end: str | None = None    # ISO 8601 or "none": ADMITTIME < end

    def window(self) -> Window:
        return Window.parse(self.data_window_start, self.data_window_end)

    def validate(self) -> None:
        bad = [t for t in self.tasks if t not in TASKS]
        if bad or not self.tasks:
            raise DataError(f"--tasks: unknown task(s) {bad or '(none)'}; choose from {','.join(TASKS)}")
        if self.num_shards < 1 or not 0 <= self.shard_index < self.num_shards:
            raise DataError(f"--shard-index {self.shard_index} must be in 0..{self.num_shards - 1}")
        if self.sample_every < 1 or self.eval_sample_every < 1:
            raise DataError("--sample-every and --eval-sample-every must be >= 1 (hours)")
        if self.batch_stays < 0:
            raise DataError("--batch-stays must be >= 0 (0: the whole shard in one batch)")
        if self.split_source not in ("auto", "published", "hash"):
            raise DataError("--split-source must be auto, published or hash")
        self.window()  # a bad time fails before any work


def _connect(cfg: BuildConfig, tmp: str) -> duckdb.DuckDBPyConnection:
    try:
        con = duckdb.connect(":memory:", config={
            "memory_limit": str(cfg.memory_limit), "threads": int(cfg.threads),
            "temp_directory": str(tmp), "preserve_insertion_order": False})
    except duckdb.Error as e:
        raise DataError(f"--memory-limit {cfg.memory_limit!r} / --threads {cfg.threads}: {e}") from None
    # DuckDB 2.0's "type_pushdown" turns TRY_CAST over a CSV column into a strict typed read,
    # so one bad timestamp would abort the scan instead of becoming a counted NULL.
    try:
        con.execute("SET disabled_optimizers='type_pushdown'")
    except duckdb.Error:  # older DuckDB: no such optimizer, nothing to disable
        pass
    return con


def _load_splits(con: duckdb.DuckDBPyConnection, source: str) -> dict:
    rows = published_splits()
    tbl = pa.table({"subject_id": pa.array(list(rows), pa.int64()),
                    "split": pa.array(list(rows.values()), pa.string())})
    con.register("pub_split_arrow", tbl)
    con.execute("CREATE OR REPLACE TEMP TABLE pub_split AS SELECT * FROM pub_split_arrow")
    con.unregister("pub_split_arrow")
    if source == "hash":
        expr = hash_split_sql("s.subject_id")
    elif source == "published":
        expr = raw("p.split")
    else:
        expr = render("coalesce(p.split, {h})", h=hash_split_sql("s.subject_id"))
    con.execute(render("""CREATE OR REPLACE TEMP TABLE subj_split AS
        SELECT s.subject_id, {expr} AS split, p.split IS NOT NULL AS published
        FROM (SELECT DISTINCT subject_id FROM stays_ep) s LEFT JOIN pub_split p USING (subject_id)""", expr=expr))
    c = con.execute("""SELECT count(*), count(*) FILTER (WHERE published),
                       count(*) FILTER (WHERE split IS NULL) FROM subj_split""").fetchall()[0]
    con.execute("DELETE FROM subj_split WHERE split IS NULL")
    return {"source": source, "subjects": int(c[0]), "subjects_in_published_lists": int(c[1]),
            "subjects_dropped_unlisted": int(c[2])}


def _load_diagnoses(con: duckdb.DuckDBPyConnection, src: str) -> dict:
    from importlib import resources
    path = resources.files("clinical_ml.tasks.resources").joinpath("phenotype_codes.csv")
    con.execute("CREATE OR REPLACE TEMP TABLE ph_codes AS SELECT * FROM read_csv(?, "
                "header=true, columns={'icd9_code': 'VARCHAR', 'phenotype': 'VARCHAR'})", [str(path)])
    rel = sources.read_sql(con, src, "DIAGNOSES_ICD")
    known = raw("")
    note = {}
    try:
        drel = sources.read_sql(con, src, "D_ICD_DIAGNOSES")
        known = render("AND d.ICD9_CODE IN (SELECT ICD9_CODE FROM {drel})", drel=drel)
        note["restricted_to_d_icd_diagnoses"] = True  # the reference's inner merge
    except DataError:
        note["restricted_to_d_icd_diagnoses"] = False
    sources.run(con, render("""CREATE OR REPLACE TEMP TABLE diag AS
        SELECT DISTINCT TRY_CAST(d.SUBJECT_ID AS BIGINT) AS subject_id,
               TRY_CAST(d.HADM_ID AS BIGINT) AS hadm_id, d.ICD9_CODE AS icd9_code
        FROM {rel} d
        WHERE TRY_CAST(d.SUBJECT_ID AS BIGINT) IN (SELECT subject_id FROM stays) {known}""", rel=rel, known=known),
                "DIAGNOSES_ICD")
    con.execute("""CREATE OR REPLACE TEMP TABLE diag_pheno AS
        SELECT DISTINCT d.subject_id, d.hadm_id, c.phenotype FROM diag d JOIN ph_codes c USING (icd9_code)""")
    con.execute("CREATE OR REPLACE TEMP TABLE diag_adm AS SELECT DISTINCT subject_id, hadm_id FROM diag")
    con.execute("DROP TABLE diag")
    return note


def _every_sql(cfg: BuildConfig) -> Sql:
    return render("CASE WHEN split = 'train' THEN {a} ELSE {b} END",
                  a=int(cfg.sample_every), b=int(cfg.eval_sample_every))


def _copy(con: duckdb.DuckDBPyConnection, query: Sql, path: Path) -> None:
    with atomic_path(path) as tmp:
        con.execute(render("COPY ({query}) TO ? (FORMAT parquet, COMPRESSION zstd, ROW_GROUP_SIZE 100000)",
                           query=query), [str(tmp)])


def _remove_other_parts(path: Path) -> None:
    for p in path.parent.glob("part-*.parquet"):
        if p.name != path.name:
            p.unlink()


def _task_query(task: str, split: str) -> Sql:
    if task == "pheno":
        y = join(", ", (ident(c) for c in PHENOTYPE_COLUMNS))
    elif task == "los":
        y = render("CAST(t.y AS DOUBLE) AS y, {bucket} AS y_bucket", bucket=labels.los_bucket_sql("t.y"))
    else:
        y = raw("CAST(t.y AS TINYINT) AS y")
    groups = join(", ", (render("s.{g}", g=ident(g)) for g in ("sex", "age", "age_band", "ethnicity", "insurance")))
    return render("""SELECT t.subject_id, t.hadm_id, t.icustay_id, CAST(t.prediction_hour AS DOUBLE) AS prediction_hour,
               {y}, {groups}, f.* EXCLUDE (icustay_id, tb)
        FROM {table} t JOIN subj_split p USING (subject_id)
        JOIN stays s ON s.icustay_id = t.icustay_id
        LEFT JOIN feats f ON f.icustay_id = t.icustay_id AND f.tb = t.tb
        WHERE p.split = {split}
        ORDER BY t.subject_id, t.icustay_id, t.prediction_hour""",
                  y=y, groups=groups, table=ident(f"t_{task}"), split=literal(split))


def _timeseries_query(split: str) -> Sql:
    cols = join(", ", (render("max({val}) FILTER (WHERE variable = {var}) AS {name}",
                              val=raw("value_str" if c.categorical else "value_num"),
                              var=literal(c.variable), name=ident(c.name)) for c in channels()))
    return render("""SELECT e.icustay_id, e.hours AS hour, {cols}
        FROM ep e JOIN stays_ep s USING (icustay_id) JOIN subj_split p USING (subject_id)
        WHERE p.split = {split} AND s.los_h IS NOT NULL AND s.n_window > 0 AND s.has_diagnoses
          AND e.hours > -{eps} AND e.hours < s.los_h + {eps}
        GROUP BY e.icustay_id, e.hours ORDER BY e.icustay_id, e.hours""",
                  cols=cols, split=literal(split), eps=events.EPS)


def _prevalence(con: duckdb.DuckDBPyConnection, task: str, split: str) -> dict:
    where = render("FROM {table} JOIN subj_split USING (subject_id) WHERE split = ?", table=ident(f"t_{task}"))
    if task == "pheno":
        sums = join(", ", (render("sum({c})", c=ident(c)) for c in PHENOTYPE_COLUMNS))
        row = con.execute(render("SELECT count(*), {sums} {where}", sums=sums, where=where), [split]).fetchall()[0]
        n = int(row[0])
        pos = {c: int(v or 0) for c, v in zip(PHENOTYPE_COLUMNS, row[1:])}
        return {"rows": n, "positives": pos,
                "prevalence": {c: round(v / n, 6) if n else None for c, v in pos.items()}}
    row = con.execute(render("SELECT count(*), sum(y), count(DISTINCT icustay_id) {where}", where=where),
                      [split]).fetchall()[0]
    n, total = int(row[0]), float(row[1] or 0)
    if task == "los":
        return {"rows": n, "stays": int(row[2]), "sum_y": round(total, 6),
                "mean_y": round(total / n, 6) if n else None}
    return {"rows": n, "stays": int(row[2]), "positives": int(total),
            "prevalence": round(total / n, 6) if n else None}


def build(cfg: BuildConfig) -> dict:
    """Run every step for ``cfg``'s shard; returns the manifest (also written to disk)."""
    cfg.validate()
    t0 = time.perf_counter()
    out = Path(cfg.out)
    locate_table(cfg.mimic, "ICUSTAYS")  # fail fast with a clear message on a wrong folder
    plan = tables.plan(cfg.mimic, cfg.tasks)  # DataError when no asked task can be built
    for names, missing in plan.groups():  # short arguments: the log filter keeps them
        log.warning("build-tasks: not building %s: table(s) %s not found in the input; building %s",
                    names, missing, ",".join(plan.build))
    if cfg.temp_dir:
        Path(cfg.temp_dir).mkdir(parents=True, exist_ok=True)
    tmp_root = tempfile.mkdtemp(prefix=f"build-tasks-{cfg.shard_index}-", dir=cfg.temp_dir)
    try:
        return _build(cfg, out, tmp_root, t0, plan)
    finally:
        shutil.rmtree(tmp_root, ignore_errors=True)


@contextmanager
def _timed(m: dict, step: str):
    """Wall seconds of one phase into ``m["step_seconds"]`` and the process's peak RSS so far
    into ``m["step_peak_rss_mib"]`` (the first phase whose figure jumps is the one that holds
    the memory): where a build's time and memory go, per size, is what the scale benchmark
    reads (``manifest.load`` sums the seconds over shards and keeps the largest peak)."""
    t = time.perf_counter()
    yield
    secs = m.setdefault("step_seconds", {})
    secs[step] = round(secs.get(step, 0.0) + time.perf_counter() - t, 3)  # batches add up
    m.setdefault("step_peak_rss_mib", {})[step] = round(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _build(cfg: BuildConfig, out: Path, tmp_root: str, t0: float, plan: tables.Plan) -> dict:
    con = _connect(cfg, tmp_root)
    m: dict = {"schema_version": SCHEMA_VERSION, "shard": {"index": cfg.shard_index, "count": cfg.num_shards},
               "config": {k: v for k, v in asdict(cfg).items() if k not in ("mimic", "out", "temp_dir")},
               "task_plan": plan.manifest()}
    with _timed(m, "cohort"):
        m["input"] = cohort.load_tables(con, cfg.mimic, cfg.num_shards, cfg.shard_index)
        window = cfg.window()
        m["data_window"] = window.manifest()
        m["cohort"] = cohort.build_stays(con, window)
        m["diagnoses"] = _load_diagnoses(con, cfg.mimic)
    if "data_window" in m["cohort"] and cfg.num_shards == 1 and not m["cohort"]["data_window"]["admissions"]:
        lo, hi = con.execute("SELECT min(admittime), max(admittime) FROM adm").fetchall()[0]
        raise DataError(f"{cfg.mimic}: no ICU admission has ADMITTIME in the data window "
                        f"[{window.manifest()['start'] or 'none'}, {window.manifest()['end'] or 'none'}); "
                        f"the input's ADMITTIME runs from {lo} to {hi}")
    events.load_var_map(con)
    n_batches = subject_batches.count(con, cfg.batch_stays)
    spill = Path(tmp_root) / "events" if n_batches > 1 else None
    if plan.events:
        with _timed(m, "events_scan"):
            m["events"] = events.load_events(con, cfg.mimic, cfg.num_shards, cfg.shard_index,
                                             spill, n_batches)
    else:
        m["events"] = {"loaded": False, "missing_tables": [t for t in tables.EVENT_TABLES
                                                           if t in plan.absent_tables]}
        m["cleaning"] = None
    m["batches"] = {"count": n_batches, "batch_stays": cfg.batch_stays}
    if n_batches == 1:
        m.update(_build_batch(con, cfg, m, plan, out, tmp_root))
    else:
        con.execute("ALTER TABLE stays RENAME TO stays_all")
        writers, parts = subject_batches.PartWriters(out), None
        try:
            for b in range(n_batches):
                subject_batches.select(con, b, n_batches)
                if plan.events:
                    events.load_batch(con, spill, b)
                part = _build_batch(con, cfg, m, plan, out, tmp_root, writers)
                parts = part if parts is None else manifest.merge(parts, part)
                subject_batches.drop_batch_tables(con)
                log.info("build-tasks: batch %d/%d done", b + 1, n_batches)
            with _timed(m, "write"):
                stale = _remove_other_parts if cfg.num_shards == 1 else (lambda p: None)
                paths = writers.close(stale)
        finally:
            writers.abort()
        manifest.recompute_ratios(parts["tasks"])
        m.update(parts)
        m["files"] = {p.relative_to(out).as_posix(): _file_entry(p) for p in paths}
    if plan.events:
        m["events"].update(m.pop("validation"))
    log.info("cohort: %d stays, %d episodes", m["cohort"]["remove_age_under_18"]["icustays"],
             m["episodes"]["episodes"])
    m["seconds"] = round(time.perf_counter() - t0, 3)
    con.close()
    for split in SPLITS:
        split_m = {"shard": m["shard"], "tasks": m["tasks"][split],
                   "files": {k: v for k, v in m["files"].items() if k.startswith(split + "/")}}
        write_json(out / split / f"manifest-{cfg.shard_index:05d}.json", split_m)
    write_json(out / f"manifest-{cfg.shard_index:05d}.json", m)
    if cfg.num_shards == 1:
        write_json(out / "manifest.json", m)
    log.info("build-tasks shard %d/%d done in %.1fs (%s)", cfg.shard_index, cfg.num_shards, m["seconds"],
             ", ".join(f"{k} {v:.1f}" for k, v in m["step_seconds"].items()))
    return m


def _build_batch(con: duckdb.DuckDBPyConnection, cfg: BuildConfig, m: dict, plan: tables.Plan,
                 out: Path, tmp_root: str, writers: subject_batches.PartWriters | None = None) -> dict:
    """Every phase after the scan, over the subjects in ``stays`` (a batch or the whole shard),
    parts written under ``out`` (through ``writers`` when batched); the batch's counts (summed
    over batches by the caller)."""
    r: dict = {}
    tasks = plan.build  # the asked tasks the input's tables allow (in the asked order)
    if plan.events:
        with _timed(m, "events_clean"):
            r["validation"] = events.validate_events(con)
            r["cleaning"] = events.clean_events(con)
    with _timed(m, "episodes"):
        r["episodes"] = events.build_episodes(con) if plan.events else events.build_episodes_without_events(con)
        r["splits"] = _load_splits(con, cfg.split_source)
    with _timed(m, "labels"):
        built = _build_labels(con, cfg, tasks, r, plan.events)
    with _timed(m, "features"):
        r["feature_points"] = features.build_features(con, built, tmp_root)
    m["features"] = features.feature_names()
    with _timed(m, "write"):
        r["tasks"], r["files"] = _write_parts(con, cfg, out, tasks, writers)
    return r


def _build_labels(con: duckdb.DuckDBPyConnection, cfg: BuildConfig, tasks: tuple[str, ...], m: dict,
                  events_loaded: bool) -> list[str]:
    """The label tables of ``tasks`` (``t_<task>``); the names of those built."""
    built = []
    if "ihm" in tasks:
        labels.build_ihm(con); built.append("t_ihm")
    if "decomp" in tasks or "los" in tasks:
        labels.build_hourly(con, _every_sql(cfg))
        built += [f"t_{t}" for t in ("decomp", "los") if t in tasks]
        hc = con.execute("SELECT split, decomp, decomp_pos, los FROM hourly_counts").fetchall()
        m["hourly_samples_reference"] = {s: {"decomp": int(d), "decomp_positives": int(dp), "los": int(l)}
                                         for s, d, dp, l in hc}
    if "pheno" in tasks:
        labels.build_pheno(con); built.append("t_pheno")
    if "readmit" in tasks:
        m["readmit"] = labels.build_readmit(con, events=events_loaded); built.append("t_readmit")
    return built


def _file_entry(path: Path) -> dict:
    """A written part as the manifest lists it."""
    return {"sha256": sha256_file(path), "bytes": path.stat().st_size}


def _write_parts(con: duckdb.DuckDBPyConnection, cfg: BuildConfig, out: Path, tasks: tuple[str, ...],
                 writers: subject_batches.PartWriters | None = None) -> tuple[dict, dict]:
    """Each split's task and timeseries parts (atomic): written now with ``COPY``, or appended
    to ``writers`` (a batch); per-task counts and the written parts' hashes."""
    files: dict[str, dict] = {}
    counts: dict[str, dict] = {}
    for split in SPLITS:
        queries = [(task, _task_query(task, split)) for task in tasks]
        if cfg.timeseries:
            queries.append((TIMESERIES, _timeseries_query(split)))
        for name, query in queries:
            path = out / split / name / part_name(cfg.shard_index)
            if writers is not None:
                writers.write(con, query, path.relative_to(out).as_posix())
            else:
                if cfg.num_shards == 1:  # a single run owns the folder: no stale parts of older runs
                    _remove_other_parts(path)
                _copy(con, query, path)
                files[path.relative_to(out).as_posix()] = _file_entry(path)
        counts[split] = {task: _prevalence(con, task, split) for task in tasks}
    return counts, files
