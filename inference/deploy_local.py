"""Deploy to a local endpoint: ``clinical-ml serve`` started detached on this machine, or the
inference image's ``serve`` in a container (``CLINICAL_ML_ENDPOINT_RUNTIME=container``,
inference/deploy_container.py).

Packages are read from the local registry (``CLINICAL_ML_REGISTRY``, the local runner's
``runs/registry``) with the same calls as boto3's. State of an endpoint lives in
``<state>/<endpoint>/`` (default ``<registry>/../endpoints``)::

    endpoint.json   what the deploy step also writes to its output
    server.pid      the server's process id (its own session: kill the group to stop it)
    server.log      the server's log (PHI-free: clinical_ml.logs)
    models/<group>-v<version>/   unpacked model.tar.gz of each variant

Deploying a name that is already running replaces it (the "update"): the old server is
stopped, the new one started on the same port with the planned variants and weights, and the
step returns only when ``/ping`` answers. A weights-only change (``change: weights``, e.g. a
promotion's traffic shift between loaded models) restarts the server too: its weights are fixed
at start, and a restart of the local server takes about a second.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, localize, read_json, resolve_model_dir, write_json
from clinical_ml.logs import get_logger
from inference import deploy_container
from inference.variants import check_package, classify_change, plan_variants, previous_approved

log = get_logger(__name__)
PING_TIMEOUT = float(os.environ.get("CLINICAL_ML_DEPLOY_TIMEOUT", 180))


def registry():
    from clinical_ml.registry import LocalRegistry  # noqa: PLC0415

    root = os.environ.get("CLINICAL_ML_REGISTRY")
    if not root:
        raise DataError("CLINICAL_ML_REGISTRY is not set; the local runner sets it to runs/registry")
    return LocalRegistry(root)


def state_root(args: argparse.Namespace) -> Path:
    if args.state_dir:
        return Path(args.state_dir)
    return Path(os.environ.get("CLINICAL_ML_REGISTRY", "runs/registry")).resolve().parent / "endpoints"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_our_server(pid: int) -> bool:
    """The pid still runs ``inference.serve`` (a stale pid file must not kill a stranger)."""
    import psutil  # noqa: PLC0415

    try:
        p = psutil.Process(pid)
        return p.status() != psutil.STATUS_ZOMBIE and "inference.serve" in " ".join(p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def stop(state: Path, timeout: float = 30.0) -> bool:
    """Stop the server recorded in ``state/server.pid`` (its whole process group)."""
    pid_file = state / "server.pid"
    if not pid_file.is_file():
        return False
    pid = int(pid_file.read_text().strip() or 0)
    stopped = False
    if pid > 0 and _alive(pid) and _is_our_server(pid):
        try:
            os.killpg(pid, signal.SIGTERM)  # the server leads its own session/group
        except ProcessLookupError:
            pass
        deadline = time.time() + timeout
        while _alive(pid) and time.time() < deadline:
            _reap(pid)
            time.sleep(0.1)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)
        stopped = True
    pid_file.unlink(missing_ok=True)
    return stopped


def _reap(pid: int) -> None:
    try:  # a child of this process (tests, one-process runs): collect it so it is not a zombie
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _ping(url: str) -> bool:
    try:
        ping = f"{url}/ping"  # http://<host>:<port> of the server this module started
        with urllib.request.urlopen(ping, timeout=2) as r:  # noqa: S310  # nosec B310 - http to our own server
            return r.status == 200
    except OSError:
        return False


def _model_dir(desc: dict[str, Any], state: Path) -> Path:
    url = desc["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    src = Path(localize(url))
    if not src.exists():
        raise DataError(f"model package {desc['ModelPackageArn']}: model data {url} not found "
                        f"(looked at {src})")
    dest = state / "models" / f"{desc['ModelPackageGroupName']}-v{desc['ModelPackageVersion']}"
    if dest.is_dir() and any(dest.iterdir()):
        return dest
    d = resolve_model_dir(src, scratch=dest) if (src.is_file() or (src / "model.tar.gz").is_file()) else src
    return Path(d)


def start(state: Path, variants: list[dict[str, Any]], args: argparse.Namespace, port: int,
          capture_dir: Path | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "inference.serve", "--model", variants[0]["model_dir"],
           "--name-a", variants[0]["name"], "--port", str(port), "--host", args.host,
           "--endpoint-name", args.endpoint_name]
    if len(variants) > 1:
        cmd += ["--model-b", variants[1]["model_dir"], "--name-b", variants[1]["name"],
                "--weight-b", str(variants[1]["weight"])]
    if capture_dir is not None and args.capture_percent > 0:
        cmd += ["--capture-dir", str(capture_dir), "--capture-percent", str(args.capture_percent)]
    log_file = (state / "server.log").open("ab")
    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(cmd, stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True, cwd=repo, env=env, close_fds=True)
    log_file.close()
    (state / "server.pid").write_text(f"{proc.pid}\n")
    return proc


def _served(info: dict[str, Any] | None) -> dict[str, tuple[str, float]] | None:
    """``{variant: (package, weight)}`` of an endpoint.json (None: nothing recorded)."""
    if not info or not info.get("variants"):
        return None
    return {v["name"]: (v["model_package_arn"], float(v["weight"])) for v in info["variants"]}


def deploy(args: argparse.Namespace) -> dict[str, Any]:
    reg = registry()
    new = reg.describe_model_package(args.model_package_arn)
    check_package(new, args.require_approval == "true")
    group = args.model_package_group or new["ModelPackageGroupName"]
    champion = previous_approved(reg.list_model_packages(group, approval_status="Approved"),
                                 new["ModelPackageArn"])
    variants = plan_variants(new["ModelPackageArn"], champion, args.challenger_weight, args.traffic)
    state = state_root(args) / args.endpoint_name
    state.mkdir(parents=True, exist_ok=True)
    for v in variants:
        desc = new if v["model_package_arn"] == new["ModelPackageArn"] else \
            reg.describe_model_package(v["model_package_arn"])
        v["model_package_version"] = desc["ModelPackageVersion"]
        v["model_dir"] = str(_model_dir(desc, state))
    previous = read_json(state / "endpoint.json") if (state / "endpoint.json").is_file() else None
    in_container = deploy_container.wanted()
    stopped = stop(state) | (in_container and deploy_container.stop(args.endpoint_name))
    action = "update" if stopped else "create"  # a running endpoint of this name is replaced
    change = classify_change(_served(previous) if stopped else None, _served({"variants": variants}))
    port = args.port or (previous or {}).get("port") or _free_port(args.host)
    capture_dir = Path(localize(args.capture_uri)) if args.capture_uri else state / "capture"
    if in_container:  # <inference image> serve, through the engine's API (inference/deploy_container.py)
        image = new["InferenceSpecification"]["Containers"][0].get("Image", "")
        running = deploy_container.start(image, variants, args.endpoint_name, port, capture_dir, args.capture_percent)
        proc, where = None, {**running, "pid": None}
    else:
        proc = start(state, variants, args, port, capture_dir)
        where = {"pid": proc.pid}
    url = f"http://{args.host if not in_container else '127.0.0.1'}:{port}"
    deadline = time.time() + PING_TIMEOUT
    while not _ping(url):
        if (proc is not None and proc.poll() is not None) or time.time() > deadline:
            if in_container:
                tail = deploy_container.logs(args.endpoint_name)
                deploy_container.stop(args.endpoint_name)
            else:
                stop(state)
                tail = (state / "server.log").read_text(errors="replace")[-2000:]
            raise DataError(f"local endpoint {args.endpoint_name} did not come up "
                            f"(exit {proc.poll() if proc else 'container'}); server log tail:\n{tail}")
        time.sleep(0.2)
    info = {"backend": "local", "endpoint_name": args.endpoint_name, "action": action, "url": url,
            "invocations_url": f"{url}/invocations", "host": args.host, "port": port, **where,
            "change": change, "traffic": args.traffic,
            "state_dir": str(state), "log_file": str(state / "server.log"),
            "variants": variants, "model_package_group": group,
            "data_capture": {"enabled": args.capture_percent > 0, "destination": str(capture_dir),
                             "sampling_percentage": args.capture_percent},
            "deployed": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    write_json(state / "endpoint.json", info)
    return info


def delete(args: argparse.Namespace) -> None:
    state = state_root(args) / args.endpoint_name
    stopped = stop(state) or (deploy_container.wanted() and deploy_container.stop(args.endpoint_name))
    (state / "endpoint.json").unlink(missing_ok=True)
    log.info("local endpoint %s %s", args.endpoint_name, "stopped" if stopped else "was not running")
