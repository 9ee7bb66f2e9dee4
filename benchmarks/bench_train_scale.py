"""XGBoost on the decompensation task at N training rows: the old in-memory path vs the
streaming path, side by side, each fit in a process of its own.

- old: ``read_split`` -> pandas -> float32 ``feature_matrix`` -> ``xgb.DMatrix`` (train and
  validation), what ``train_task`` did before docs/outcomes.md "Training at size";
- new: the training step's path, the Parquet parts in row batches (``batches.SplitParts``)
  into ``QuantileDMatrix`` (validation with ``ref=`` the training matrix), validation AUROC
  from batched predictions;
- extmem (``--paths old,new,extmem``): the same batches into ``ExtMemQuantileDMatrix``, XGBoost's
  external-memory pages cached on disk beside the split (removed after the fit): does it keep
  the peak flat where the in-memory quantised matrix grows?

Data: a synthetic MIMIC-III (``clinical-ml synth --patients P --seed S``) built once into a
decompensation task tree with hourly samples (``build-tasks --tasks decomp --sample-every 1``),
cached under ``--work``; the N-row training split tiles its train part (copy k > 0 gets a
deterministic jitter of 1% of each feature's standard deviation, so no row repeats exactly),
written as one Parquet part in row groups of 100,000 rows as build-tasks writes them. Every
size validates on the tree's own (hourly) validation split. A fixed number of rounds
(``--max-rounds``, early stopping patience as large, so it never stops early), ``--nthread``.

Per path and size: wall and CPU seconds and peak RSS (MiB, the process sampled at 20 Hz, by
``bench_tasks.run_measured``), the phases inside the process (load, matrices, boosting,
prediction), rounds, validation AUROC, boosting seconds per 1 M rows per round; per path,
the RSS growth per 1 M rows between the smallest and the largest size.

    python benchmarks/bench_train_scale.py --out bench-results/train_scale.json [--rows 250000,1000000]
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_tasks import run_measured  # noqa: E402

ROW_GROUP = 100_000  # build-tasks' COPY ... ROW_GROUP_SIZE
JITTER = 0.01  # of each feature's standard deviation, copies k > 0
TASK = "decomp"
PATHS = ("old", "new", "extmem")


def build_tree(work: Path, patients: int, seed: int) -> dict:
    """The cached decompensation task tree (synth + build-tasks), with the steps' timings."""
    tree, synth = work / "tasks", work / "synth"
    info: dict = {"patients": patients, "seed": seed, "tree": str(tree)}
    stamp = work / "tree.json"
    if stamp.is_file() and (tree / "train" / TASK / "part-00000.parquet").is_file():
        return json.loads(stamp.read_text())
    cli = [sys.executable, "-m", "clinical_ml.cli"]
    r = run_measured([*cli, "synth", "--out", str(synth), "--patients", str(patients), "--seed", str(seed)],
                     cwd=str(REPO), log=work / "synth.log")
    if r["returncode"]:
        raise SystemExit(f"synth failed: {work / 'synth.log'}")
    info["synth"] = r
    r = run_measured([*cli, "build-tasks", "--mimic", str(synth), "--out", str(tree), "--tasks", TASK,
                      "--sample-every", "1"], cwd=str(REPO), log=work / "build-tasks.log")
    if r["returncode"]:
        raise SystemExit(f"build-tasks failed: {work / 'build-tasks.log'}")
    info["build_tasks"] = r
    stamp.write_text(json.dumps(info, indent=1))
    return info


