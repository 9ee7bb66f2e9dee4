"""Drift monitor benchmark: detection rate per scenario, false-alarm rate, time per 100k-row window.

    python benchmarks/bench_drift.py --out bench-results/drift.json [--train <tasks>/train]

Population: without ``--train``, the synthetic reference (714 mimic3-benchmarks-style features +
an ICD-9 code column); the baseline is built from one draw (seed 0) and traffic comes from an
independent draw of the same population (seed 1), so no-drift windows carry real sampling noise.
With ``--train``, the split's rows are halved at random: one half baselines, the other is traffic.

Detection: a window is "detected" when the drift job's status is ``drift`` (drift_score > 1, the
alarm's threshold). Rates are over ``--windows`` windows of ``--rows`` rows per scenario at the
documented shift sizes (``SIZES``), plus a power curve at smaller sizes. Timing: one window of
``--timing-rows`` captured rows written as SageMaker capture JSONL, processed by the drift job
end to end (read + decode + checks + statistics + files + local metrics).
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np

from clinical_ml.io import write_json
from clinical_ml.monitor import check, stats
from clinical_ml.monitor import scenarios as S
from clinical_ml.monitor.capture import iter_frame_records, write_capture

# documented shift sizes (docs/monitoring.md) and the smaller sizes of the power curve
SIZES = {"covariate": 0.5, "prevalence": 0.5, "missingness": 0.1, "new_codes": 0.2, "units": 0.25}
POWER = {"covariate": [0.1, 0.2], "prevalence": [0.3, 0.4], "missingness": [0.02, 0.05],
         "new_codes": [0.1, 0.15], "units": [0.05, 0.1]}
UNITS = {"covariate": "reference SDs added to vital-sign location features",
         "prevalence": "label prevalence of the traffic (reference ~0.13)",
         "missingness": "extra fraction of vital-sign feature values missing",
         "new_codes": "fraction of icd9_code values never seen in the baseline",
         "units": "fraction of rows with temperature charted in Fahrenheit"}


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (max(0.0, c - h), min(1.0, c + h))


def populations(train: str | None, rows: int):
    if train:
        from monitoring.baseline import load_training
        df = load_training(train, "ihm")
        idx = np.random.default_rng(0).permutation(len(df))
        return df.iloc[idx[: len(df) // 2]].reset_index(drop=True), df.iloc[idx[len(df) // 2:]].reset_index(drop=True)
    return S.reference_frame(rows, seed=0), S.reference_frame(rows, seed=1)


def rate(st_, cons, prep, traffic, cols, scenario, size, windows, rows, seed0) -> dict:
    hits, scores, secs = 0, [], []
    for w in range(windows):
        frame = S.generate(traffic, scenario, rows, size, seed=seed0 + w)[cols]
        t = time.perf_counter()
        r = check.run_checks(st_, cons, frame, with_statistics=False, prepared=prep)
        secs.append(time.perf_counter() - t)
        hits += r.status == "drift"
        scores.append(r.drift_score)
    lo, hi = wilson(hits, windows)
    return {"size": size, "windows": windows, "detected": hits, "rate": hits / windows,
            "rate_ci95": [round(lo, 4), round(hi, 4)], "median_drift_score": float(np.median(scores)),
            "median_check_seconds": float(np.median(secs))}


def time_window(traffic, cols, base_dir: Path, rows: int, batch: int, content_type: str) -> dict:
    from monitoring import drift_job
    work = Path(tempfile.mkdtemp(prefix="bench-drift-"))
    try:
        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        frame = S.generate(traffic, "none", rows, seed=99)[cols]
        num = [c for c in cols if str(c).startswith("f_")]
        frame[num] = frame[num].astype("float64").round(3)  # what clients send, not float32 noise
        t = time.perf_counter()
        files = write_capture(work / "cap", "bench-ep", "AllTraffic",
                              iter_frame_records(frame, t0, t0 + timedelta(hours=1), batch, content_type))
        write_s = time.perf_counter() - t
        size = sum(f.stat().st_size for f in files)
        os.environ["CLINICAL_ML_BACKEND"] = "local"
        t = time.perf_counter()
        rc = drift_job.main(["--capture", str(work / "cap"), "--baseline", str(base_dir), "--output",
                             str(work / "out"), "--window-end", "2026-01-01T01:00:00Z",
                             "--metrics-file", str(work / "m.jsonl")])
        secs = time.perf_counter() - t
        assert rc == 0
        return {"rows": rows, "instances_per_request": batch, "content_type": content_type,
                "capture_mb": round(size / 1e6, 1), "write_capture_seconds": round(write_s, 2),
                "drift_job_seconds": round(secs, 2), "rows_per_second": round(rows / secs)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="bench-results/drift.json")
    ap.add_argument("--train", default=None, help="a task split (ihm) instead of the synthetic population")
    ap.add_argument("--population-rows", type=int, default=20000)
    ap.add_argument("--rows", type=int, default=1000, help="rows per monitored window")
    ap.add_argument("--windows", type=int, default=100, help="windows per drift scenario")
    ap.add_argument("--null-windows", type=int, default=400, help="no-drift windows")
    ap.add_argument("--power-windows", type=int, default=20)
    ap.add_argument("--timing-rows", type=int, default=100_000)
    ap.add_argument("--no-timing", action="store_true", help="skip the 100k-row timing windows")
    ap.add_argument("--quick", action="store_true", help="few windows, 10k timing rows (smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.windows, args.null_windows, args.power_windows, args.timing_rows = 10, 40, 4, 10_000
    t_all = time.perf_counter()
    base_pop, traffic = populations(args.train, args.population_rows)
    cols = [c for c in base_pop.columns if str(c).startswith("f_") or c in S.CODE_COLUMNS]
    t = time.perf_counter()
    st_ = stats.dataset_statistics(base_pop, cols)
    cons = stats.suggest_constraints(st_)
    baseline_s = time.perf_counter() - t
    prep = check.prepare_baseline(st_)
    result: dict = {"population": "task split " + args.train if args.train else "synthetic (scenarios.reference_frame)",
                    "features": len(cols), "baseline_rows": len(base_pop), "baseline_seconds": round(baseline_s, 2),
                    "window_rows": args.rows, "alarm": "drift_score > 1.0 (any violation)",
                    "comparison": cons["monitoring_config"]["distribution_constraints"],
                    "family_alpha": cons["monitoring_config"]["family_alpha"]}
    null = rate(st_, cons, prep, traffic, cols, "none", None, args.null_windows, args.rows, 10_000)
    result["false_alarm"] = {**null, "bar": "<= 0.01", "pass": null["rate"] <= 0.01}
    result["detection"], result["power_curve"] = {}, {}
    for i, (name, size) in enumerate(SIZES.items()):
        r = rate(st_, cons, prep, traffic, cols, name, size, args.windows, args.rows, 20_000 + 1000 * i)
        result["detection"][name] = {**r, "size_unit": UNITS[name], "bar": ">= 0.95", "pass": r["rate"] >= 0.95}
        result["power_curve"][name] = [
            {k: v for k, v in rate(st_, cons, prep, traffic, cols, name, s, args.power_windows, args.rows,
                                   50_000 + 1000 * i + 100 * j).items() if k in ("size", "rate", "windows")}
            for j, s in enumerate(POWER[name])]
        print(f"{name}: {r['rate']:.3f} at {size}", file=sys.stderr)
    result["timing"] = []
    write_json(args.out, result)  # detection figures are kept even if the timing run fails
    if not args.no_timing:
        with tempfile.TemporaryDirectory() as d:
            from clinical_ml.monitor.formats import write_baseline
            write_baseline(d, st_, cons)
            result["timing"] = [time_window(traffic, cols, Path(d), args.timing_rows, 10, ctype)
                                for ctype in ("application/json", "text/csv")]
    result["all_pass"] = result["false_alarm"]["pass"] and all(v["pass"] for v in result["detection"].values())
    result["machine"] = {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}
    result["total_seconds"] = round(time.perf_counter() - t_all, 1)
    write_json(args.out, result)
    print(f"false alarms {null['rate']:.4f}; detection "
          + ", ".join(f"{k} {v['rate']:.2f}" for k, v in result["detection"].items())
          + "".join(f"; {t['rows']}-row {t['content_type']} window {t['drift_job_seconds']}s"
                    for t in result["timing"]) + f" -> {args.out}", file=sys.stderr)
    return 0 if result["all_pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
