"""Batch extraction over worker processes: the throughput settings of ``extract-notes``.

On a CPU the encoder's matrix products dominate. Two levers, measured by ``make bench-extract``
on 200 real notes (docs/extraction.md "Throughput"):

- ``precision``: ``bf16`` autocast where the CPU does bf16 in hardware, or dynamic ``int8``
  linear layers (``clinical_ml.extraction.precision``);
- ``workers`` processes with ``threads`` intra-op threads each instead of one process with
  every core: small matrices scale badly over OpenMP threads (each op waits for its slowest
  thread, and on a busy host one of them is always late), independent processes do not.

``ExtractorPool(spec, ...).extract(texts)`` returns the annotations in input order, whatever
the worker count; with ``workers=1`` it runs in this process. Workers are started with
``spawn`` (a fork after torch has started its thread pool can deadlock) and load the model once.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clinical_ml.extraction.spans import by_length

_WORKER: Any = None  # the extractor of a worker process


@dataclass(frozen=True)
class PoolSettings:
    workers: int = 1
    threads: int = 1
    precision: str = "fp32"


def usable_cpus() -> int:
    """Cores this process may run on (a container's CPU set, not the host's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _load(spec: str, threads: int, precision: str):
    import torch

    from clinical_ml.extraction import load

    torch.set_num_threads(max(1, threads))
    ext = load(spec, precision=precision)
    if precision == "fp32" and torch.cuda.is_available() and hasattr(ext, "model"):
        ext.model.encoder.to("cuda")  # the encoder's windows on the GPU, decoding on the CPU
    return ext


def _init_worker(spec: str, threads: int, precision: str) -> None:
    global _WORKER
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    _WORKER = _load(spec, threads, precision)


def _extract_batch(texts: list[str]) -> list[dict]:
    return _WORKER.extract(texts)


class ExtractorPool:
    """``extract(texts)`` with ``settings.workers`` processes; use as a context manager."""

    def __init__(self, spec: str, settings: PoolSettings, batch_size: int = 32):
        self.spec, self.batch_size = str(spec), max(1, batch_size)
        self._pool = None
        self._local = None
        self._scratch = None
        if self.spec != "rules":
            # a model.tar.gz is unpacked once here, not once per worker
            import tempfile

            from clinical_ml.io import read_json, resolve_model_dir

            p = Path(self.spec)
            if p.is_file() or (p / "model.tar.gz").is_file():
                self._scratch = tempfile.TemporaryDirectory(prefix="extractor-")
                self.spec = str(resolve_model_dir(p, self._scratch.name))
            if read_json(Path(self.spec) / "metadata.json").get("kind") != "encoder":
                settings = PoolSettings(1, settings.threads)  # rules/generative: one process
        self.settings = settings
        if settings.workers <= 1:
            self._local = _load(self.spec, settings.threads, settings.precision)
        else:
            ctx = mp.get_context("spawn")
            self._pool = ctx.Pool(settings.workers, initializer=_init_worker,
                                  initargs=(self.spec, settings.threads, settings.precision))

    def extract(self, texts: list[str]) -> list[dict]:
        """Annotations in input order; batches are cut from the texts sorted by length (a
        batch of neighbours pads little), the longest first so no worker is left with the
        slowest batch at the end."""
        order = by_length(texts)[::-1]
        batches = [[texts[i] for i in order[b:b + self.batch_size]] for b in range(0, len(order), self.batch_size)]
        if self._local is not None:
            done = [ann for b in batches for ann in self._local.extract(b)]
        else:
            done = [ann for res in self._pool.imap(_extract_batch, batches) for ann in res]
        out: list[dict] = [{}] * len(texts)
        for i, ann in zip(order, done):
            out[i] = ann
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def __enter__(self) -> "ExtractorPool":
        return self

    def __exit__(self, *exc) -> None:
        if self._pool is not None and exc[0] is not None:
            self._pool.terminate()
        self.close()
