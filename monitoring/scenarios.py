"""Drifted traffic for tests, benchmarks and the demo (``clinical-ml drift-scenarios``).

    clinical-ml drift-scenarios --reference runs/.../tasks/test --scenario units \
        --rows 2000 --windows 2 --start 2026-01-31T10:00:00Z --format capture --out capture/

Formats: ``capture`` (SageMaker capture JSONL in the hourly layout, one window per hour, ready
for the drift job), ``payloads`` (one request body ``{"instances": [...]}`` a line, to POST to
``/invocations``), ``parquet`` (the feature frame of each window). Without ``--reference`` a
synthetic reference (``clinical_ml.monitor.scenarios.reference_frame``) is used.
"""
from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path

import orjson

from clinical_ml.io import atomic_path, write_json
from clinical_ml.logs import get_logger
from clinical_ml.monitor import scenarios as S
from clinical_ml.monitor.capture import format_time, iter_frame_records, parse_time, write_capture

log = get_logger("monitoring.scenarios")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clinical-ml drift-scenarios", description=__doc__.splitlines()[0])
    p.add_argument("--reference", default=None, help="task split folder (or Parquet) to draw rows from")
    p.add_argument("--task", default="ihm")
    p.add_argument("--scenario", choices=S.SCENARIOS + ("all",), default="all")
    p.add_argument("--size", type=float, default=None, help="shift size (default per scenario)")
    p.add_argument("--rows", type=int, default=1000, help="rows per window")
    p.add_argument("--windows", type=int, default=1)
    p.add_argument("--start", default="2026-01-01T00:00:00Z", help="first window start (ISO)")
    p.add_argument("--window-minutes", type=int, default=60)
    p.add_argument("--format", choices=("capture", "payloads", "parquet"), default="capture")
    p.add_argument("--content-type", choices=("application/json", "text/csv"), default="application/json")
    p.add_argument("--batch", type=int, default=1, help="instances per request")
    p.add_argument("--endpoint", default="clinical-ml-outcomes")
    p.add_argument("--variant", default="AllTraffic")
    p.add_argument("--synthetic-rows", type=int, default=20000)
    p.add_argument("--out", required=True)
    p.add_argument("--decimals", type=int, default=None,
                   help="round features to this many decimals (default: send them as stored); "
                        "rounding a discrete-valued feature moves it off the baseline's values")
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load_reference(args: argparse.Namespace):
    if args.reference is None:
        return S.reference_frame(args.synthetic_rows, seed=args.seed)
    from monitoring.baseline import load_training
    return load_training(args.reference, args.task)


def request_columns(df) -> list[str]:
    """What a client sends: the features and categorical fields, never labels or identifiers."""
    drop = {"y", "subject_id", "hadm_id", "icustay_id", "prediction_hour"}
    return [c for c in df.columns if str(c).startswith("f_") or
            (c in S.CODE_COLUMNS and c not in drop)]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    ref = load_reference(args)
    cols = request_columns(ref)
    out = Path(args.out)
    names = S.SCENARIOS if args.scenario == "all" else (args.scenario,)
    start = parse_time(args.start)
    manifest = []
    for s_i, name in enumerate(names):
        for w in range(args.windows):
            w_start = start + timedelta(minutes=args.window_minutes * (s_i * args.windows + w))
            w_end = w_start + timedelta(minutes=args.window_minutes)
            df = S.generate(ref, name, args.rows, args.size, seed=args.seed * 1000 + s_i * 100 + w)[cols]
            num = [c for c in cols if str(c).startswith("f_")]
            if args.decimals is not None:
                df[num] = df[num].astype("float64").round(args.decimals)
            entry = {"scenario": name, "size": args.size if args.size is not None else S.DEFAULT_SIZES[name],
                     "window_start": format_time(w_start), "window_end": format_time(w_end), "rows": len(df)}
            if args.format == "capture":
                recs = iter_frame_records(df, w_start, w_end, args.batch, args.content_type, seed=args.seed + w)
                entry["files"] = [str(p) for p in write_capture(out, args.endpoint, args.variant, recs)]
            elif args.format == "payloads":
                path = out / f"{name}-{w:03d}.jsonl"
                rows = df.astype(object).where(df.notna(), None).to_dict("records")
                with atomic_path(path) as tmp:
                    tmp.write_bytes(b"".join(orjson.dumps({"instances": rows[i:i + args.batch]}) + b"\n"
                                             for i in range(0, len(rows), args.batch)))
                entry["files"] = [str(path)]
            else:
                path = out / f"{name}-{w:03d}.parquet"
                with atomic_path(path) as tmp:
                    df.to_parquet(tmp, index=False)
                entry["files"] = [str(path)]
            manifest.append(entry)
    write_json(out / "scenarios.json", {"windows": manifest, "columns": len(cols)})
    log.info("drift-scenarios: %d windows (%s) -> %s", len(manifest), ",".join(names), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
