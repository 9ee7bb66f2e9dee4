"""``make bench-serve``: load-test the endpoint on loopback from a separate process.

Measures, with data capture on at 100%:
- in-process cost of one single-row request through the handlers and of the model alone;
- single-row throughput and latency under bounded concurrent load (wrk when installed, else the
  asyncio load generator below, run as its own process), errors counted;
- HTTP latency of one row at concurrency 1 (p50 vs the in-process predict time);
- batch throughput (rows/s, 1,000-row JSON requests) and extractor throughput (notes/s).

    python benchmarks/bench_serve.py --out bench-results/serve.json [--model DIR] [--extractor DIR]

Without ``--model`` it trains the 714-feature demo model (inference/demo_model.py: the
documented layout, random data); without ``--extractor`` it uses the rules extractor.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

NOTE = ("Patient is a 67 year old man admitted with chest pain and shortness of breath. He denies "
        "fever. Started metoprolol 25 mg PO BID and aspirin 81 mg PO daily. Chest x-ray showed "
        "pneumonia; blood cultures pending. History of hypertension and diabetes mellitus. ")


# -- load generator (runs in its own process: python bench_serve.py --loadgen ...) ------------

def _request(host: str, port: int, body: bytes, ctype: str) -> bytes:
    return (f"POST /invocations HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {ctype}\r\n"
            f"Accept: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode() + body


async def _conn(host, port, req, stop_at, max_requests, lat, statuses):
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while time.perf_counter() < stop_at and len(lat) < max_requests:
            t0 = time.perf_counter()
            writer.write(req)
            head = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length:\s*(\d+)", head)
            await reader.readexactly(int(m.group(1)) if m else 0)
            lat.append(time.perf_counter() - t0)
            code = int(head[9:12])
            statuses[code] = statuses.get(code, 0) + 1
    finally:
        writer.close()


async def _load(host, port, body, ctype, conns, seconds, max_requests):
    req = _request(host, port, body, ctype)
    lat: list[float] = []
    statuses: dict[int, int] = {}
    t0 = time.perf_counter()
    stop_at = t0 + seconds
    results = await asyncio.gather(*[_conn(host, port, req, stop_at, max_requests, lat, statuses)
                                     for _ in range(conns)], return_exceptions=True)
    wall = time.perf_counter() - t0
    errors = sum(1 for r in results if isinstance(r, Exception))
    return lat, statuses, wall, errors


def loadgen_main(argv: list[str]) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--body-file", required=True)
    p.add_argument("--ctype", default="application/json")
    p.add_argument("--conns", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--max-requests", type=int, default=10**9)
    a = p.parse_args(argv)
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    body = Path(a.body_file).read_bytes()
    lat, statuses, wall, errors = asyncio.run(
        _load("127.0.0.1", a.port, body, a.ctype, a.conns, a.seconds, a.max_requests))
    json.dump(_summary(lat, statuses, wall, errors, "asyncio"), sys.stdout)
    return 0


def _summary(lat, statuses, wall, conn_errors, tool):
    ms = np.array(lat) * 1000 if lat else np.array([np.nan])
    ok = statuses.get(200, 0)
    return {"tool": tool, "requests": len(lat), "ok": ok,
            "errors": len(lat) - ok + conn_errors, "statuses": {str(k): v for k, v in statuses.items()},
            "seconds": round(wall, 3), "req_per_s": round(len(lat) / wall, 1) if wall else None,
            "p50_ms": round(float(np.percentile(ms, 50)), 3), "p90_ms": round(float(np.percentile(ms, 90)), 3),
            "p99_ms": round(float(np.percentile(ms, 99)), 3), "max_ms": round(float(np.max(ms)), 3)}


def run_loadgen(port, body, ctype, conns, seconds, max_requests=10**9):
    with tempfile.NamedTemporaryFile(suffix=".body", delete=False) as f:
        f.write(body)
    try:
        out = subprocess.run([sys.executable, __file__, "--loadgen", "--port", str(port), "--body-file",
                              f.name, "--ctype", ctype, "--conns", str(conns), "--seconds", str(seconds),
                              "--max-requests", str(max_requests)],
                             capture_output=True, text=True, timeout=seconds + 120, check=True)
        return json.loads(out.stdout)
    finally:
        os.unlink(f.name)


def _wrk_ms(s: str) -> float:
    v, unit = re.match(r"([\d.]+)(us|ms|s|m)", s).groups()
    return float(v) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def run_wrk(port, body, ctype, conns, seconds, threads=1):
    """wrk with a Lua script posting ``body``; latency percentiles from ``--latency``."""
    tmp = Path(tempfile.mkdtemp(prefix="wrk-"))
    (tmp / "body").write_bytes(body)
    (tmp / "post.lua").write_text(
        'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "{ctype}"\n'
        f'local f = io.open("{tmp / "body"}", "rb")\nwrk.body = f:read("*all")\nf:close()\n')
    try:
        out = subprocess.run(["wrk", f"-t{threads}", f"-c{conns}", f"-d{int(seconds)}s", "--latency",
                              "-s", str(tmp / "post.lua"), f"http://127.0.0.1:{port}/invocations"],
                             capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    pct = {int(k): _wrk_ms(v) for k, v in re.findall(r"^\s+(\d+)%\s+(\S+)", out, re.M)}
    reqs = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = int(m.group(1)) if (m := re.search(r"Non-2xx or 3xx responses: (\d+)", out)) else 0
    sock = sum(int(x) for x in re.findall(r"(?:connect|read|write|timeout) (\d+)", out)) \
        if "Socket errors" in out else 0
    return {"tool": "wrk", "requests": reqs, "ok": reqs - non2xx, "errors": non2xx + sock,
            "seconds": seconds, "req_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50_ms": pct.get(50), "p90_ms": pct.get(90), "p99_ms": pct.get(99),
            "max_ms": _wrk_ms(re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", out).group(1))}


# -- server lifecycle ---------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(args: list[str], log: Path) -> tuple[subprocess.Popen, int]:
    import httpx

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "inference.serve", "--port", str(port), *args],
                            cwd=REPO, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}); see {log}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError("server did not answer /ping within 180 s")


def stop_server(proc: subprocess.Popen) -> None:
    import signal

    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(proc.pid, signal.SIGKILL)


# -- measurements ---------------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float:
    """User+system CPU of the server and its worker processes (contention-independent cost)."""
    import psutil

    procs = [psutil.Process(pid)]
    procs += procs[0].children(recursive=True)
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return total


def _load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def in_process(model, body: bytes, n: int = 2000) -> dict:
    x = model.matrix_from_json(json.loads(body)["instances"])
    cpus = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {min(cpus)})  # like a pinned server worker: no migrations mid-run
    try:
        return _in_process(model, body, x, n)
    finally:
        os.sched_setaffinity(0, cpus)


def _in_process(model, body: bytes, x, n: int) -> dict:
    from inference import handlers

    for _ in range(50):
        handlers.transform(model, body, "application/json", "application/json")
    t_pred, t_all, c_pred, c_all = [], [], [], []
    for _ in range(n):
        c0, t0 = time.thread_time(), time.perf_counter()
        model.predict_matrix(x)
        c1, t1 = time.thread_time(), time.perf_counter()
        handlers.transform(model, body, "application/json", "application/json")
        c2, t2 = time.thread_time(), time.perf_counter()
        t_pred.append(t1 - t0)
        t_all.append(t2 - t1)
        c_pred.append(c1 - c0)
        c_all.append(c2 - c1)
    ms = lambda v: round(float(np.median(v)) * 1000, 4)  # noqa: E731
    # wall times include waiting for a core on a shared machine; CPU times do not
    return {"predict_p50_ms": ms(t_pred), "handlers_p50_ms": ms(t_all),
            "predict_cpu_mean_ms": round(float(np.mean(c_pred)) * 1000, 4),
            "handlers_cpu_mean_ms": round(float(np.mean(c_all)) * 1000, 4), "n": n}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--loadgen":
        return loadgen_main(argv[1:])
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="bench-results/serve.json")
    p.add_argument("--model", help="outcome model dir (default: train the demo model)")
    p.add_argument("--extractor", help="extractor model dir (default: rules extractor)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("SERVE_WORKERS", 2)))
    p.add_argument("--seconds", type=float, default=15.0, help="duration of the throughput run")
    p.add_argument("--conns", type=int, default=4, help="concurrent connections in the throughput run")
    p.add_argument("--tool", choices=["auto", "wrk", "asyncio"], default="auto")
    args = p.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import orjson

    from inference import handlers
    from inference.demo_model import write_demo_outcome_model

    work = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    try:
        model_dir = Path(args.model) if args.model else write_demo_outcome_model(work / "model")
        model = handlers.model_fn(model_dir)
        rng = np.random.default_rng(0)
        row = {f: round(float(v), 3) for f, v in zip(model.features, rng.normal(size=len(model.features)))}
        one = orjson.dumps({"instances": [row]})
        csv_row = ",".join(repr(v) for v in row.values()).encode()
        batch_rows = min(1000, (5 * 1024 * 1024) // (len(csv_row) + 1))  # stay under 6 MB
        batch = b"\n".join([csv_row] * batch_rows)
        result = {"model": {"features": len(model.features), "tasks": list(model.tasks),
                            "version": model.version, "demo": not args.model, "fast_path": model.fast},
                  "cpus": os.cpu_count(), "workers": args.workers, "load_average_before": _load_average(),
                  "single_row_body_bytes": len(one), "in_process": in_process(model, one)}
        tool = args.tool if args.tool != "auto" else ("wrk" if shutil.which("wrk") else "asyncio")
        cap = work / "capture"
        proc, port = start_server(["--model", str(model_dir), "--workers", str(args.workers),
                                   "--capture-dir", str(cap), "--capture-percent", "100",
                                   "--endpoint-name", "bench"], work / "server.log")
        try:
            run_loadgen(port, one, "application/json", 2, 2)  # warm up every worker
            # one connection, one request at a time: the HTTP cost of a single row. Three short
            # runs, median p50: one run's p50 swings 0.6-1.1 ms on this VM from run to run
            seqs = [run_wrk(port, one, "application/json", 1, 5) if tool == "wrk" else
                    run_loadgen(port, one, "application/json", 1, 10, max_requests=2000)
                    for _ in range(3)]
            seq = dict(sorted(seqs, key=lambda r: r["p50_ms"])[1])
            seq["p50_ms_runs"] = [r["p50_ms"] for r in seqs]
            seq["errors"] = sum(r["errors"] for r in seqs)
            cpu0 = _cpu_seconds(proc.pid)
            load = (run_wrk if tool == "wrk" else run_loadgen)(port, one, "application/json",
                                                               args.conns, args.seconds)
            load["server_cpu_ms_per_request"] = round(
                (_cpu_seconds(proc.pid) - cpu0) * 1000 / max(load["requests"], 1), 4)
            bat = run_loadgen(port, batch, "text/csv", 2, 10, max_requests=100)
            bat["rows_per_request"] = batch_rows
            bat["rows_per_s"] = round(bat["req_per_s"] * batch_rows, 1)
        finally:
            stop_server(proc)
        captured = sum(1 for f in cap.rglob("*.jsonl") for _ in f.open())
        result.update({"sequential_single_row": seq, "single_row_load": load, "batch_1000_rows": bat,
                       "capture_records": captured})
        if args.extractor:
            ext_dir = Path(args.extractor)
        else:
            from clinical_ml.extraction.artifact import save_rules
            from clinical_ml.extraction.rules import RulesExtractor
            ext_dir = save_rules(RulesExtractor(), work / "extractor")
        proc, port = start_server(["--model", str(ext_dir)], work / "server-ext.log")
        try:
            notes = orjson.dumps({"texts": [NOTE * 4] * 16})
            ext = run_loadgen(port, notes, "application/json", 2, 10, max_requests=2000)
            ext["notes_per_s"] = round(ext["req_per_s"] * 16, 1)
            ext["kind"] = json.loads((Path(ext_dir) / "metadata.json").read_text()).get("kind")
        finally:
            stop_server(proc)
        result["extractor"] = ext
        result["load_average_after"] = _load_average()
        ip = result["in_process"]["predict_p50_ms"]
        result["bars"] = {
            "single_row_req_per_s>=1000": load["req_per_s"] >= 1000,
            "single_row_p99_ms<=20": load["p99_ms"] <= 20,
            "zero_errors": load["errors"] == 0 and seq["errors"] == 0 and bat["errors"] == 0,
            "http_p50<=3x_in_process_predict": seq["p50_ms"] <= 3 * ip,
            "http_p50_over_predict": round(seq["p50_ms"] / ip, 2),
            # what 2 dedicated cores would sustain at the measured CPU cost per request
            "est_req_per_s_2_cores_server_only": round(2000 / load["server_cpu_ms_per_request"], 1),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
