"""Step processes never outlive their runner, and a resume never runs beside a stale one.

Two guards (docs/local-runner.md, "Killed runs"):

- ``die_with_parent()``: a ``preexec_fn`` for the step's ``Popen`` (Linux) that sets
  ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, so the kernel kills the step process when its runner
  dies, however it dies (SIGKILL included, where no ``finally`` runs). The "parent" of the
  death signal is the *thread* that forked the child: ``run_command`` waits for the child in
  that same thread, so the thread cannot end first. A runner that died between ``fork`` and
  ``prctl`` is caught by comparing ``getppid()`` with the runner's pid.
- ``step.pid`` next to the step's log (``<step work>/logs/step.pid``): the step's pid (also
  its process group: it leads its own session), its start time, and the runner's pid and
  start time; removed when the step ends. A runner killed mid-step leaves it behind, and
  ``check_stale(run_dir)``, called before a resume reads that run, finds it: a step process
  (or a process of its group: the death signal reaches only the direct child) still alive
  while its runner is gone is stopped (SIGTERM to the group, SIGKILL after 10 s) with a
  message; while the runner itself is alive the resume is refused (DataError), since that run
  is still executing.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import signal
import sys
import time
from pathlib import Path
from typing import Callable

from clinical_ml.io import DataError

PID_FILE = "step.pid"
PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGKILL) -> Callable[[], None] | None:
    """A ``preexec_fn`` that makes the child receive ``sig`` when this process dies; None
    where prctl is not available (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    # everything the child needs is built here, in the parent: the child only calls it
    args = (ctypes.c_int(PR_SET_PDEATHSIG), ctypes.c_ulong(sig), ctypes.c_ulong(0),
            ctypes.c_ulong(0), ctypes.c_ulong(0))
    parent = os.getpid()

    def preexec() -> None:
        prctl(*args)
        if os.getppid() != parent:  # the runner died before the death signal was armed
            os.kill(os.getpid(), sig)

    return preexec


def _start_time(pid: int) -> float | None:
    import psutil  # noqa: PLC0415

    try:
        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return None
        return p.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return None


def write_pid(path: Path, pid: int) -> None:
    """Record a running step (``run_command`` calls this right after starting it)."""
    doc = {"pid": pid, "started": _start_time(pid), "runner_pid": os.getpid(),
           "runner_started": _start_time(os.getpid())}
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def _same(pid: int, started: float | None) -> bool:
    """``pid`` is alive and is the process that was recorded (not a reused pid)."""
    now = _start_time(pid)
    return now is not None and (started is None or abs(now - started) < 1.0)


def _group(pgid: int, since: float | None) -> list[int]:
    """Live processes of process group ``pgid`` started no earlier than ``since``."""
    import psutil  # noqa: PLC0415

    out = []
    for pid in psutil.pids():
        try:
            if os.getpgid(pid) != pgid:
                continue
        except OSError:
            continue
        t = _start_time(pid)
        if t is not None and (since is None or t >= since - 1.0):
            out.append(pid)
    return out


def _stop_group(pgid: int, timeout: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except OSError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not _group(pgid, None):
                return
            time.sleep(0.1)


def _step_name(folder: Path) -> str:
    name = folder.name  # the engine's work folder: .<step>.tmp-<runner pid>-<ms>
    return name[1:].split(".tmp-", 1)[0] if name.startswith(".") and ".tmp-" in name else name


def check_stale(run_dir: Path) -> list[str]:
    """Stop step processes of ``run_dir`` that outlived their runner; a message for each.

    Raises DataError when the run's runner is still alive (the run is still executing)."""
    steps = Path(run_dir) / "steps"
    messages: list[str] = []
    if not steps.is_dir():
        return messages
    for entry in sorted(steps.iterdir()):
        pid_file = entry / "logs" / PID_FILE
        if not pid_file.is_file():
            continue
        try:
            doc = json.loads(pid_file.read_text())
            pid = int(doc["pid"])
        except (OSError, ValueError, KeyError, TypeError):
            continue
        leader = _start_time(pid)
        if leader is not None and doc.get("started") and abs(leader - doc["started"]) >= 1.0:
            continue  # the pid was reused by another process: not our step
        live = _group(pid, doc.get("started"))
        if not live:
            continue
        step = _step_name(entry)
        runner = doc.get("runner_pid")
        if runner and _same(int(runner), doc.get("runner_started")):
            raise DataError(f"{Path(run_dir).name} is still running step {step} (runner pid "
                            f"{runner}, step pid {pid}); wait for it to finish or stop it "
                            f"(kill {runner}) before resuming from it")
        _stop_group(pid)
        pid_file.unlink(missing_ok=True)
        messages.append(f"step {step} of {Path(run_dir).name} was still running after its runner "
                        f"died (pid {pid}, {len(live)} process(es)); stopped it before resuming")
    return messages