def tiled_split(tree: Path, work: Path, rows: int) -> Path:
    """``work/rows-N/train/decomp/part-00000.parquet``: the tree's train part tiled to N rows."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from clinical_ml.tasks.io import feature_columns

    split = work / f"rows-{rows}" / "train"
    part = split / TASK / "part-00000.parquet"
    if part.is_file() and pq.read_metadata(part).num_rows == rows:
        return split
    base = pq.read_table(tree / "train" / TASK / "part-00000.parquet")
    feats = feature_columns(base.column_names)
    X = np.column_stack([base.column(f).to_numpy(zero_copy_only=False) for f in feats]).astype(np.float32)
    scale = (np.nanstd(X, axis=0) * JITTER).astype(np.float32)
    part.parent.mkdir(parents=True, exist_ok=True)
    tmp = part.with_suffix(".tmp")
    written, copy = 0, 0
    with pq.ParquetWriter(tmp, base.schema, compression="zstd") as w:
        while written < rows:
            take = min(base.num_rows, rows - written)
            t = base.slice(0, take)
            if copy:
                noise = np.random.default_rng(copy).standard_normal((take, len(feats)), dtype=np.float32)
                Xc = X[:take] + noise * scale  # NaN stays NaN (missing stays missing)
                for j, f in enumerate(feats):
                    i = t.schema.get_field_index(f)
                    t = t.set_column(i, t.schema.field(i),
                                     pa.array(Xc[:, j], type=t.schema.field(i).type, from_pandas=True))
            w.write_table(t, row_group_size=ROW_GROUP)
            written, copy = written + take, copy + 1
    os.replace(tmp, part)
    return split


def child(path: str, train: Path, val: Path, max_rounds: int, nthread: int, seed: int) -> dict:
    """One fit of ``path`` (``PATHS``), timed by phase; runs in its own process."""
    import numpy as np
    import xgboost as xgb

    from clinical_ml.outcomes import models as M
    from clinical_ml.outcomes.metrics import auroc
    from clinical_ml.outcomes.train import HyperParameters, xgb_params

    params = xgb_params("binary", HyperParameters(seed=seed, nthread=nthread))
    t, phase = time.perf_counter(), {}

    def lap(name: str) -> None:
        nonlocal t
        now = time.perf_counter()
        phase[name] = round(now - t, 2)
        t = now

    if path == "old":
        from clinical_ml.outcomes.data import feature_matrix, labels, load_task, train_features

        tr, va = load_task(train, TASK), load_task(val, TASK)
        feats = train_features(tr, "train")
        y_tr, y_va = labels(tr, TASK), labels(va, TASK)
        X_tr, X_va = feature_matrix(tr, feats, "train"), feature_matrix(va, feats, "val")
        lap("load_seconds")
        dtr = xgb.DMatrix(X_tr, label=y_tr, missing=np.nan, nthread=nthread)
        dva = xgb.DMatrix(X_va, label=y_va, missing=np.nan, nthread=nthread)
        lap("matrix_seconds")  # hist quantises a DMatrix in the first round: in boost_seconds
        booster, info = M.train_xgboost(params, dtr, dva, max_rounds, max_rounds)
        lap("boost_seconds")
        p = M.predict_xgboost("binary", booster, X_va, nthread)
        lap("predict_seconds")
    else:
        from clinical_ml.outcomes.batches import SplitParts

        tr, va = SplitParts.open(train, TASK), SplitParts.open(val, TASK)
        feats = tr.features()
        y_tr, y_va = tr.labels(TASK), va.labels(TASK)
        lap("load_seconds")  # labels only
        # extmem: the same batches into XGBoost's external-memory pages, cached on disk
        cache = None
        if path == "extmem":
            import tempfile

            cache = tempfile.mkdtemp(prefix="extmem-", dir=str(train.parent))
        dtr, dva = M.quantile_matrices("binary", tr.batches(feats), y_tr, va.batches(feats), y_va, params,
                                       cache_dir=cache)
        lap("matrix_seconds")
        booster, info = M.train_xgboost(params, dtr, dva, max_rounds, max_rounds)
        lap("boost_seconds")
        p = M.predict_xgboost_batches("binary", booster, va.batches(feats), nthread)
        lap("predict_seconds")
        if cache:
            import shutil

            del dtr, dva
            shutil.rmtree(cache, ignore_errors=True)
    trained = len(info["curve"]["values"])
    return {"rows": len(y_tr), "val_rows": len(y_va), "features": len(feats), **phase,
            "rounds_trained": trained, "best_rounds": info["rounds"], "val_auroc": round(auroc(y_va, p), 5),
            "boost_seconds_per_1m_rows_per_round": round(phase["boost_seconds"] / trained / (len(y_tr) / 1e6), 3)}


def measure(path: str, train: Path, val: Path, a, work: Path) -> dict:
    out = work / f"result-{path}-{train.parent.name}.json"
    out.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", path, "--train", str(train), "--val", str(val),
           "--result", str(out), "--max-rounds", str(a.max_rounds), "--nthread", str(a.nthread),
           "--seed", str(a.seed)]
    r = run_measured(cmd, cwd=str(REPO), log=work / f"{path}-{train.parent.name}.log", timeout=a.timeout)
    if r["returncode"] or not out.is_file():
        return {**r, "failed": f"see {work / f'{path}-{train.parent.name}.log'}"}
    return {**r, **json.loads(out.read_text())}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench-results/train_scale.json")
    p.add_argument("--rows", default="250000,1000000", help="training rows, comma separated")
    p.add_argument("--work", default=str(REPO / "bench-results" / ".work-train"),
                   help="cache of the synthetic data, the task tree and the tiled splits")
    p.add_argument("--patients", type=int, default=1500)
    p.add_argument("--seed", type=int, default=7, help="synth seed; XGBoost seed 0")
    p.add_argument("--max-rounds", type=int, default=50)
    p.add_argument("--nthread", type=int, default=2)
    p.add_argument("--timeout", type=float, default=1800, help="seconds per fit")
    p.add_argument("--paths", default="old,new", help="fits to compare: old, new, extmem")
    p.add_argument("--child", choices=PATHS, help=argparse.SUPPRESS)
    p.add_argument("--train", help=argparse.SUPPRESS)
    p.add_argument("--val", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        res = child(a.child, Path(a.train), Path(a.val), a.max_rounds, a.nthread, 0)
        Path(a.result).write_text(json.dumps(res))
        return 0
    # idle OpenMP threads sleep instead of spinning (shared hosts); the children inherit it
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import psutil

    from clinical_ml.io import write_json

    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    tree_info = build_tree(work, a.patients, a.seed)
    tree = Path(tree_info["tree"])
    results: dict = {"task": TASK, "max_rounds": a.max_rounds, "early_stopping": "off (patience = max_rounds)",
                     "nthread": a.nthread, "jitter": f"{JITTER} x feature std on copies k > 0",
                     "host": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                              "load_average_at_start": [round(x, 1) for x in os.getloadavg()]},
                     "tree": tree_info, "sizes": {}}
    sizes = [int(x) for x in a.rows.split(",") if x]
    paths = [x for x in a.paths.split(",") if x]
    if set(paths) - set(PATHS):
        raise SystemExit(f"--paths: unknown {sorted(set(paths) - set(PATHS))}; expected {', '.join(PATHS)}")
    for n in sizes:
        train = tiled_split(tree, work, n)
        r = {path: measure(path, train, tree / "val", a, work) for path in paths}
        results["sizes"][str(n)] = r
        for path, m in r.items():
            print(f"[{n:,} rows] {path}: {m['seconds']} s wall, {m['cpu_seconds']} s CPU, peak "
                  f"{m['peak_rss_mib']} MiB, AUROC {m.get('val_auroc')}, "
                  f"{m.get('boost_seconds_per_1m_rows_per_round')} s / 1M rows / round", flush=True)
        write_json(a.out, results)
    ok = [n for n in sizes if all("failed" not in results["sizes"][str(n)][p] for p in paths)]
    if len(ok) >= 2:
        lo, hi = str(min(ok)), str(max(ok))
        results["rss_mib_per_1m_rows"] = {
            path: round((results["sizes"][hi][path]["peak_rss_mib"] - results["sizes"][lo][path]["peak_rss_mib"])
                        / ((int(hi) - int(lo)) / 1e6), 1) for path in paths}
    results["load_average_at_end"] = [round(x, 1) for x in os.getloadavg()]
    write_json(a.out, results)
    print(json.dumps({k: v for k, v in results.items() if k != "tree"}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
