"""``clinical-ml validate-data``: is this MIMIC-III copy usable?

    clinical-ml validate-data --mimic ../shared/data/mimic3-demo
    clinical-ml validate-data --mimic s3://bucket/mimic-iii/1.4 --require CHARTEVENTS LABEVENTS

Reports the tables found (file, header case, compression), the release tables absent, files
that are not release tables, row counts, schema problems (missing columns, unparseable values)
and value problems (empty cells in columns the release never leaves empty) plus the quirk
counts of ``clinical_ml.mimic.loader``. Exit 0 when every required table is present and
readable, 1 otherwise, naming the table/column; 2 (via the CLI) when the source itself is bad.
Tables larger than ``--max-rows`` are checked on their first rows (reported as sampled).
"""
from __future__ import annotations

import argparse
import os
import sys

from clinical_ml.io import DataError, write_json
from clinical_ml.logs import get_logger
from clinical_ml.mimic import files
from clinical_ml.mimic.loader import LoadStats, age_years, iter_table, read_table
from clinical_ml.mimic.schema import ALL_TABLES, table as table_schema

log = get_logger(__name__)
DEFAULT_REQUIRED = ("PATIENTS", "ADMISSIONS")
# (start, end) columns whose order is checked; the release has a few such rows (warnings)
INTERVALS = {"ADMISSIONS": ("ADMITTIME", "DISCHTIME"), "ICUSTAYS": ("INTIME", "OUTTIME"),
             "TRANSFERS": ("INTIME", "OUTTIME"), "INPUTEVENTS_MV": ("STARTTIME", "ENDTIME"),
             "PRESCRIPTIONS": ("STARTDATE", "ENDDATE")}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="clinical-ml validate-data", description=__doc__.splitlines()[0])
    ap.add_argument("--mimic", default=os.environ.get("SM_CHANNEL_MIMIC", "/opt/ml/processing/input/mimic"),
                    help="MIMIC-III folder or s3:// prefix (TABLE.csv.gz or table.csv)")
    ap.add_argument("--require", nargs="*", default=[], metavar="TABLE",
                    help=f"tables that must be present (always: {', '.join(DEFAULT_REQUIRED)})")
    ap.add_argument("--max-rows", type=int, default=2_000_000,
                    help="check at most this many rows per table (0 = all)")
    ap.add_argument("--chunksize", type=int, default=500_000)
    ap.add_argument("--out", default=None, help="also write the report as JSON here")
    return ap.parse_args(argv)


def check_table(src: str, name: str, max_rows: int, chunksize: int, stats: LoadStats) -> dict:
    """Read one table with the schema; schema and value problems as lists of strings."""
    schema = table_schema(name)
    required_cols = [c.name for c in schema.columns if not c.nullable]
    nulls = {c: 0 for c in required_cols}
    rows, sampled, errors, reversed_ = 0, False, [], 0
    try:
        for df in iter_table(src, name, chunksize=chunksize, stats=stats):
            rows += len(df)
            for c in required_cols:
                nulls[c] += int(df[c].isna().sum())
            if name in INTERVALS:
                start, end = INTERVALS[name]
                reversed_ += int((df[end] < df[start]).sum())
            if max_rows and rows >= max_rows:
                sampled = True
                break
    except DataError as e:
        errors.append(str(e))
    warnings = [f"column {c}: {n} empty value(s) in a column the release never leaves empty"
                for c, n in nulls.items() if n]
    if reversed_:
        warnings.append(f"{reversed_} row(s) with {INTERVALS[name][1]} before {INTERVALS[name][0]}")
    return {"rows": rows, "sampled": sampled, "errors": errors, "warnings": warnings,
            "quirks": dict(stats.quirks.get(name, {}))}


def age_quirks(src: str) -> dict:
    """Patients older than 89 at their first admission appear ~300 years old (shifted DOB)."""
    pts = read_table(src, "PATIENTS", ["SUBJECT_ID", "DOB"])
    adm = read_table(src, "ADMISSIONS", ["SUBJECT_ID", "ADMITTIME"]).groupby("SUBJECT_ID", as_index=False).min()
    both = adm.merge(pts, on="SUBJECT_ID")
    stats = LoadStats()
    age_years(both["DOB"], both["ADMITTIME"], stats)
    return dict(stats.quirks.get("PATIENTS", {"age_over_89_shifted": 0}))


def validate(src: str, require: list[str], max_rows: int = 2_000_000, chunksize: int = 500_000) -> dict:
    required = sorted({table_schema(t).name for t in [*DEFAULT_REQUIRED, *require]})
    found = files.list_tables(src)
    report = {"source": src, "found": {}, "missing": [t for t in ALL_TABLES if t not in found],
              "unrecognised": files.unrecognised_files(src), "required": required, "errors": []}
    stats = LoadStats()
    for name, tf in found.items():
        entry = {"file": tf.uri, "compressed": tf.compressed,
                 "header": "upper" if tf.upper_header else "lower"}
        entry.update(check_table(src, name, max_rows, chunksize, stats))
        report["found"][name] = entry
        report["errors"] += entry["errors"]
    if "PATIENTS" in found and "ADMISSIONS" in found and not report["errors"]:
        report["found"]["PATIENTS"]["quirks"].update(age_quirks(src))
    for t in required:
        if t not in found:
            report["errors"].append(f"required table {t} not found in {src}")
    report["ok"] = not report["errors"]
    return report


def format_report(r: dict) -> str:
    lines = [f"MIMIC-III source: {r['source']}",
             f"tables found: {len(r['found'])} of {len(ALL_TABLES)}"]
    width = max([len(t) for t in r["found"]] + [5])
    for name, e in r["found"].items():
        status = "ERROR" if e["errors"] else ("warn" if e["warnings"] else "ok")
        rows = f"{'>=' if e['sampled'] else ''}{e['rows']:,}"
        quirks = ", ".join(f"{k}={v}" for k, v in sorted(e["quirks"].items()))
        lines.append(f"  {name.ljust(width)}  {rows:>13} rows  {e['header']:5} "
                     f"{'csv.gz' if e['compressed'] else 'csv   '}  {status}{'  [' + quirks + ']' if quirks else ''}")
        lines += [f"      warning: {w}" for w in e["warnings"]]
    lines.append(f"absent release tables ({len(r['missing'])}): {', '.join(r['missing']) or 'none'}")
    if r["unrecognised"]:
        lines.append(f"unrecognised files (not release tables, ignored): {', '.join(r['unrecognised'])}")
    lines.append(f"required: {', '.join(r['required'])}")
    if r["errors"]:
        lines.append("PROBLEMS:")
        lines += [f"  - {e}" for e in r["errors"]]
        lines.append("result: NOT usable")
    else:
        lines.append("result: usable")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        require = [table_schema(t).name for t in args.require]
    except KeyError as e:
        raise DataError(str(e.args[0])) from None
    report = validate(args.mimic, require, args.max_rows, args.chunksize)
    print(format_report(report))
    if args.out:
        write_json(args.out, report)
    log.info("validate-data: %d tables found, %d problems", len(report["found"]), len(report["errors"]))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
