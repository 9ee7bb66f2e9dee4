"""Benchmark the task builder against the mimic3-benchmarks scripts on the same synthetic MIMIC-III.

For each size (default 2,000 and 20,000 patients) it generates a synthetic MIMIC-III
(``clinical-ml synth``, cached under --work), runs ``build-tasks`` (wall time, peak RSS of
the process tree, its per-phase ``step_seconds``), then DuckDB's parse-only time of the same
tables in a process of its own (``parse_floor.py``: the floor, and ours / floor), and, with ``--reference-repo DIR`` (a checkout of YerevaNN/mimic3-benchmarks
the user supplies; never vendored), runs the reference's README steps on the same data
(uncompressed copies of the tables it reads; the gunzip time is reported but not counted), then
``compare-reference`` on both outputs. The reference needs pandas < 2 (its FiO2 cleaning
fails on pandas 3 string columns): pass ``--reference-python`` of such a venv.

    python benchmarks/bench_tasks.py --out bench-results/tasks.json [--reference-repo DIR]
        [--reference-python /path/to/venv/bin/python] [--sizes 2000,20000]
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from clinical_ml.io import write_json  # noqa: E402

REF_TABLES = ("PATIENTS", "ADMISSIONS", "ICUSTAYS", "DIAGNOSES_ICD", "D_ICD_DIAGNOSES",
              "CHARTEVENTS", "LABEVENTS", "OUTPUTEVENTS")
REF_STEPS = [
    ("extract_subjects", ["{mimic}", "{root}"]),
    ("validate_events", ["{root}"]),
    ("extract_episodes_from_subjects", ["{root}"]),
    ("split_train_and_test", ["{root}"]),
    ("create_in_hospital_mortality", ["{root}", "{data}/in-hospital-mortality/"]),
    ("create_decompensation", ["{root}", "{data}/decompensation/"]),
    ("create_length_of_stay", ["{root}", "{data}/length-of-stay/"]),
    ("create_phenotyping", ["{root}", "{data}/phenotyping/"]),
]


def run_measured(cmd: list[str], cwd: str | None = None, log: Path | None = None,
                 timeout: float | None = None) -> dict:
    """Run ``cmd``; wall seconds and peak RSS (MiB) of the whole process tree, sampled at 20 Hz."""
    out = open(log, "ab") if log else subprocess.DEVNULL
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)
    peak = 0
    try:
        proc = psutil.Process(p.pid)
        while p.poll() is None:
            try:
                rss = proc.memory_info().rss + sum(c.memory_info().rss for c in proc.children(recursive=True))
                peak = max(peak, rss)
            except psutil.Error:
                pass
            if timeout and time.perf_counter() - t0 > timeout:
                p.kill()
                break
            time.sleep(0.05)
    finally:
        rc = p.wait()
        if log:
            out.close()
    wall = time.perf_counter() - t0
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
    return {"seconds": round(wall, 2), "cpu_seconds": round(cpu, 2),
            "peak_rss_mib": round(peak / 2**20, 1), "returncode": rc}


def synth(n: int, seed: int, work: Path, density: str = "benchmark", workers: int = 1) -> Path:
    """The cached synthetic MIMIC-III of ``n`` patients (bench-scale shares the cache). The
    name must fix the content, so the chunk does not vary: 100 at release density (lower
    memory, and faster, docs/synthetic-mimic.md); ``workers`` does not change the output."""
    d = work / (f"synth-{n}-s{seed}" + ("" if density == "benchmark" else f"-{density}"))
    if not (d / "synth_manifest.json").is_file():
        if d.exists():
            shutil.rmtree(d)
        chunk = ["--chunk", "100"] if density == "release" else []
        r = run_measured([sys.executable, "-m", "clinical_ml.cli", "synth", "--out", str(d),
                          "--patients", str(n), "--seed", str(seed), "--density", density, *chunk,
                          "--workers", str(workers)], log=work / f"synth-{n}.log")
        if r["returncode"] != 0:
            raise SystemExit(f"synth failed for {n} patients; see {work / f'synth-{n}.log'}")
    return d


def ours(src: Path, out: Path, work: Path, extra: list[str]) -> dict:
    if out.exists():
        shutil.rmtree(out)
    r = run_measured([sys.executable, "-m", "processing.build_tasks", "--mimic", str(src), "--out", str(out),
                      "--threads", str(min(2, os.cpu_count() or 1)), "--temp-dir", str(work / "spill"), *extra],
                     cwd=str(REPO), log=work / f"ours-{src.name}.log")
    if r["returncode"] == 0:
        m = json.loads((out / "manifest.json").read_text())
        r["rows"] = {s: {t: v["rows"] for t, v in m["tasks"][s].items()} for s in m["tasks"]}
        r["step_seconds"] = m.get("step_seconds")
        r["cohort_stays"] = m["cohort"]["remove_age_under_18"]["icustays"]
        r["episodes"] = m["episodes"]["episodes"]
        r["hourly_samples_reference"] = m.get("hourly_samples_reference")
    return r


def parse_floor(src: Path, work: Path) -> dict:
    """``parse_floor.py`` in its own process (imports and connection included, like ours)."""
    out = work / f"parse-{src.name}.json"
    r = run_measured([sys.executable, str(REPO / "benchmarks" / "parse_floor.py"), str(src),
                      "--threads", str(min(2, os.cpu_count() or 1)), "--out", str(out)],
                     cwd=str(REPO), log=work / f"parse-{src.name}.log")
    if r["returncode"] == 0:
        inner = json.loads(out.read_text())
        r["parse_seconds"], r["tables"] = inner["seconds"], inner["tables"]
    return r


def reference(repo: Path, python: str, src: Path, work: Path, timeout: float) -> dict:
    data = work / f"ref-{src.name}"
    mimic = work / f"ref-input-{src.name}"
    for d in (data, mimic):
        if d.exists():
            shutil.rmtree(d)
    mimic.mkdir(parents=True)
    t0 = time.perf_counter()
    for t in REF_TABLES:
        with gzip.open(src / f"{t}.csv.gz", "rb") as fi, open(mimic / f"{t}.csv", "wb") as fo:
            shutil.copyfileobj(fi, fo, 1 << 20)
    res: dict = {"gunzip_seconds_not_counted": round(time.perf_counter() - t0, 2), "steps": {}}
    fmt = {"mimic": str(mimic), "root": str(data / "root"), "data": str(data)}
    total, cpu, peak, left = 0.0, 0.0, 0.0, timeout
    for step, args in REF_STEPS:
        r = run_measured([python, "-m", f"mimic3benchmark.scripts.{step}", *[a.format(**fmt) for a in args]],
                         cwd=str(repo), log=work / f"ref-{src.name}.log", timeout=left)
        res["steps"][step] = r
        total += r["seconds"]
        cpu += r["cpu_seconds"]
        peak = max(peak, r["peak_rss_mib"])
        left -= r["seconds"]
        if r["returncode"] != 0:
            res["failed_step"] = step
            break
    res.update({"seconds": round(total, 2), "cpu_seconds": round(cpu, 2), "peak_rss_mib": peak,
                "output": str(data)})
    shutil.rmtree(mimic, ignore_errors=True)
    return res


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="bench-results/tasks.json")
    p.add_argument("--sizes", default="2000,20000")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--density", default="benchmark", choices=("benchmark", "release"),
                   help="synthetic volumes (clinical-ml synth --density): release puts the real "
                        "database's non-benchmark rows around the builder's, as its scan meets them")
    p.add_argument("--work", default=str(REPO / "bench-results" / ".work-tasks"),
                   help="cache of synthetic inputs and outputs (bench-results/ is git-ignored)")
    p.add_argument("--reference-repo", default=None, help="checkout of YerevaNN/mimic3-benchmarks")
    p.add_argument("--reference-python", default=sys.executable,
                   help="python with the reference's deps (pandas < 2, numpy, pyyaml, tqdm)")
    p.add_argument("--reference-timeout", type=float, default=4 * 3600)
    p.add_argument("--repeat", type=int, default=1,
                   help="runs of build-tasks and of the floor, in turns (medians are compared)")
    p.add_argument("--build-args", default="", help="extra build-tasks arguments, space separated")
    p.add_argument("--reuse-reference", default=None,
                   help="results JSON of an earlier run: reuse its reference timings and output "
                        "tree for the sizes it has (the reference takes hours at 20,000 patients)")
    a = p.parse_args(argv)
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"density": a.density, "host": {"cpus": os.cpu_count(), "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
                              "load_average_at_start": [round(x, 1) for x in os.getloadavg()]},
                     "sizes": {}}
    for n in [int(x) for x in a.sizes.split(",") if x]:
        src = synth(n, a.seed, work, a.density)
        r: dict = {"input_mib": round(sum(f.stat().st_size for f in src.glob("*.csv.gz")) / 2**20, 1)}
        # ours and the floor in turns, --repeat times: on a shared machine one pair can be off
        # by 30%; the ratio is taken of the medians
        pairs = []
        for _ in range(max(1, a.repeat)):
            o = ours(src, work / f"ours-{n}", work, a.build_args.split())
            print(f"[{n}] ours: {o['seconds']} s, peak {o['peak_rss_mib']} MiB", flush=True)
            pairs.append((o, parse_floor(src, work)))
        r["ours"] = sorted((o for o, _ in pairs), key=lambda x: x["seconds"])[len(pairs) // 2]
        r["parse_floor"] = sorted((f for _, f in pairs), key=lambda x: x["seconds"])[len(pairs) // 2]
        if len(pairs) > 1:
            r["runs"] = [{"ours_seconds": o["seconds"], "floor_seconds": f["seconds"]} for o, f in pairs]
        r["vs_parse_floor"] = round(r["ours"]["seconds"] / max(r["parse_floor"]["seconds"], 1e-9), 2)
        print(f"[{n}] DuckDB parse only: {r['parse_floor']['seconds']} s in its process "
              f"({r['parse_floor']['parse_seconds']} s parsing); ours / floor {r['vs_parse_floor']}x", flush=True)
        earlier = (json.loads(Path(a.reuse_reference).read_text())["sizes"].get(str(n), {}).get("reference")
                   if a.reuse_reference else None)
        if earlier and Path(earlier["output"]).is_dir():
            r["reference"] = dict(earlier, reused_from=a.reuse_reference)
        elif a.reference_repo:
            r["reference"] = reference(Path(a.reference_repo), a.reference_python, src, work, a.reference_timeout)
        if "reference" in r:
            if "failed_step" not in r["reference"]:
                r["speedup"] = round(r["reference"]["seconds"] / max(r["ours"]["seconds"], 1e-9), 1)
                if r["reference"].get("cpu_seconds"):
                    r["speedup_cpu"] = round(r["reference"]["cpu_seconds"] / max(r["ours"]["cpu_seconds"], 1e-9), 1)
                cmp_out = work / f"compare-{n}.json"
                c = subprocess.run([sys.executable, "-m", "processing.compare_reference", "--reference-root",
                                    r["reference"]["output"], "--ours", str(work / f"ours-{n}"),
                                    "--out", str(cmp_out)], cwd=str(REPO), capture_output=True, text=True)
                rep = json.loads(cmp_out.read_text()) if cmp_out.is_file() else {}
                r["compare_reference"] = {"match": rep.get("match"), "checks": len(rep.get("checks", [])),
                                          "partitions": rep.get("partitions_compared"),
                                          "mismatches": rep.get("mismatches", [])[:10]}
            print(f"[{n}] reference: {r['reference']['seconds']} s, peak {r['reference']['peak_rss_mib']} MiB, "
                  f"speedup {r.get('speedup')}", flush=True)
        results["sizes"][str(n)] = r
        write_json(a.out, results)
    print(json.dumps(results, indent=1)[:4000])
    return 0


if __name__ == "__main__":
    sys.exit(main())
