"""``clinical-ml serve``: the SageMaker hosting contract on this machine (or in a container).

    clinical-ml serve --model DIR [--model-b DIR --weight-b 0.2] --port 8080
                      [--host 127.0.0.1] [--capture-dir D --capture-percent 100]
                      [--metrics-file drift_metrics.jsonl --metrics-seconds 60]

Runs the ASGI app (``inference/app.py``) under uvicorn with httptools and uvloop. Inside a
SageMaker container (``serve`` entry point) the model is ``/opt/ml/model`` and the port 8080;
the image sets ``CLINICAL_ML_SERVE_HOST=0.0.0.0``. Everywhere else the default host is
127.0.0.1, so a laptop never exposes patient-level predictions to its network by accident.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import orjson

from clinical_ml.logs import get_logger

log = get_logger(__name__)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="clinical-ml serve", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=os.environ.get("SM_MODEL_DIR", "/opt/ml/model"),
                   help="model directory or model.tar.gz (variant A)")
    p.add_argument("--model-b", help="second model (variant B) for an A/B endpoint")
    p.add_argument("--weight-b", type=float, default=0.2,
                   help="share of traffic routed to variant B by weight (0..1)")
    p.add_argument("--name-a", default="A", help="production variant name of --model")
    p.add_argument("--name-b", default="B", help="production variant name of --model-b")
    p.add_argument("--port", type=int, default=int(os.environ.get("SAGEMAKER_BIND_TO_PORT", 8080)))
    p.add_argument("--host", default=os.environ.get("CLINICAL_ML_SERVE_HOST", "127.0.0.1"),
                   help="bind address (the serving image sets CLINICAL_ML_SERVE_HOST=0.0.0.0)")
    p.add_argument("--workers", type=int, default=int(os.environ.get("SAGEMAKER_MODEL_SERVER_WORKERS", 1)),
                   help="worker processes, each loading the models (SageMaker's "
                        "SAGEMAKER_MODEL_SERVER_WORKERS; one per core)")
    p.add_argument("--endpoint-name", default=os.environ.get("CLINICAL_ML_ENDPOINT", "local"))
    p.add_argument("--capture-dir", help="write SageMaker-format data capture under this folder")
    p.add_argument("--capture-percent", type=float, default=100.0, help="sampling percentage")
    p.add_argument("--metrics-file", default=os.environ.get("CLINICAL_ML_SERVE_METRICS_FILE"),
                   help="append SageMaker's endpoint metrics (ModelLatency, OverheadLatency, "
                        "Invocation4XXErrors/5XXErrors; AWS/SageMaker) to this local metrics JSONL "
                        "(the drift job's file: docs/monitoring.md)")
    p.add_argument("--metrics-seconds", type=float, default=60.0,
                   help="one datapoint per metric and variant per this many seconds")
    p.add_argument("--max-rows", type=int, default=1000, help="instances per outcome request")
    p.add_argument("--max-notes", type=int, default=64, help="notes per extraction request")
    p.add_argument("--cpu-affinity", choices=("auto", "on", "off"),
                   default=os.environ.get("CLINICAL_ML_CPU_AFFINITY", "auto"),
                   help="pin each worker to its own core (auto: when 1 < workers <= cores)")
    args = p.parse_args(argv)
    if not 0 <= args.weight_b <= 1:
        p.error("--weight-b must be within 0..1")
    if not 0 <= args.capture_percent <= 100:
        p.error("--capture-percent must be within 0..100")
    if args.model_b and args.name_a == args.name_b:
        p.error("--name-a and --name-b must differ")
    return args


def config(args: argparse.Namespace) -> dict:
    """Everything a worker needs to build its app (passed to workers through the environment)."""
    models = [[args.name_a, args.model, 1.0 - (args.weight_b if args.model_b else 0.0)]]
    if args.model_b:
        models.append([args.name_b, args.model_b, args.weight_b])
    return {"models": models, "endpoint": args.endpoint_name, "capture_dir": args.capture_dir,
            "capture_percent": args.capture_percent,
            "limits": {"max_rows": args.max_rows, "max_notes": args.max_notes},
            **({"metrics_file": args.metrics_file, "metrics_seconds": args.metrics_seconds}
               if args.metrics_file else {})}


def main(argv: list[str] | None = None) -> int:
    import uvicorn  # noqa: PLC0415

    from inference.affinity import should_pin  # noqa: PLC0415
    from inference.app import ENV_CONFIG, app_from_env  # noqa: PLC0415

    args = parse_args(argv)
    cfg = config(args)
    cpus = sorted(os.sched_getaffinity(0))
    if should_pin(args.cpu_affinity, args.workers, len(cpus)):
        cfg["pin"] = {"dir": tempfile.mkdtemp(prefix="clinical-ml-serve-cpus-"), "cpus": cpus}
    os.environ[ENV_CONFIG] = orjson.dumps(cfg).decode()
    common = dict(host=args.host, port=args.port, http="httptools", loop="uvloop",
                  log_level="warning", access_log=False, timeout_keep_alive=30,
                  lifespan="on", server_header=False)
    log.info("serving %d variant(s) on %s:%d with %d worker(s)", 2 if args.model_b else 1,
             args.host, args.port, args.workers)
    try:
        if args.workers > 1:
            uvicorn.run("inference.app:app_from_env", factory=True, workers=args.workers, **common)
        else:
            uvicorn.run(app_from_env(), **common)  # load before binding: /ping answers only when ready
    finally:
        if "pin" in cfg:
            shutil.rmtree(cfg["pin"]["dir"], ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
