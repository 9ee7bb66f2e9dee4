"""Pin each server worker process to its own CPU core.

With one worker per core, an unpinned worker is migrated between cores by the scheduler; on
the 2-core VM of our benchmark this made one-connection latency bimodal (p50 0.65 ms or
1.0 ms, changing from one 5 s run to the next), while pinned workers stayed at 0.60-0.67 ms
(docs/serving.md). Workers are separate processes started by uvicorn, so each claims a slot
by taking an exclusive ``flock`` on ``<dir>/slot-<k>``: the lock dies with the process, so a
restarted worker takes over the slot of the one it replaces.
"""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from clinical_ml.logs import get_logger

log = get_logger(__name__)
_held: list[int] = []  # lock file descriptors, kept open for the life of the process


def should_pin(mode: str, workers: int, cpus: int) -> bool:
    """``auto``: pin when there is more than one worker and no more workers than cores."""
    if mode == "off":
        return False
    if mode == "on":
        return True
    return 1 < workers <= cpus


def claim_slot(folder: str | os.PathLike, slots: int) -> int | None:
    """The first of ``slots`` slot files this process can lock, or None when all are held."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(slots):
        fd = os.open(folder / f"slot-{k}", os.O_CREAT | os.O_RDWR, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue
        _held.append(fd)
        return k
    return None


def pin_worker(folder: str | os.PathLike, cpus: list[int]) -> int | None:
    """Claim a slot and pin this process to the matching core; the core, or None if unpinned."""
    slot = claim_slot(folder, len(cpus))
    if slot is None:
        log.warning("no free CPU slot under %s; worker %d left unpinned", folder, os.getpid())
        return None
    os.sched_setaffinity(0, {cpus[slot]})
    log.info("worker %d pinned to CPU %d", os.getpid(), cpus[slot])
    return cpus[slot]
