"""Step processes never outlive their runner; a resume never runs beside a stale step."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from clinical_ml.io import DataError
from pipelines.local import steproc
from pipelines.local.jobs import run_command

REPO = Path(__file__).resolve().parents[1]
SLEEPER = "import time; print('ready', flush=True); time.sleep(120)"
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux-only")


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait(cond, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_sigkilled_runner_takes_its_running_step_with_it(tmp_path):
    log = tmp_path / "steps" / ".Train.tmp-1-2" / "logs" / "step.log"
    runner = ("import os, sys; from pathlib import Path; from pipelines.local.jobs import run_command; "
              f"log = Path(sys.argv[1]); run_command([sys.executable, '-c', {SLEEPER!r}], "
              "dict(os.environ), log.parent, log, None)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    parent = subprocess.Popen([sys.executable, "-c", runner, str(log)], cwd=REPO, env=env)
    pid_file = log.parent / steproc.PID_FILE
    try:
        _wait(lambda: pid_file.is_file() and log.is_file() and "ready" in log.read_text(), 60,
              "the step did not start")
        doc = json.loads(pid_file.read_text())
        child = doc["pid"]
        assert doc["runner_pid"] == parent.pid and _alive(child)
        parent.kill()  # SIGKILL: no finally, no signal handler runs in the runner
        parent.wait()
        _wait(lambda: not _alive(child), 5, "the step outlived its SIGKILLed runner")
    finally:
        parent.kill()
        parent.wait()
    # the pid file stays behind (the runner had no chance to remove it): a resume reads it,
    # finds nothing alive, and says nothing
    assert pid_file.is_file()
    assert steproc.check_stale(tmp_path) == []


def test_a_finished_step_leaves_no_pid_file(tmp_path):
    log = tmp_path / "logs" / "step.log"
    assert run_command([sys.executable, "-c", "print('ok')"], dict(os.environ), tmp_path, log, None) == 0
    assert "ok" in log.read_text() and not (log.parent / steproc.PID_FILE).exists()


def _stale_step(run_dir: Path, runner_alive: bool) -> tuple[subprocess.Popen, int]:
    """A step (with a grandchild) as a runner killed before the death signal existed left it."""
    work = run_dir / "steps" / ".Train.tmp-4242-123" / "logs"
    work.mkdir(parents=True)
    code = ("import subprocess, sys, time; "
            f"subprocess.Popen([sys.executable, '-c', {SLEEPER!r}]); {SLEEPER}")
    step = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdout=subprocess.PIPE, text=True)
    assert step.stdout.readline().strip() == "ready"
    _wait(lambda: psutil.Process(step.pid).children(), 30, "no grandchild")
    grandchild = psutil.Process(step.pid).children()[0].pid
    steproc.write_pid(work / steproc.PID_FILE, step.pid)
    if not runner_alive:
        gone = subprocess.Popen([sys.executable, "-c", "pass"])
        gone.wait()
        doc = json.loads((work / steproc.PID_FILE).read_text())
        doc.update(runner_pid=gone.pid, runner_started=time.time() - 3600)
        (work / steproc.PID_FILE).write_text(json.dumps(doc))
    return step, grandchild


def _cleanup(step: subprocess.Popen) -> None:
    try:
        os.killpg(step.pid, 9)
    except OSError:
        pass
    step.wait()


def test_resume_stops_a_step_whose_runner_is_gone(tmp_path):
    run_dir = tmp_path / "runs" / "20260101T000000-abc"
    step, grandchild = _stale_step(run_dir, runner_alive=False)
    try:
        msgs = steproc.check_stale(run_dir)
        assert len(msgs) == 1 and "step Train of 20260101T000000-abc was still running" in msgs[0]
        assert "2 process(es)" in msgs[0]
        step.wait(5)  # the test is its parent: reap it
        _wait(lambda: not _alive(grandchild), 5, "the step's grandchild survived")
        assert steproc.check_stale(run_dir) == []
    finally:
        _cleanup(step)


def test_resume_of_a_run_whose_runner_still_runs_is_refused(tmp_path):
    root = tmp_path / "runs"
    run_dir = root / "20260101T000000-abc"
    step, grandchild = _stale_step(run_dir, runner_alive=True)  # this test is the "runner"
    try:
        from pipelines.local.runner import run_execution

        with pytest.raises(DataError, match=r"is still running step Train \(runner pid"):
            run_execution({"Version": "2020-12-01", "Parameters": [], "Steps": []}, root, {},
                          resume=run_dir.name, stream=io.StringIO())
        assert _alive(step.pid) and _alive(grandchild)  # a live run is never touched
    finally:
        _cleanup(step)


def test_pid_reuse_is_not_mistaken_for_the_step(tmp_path):
    run_dir = tmp_path / "run"
    work = run_dir / "steps" / ".Prep.tmp-1-2" / "logs"
    work.mkdir(parents=True)
    # the recorded pid now belongs to another process (this one), started at another time
    (work / steproc.PID_FILE).write_text(json.dumps({"pid": os.getpid(), "started": 1.0,
                                                     "runner_pid": 1, "runner_started": 1.0}))
    assert steproc.check_stale(run_dir) == [] and _alive(os.getpid())
