"""Endpoint metrics from the server itself: SageMaker's invocation metrics, written locally.

On AWS, SageMaker publishes these for every endpoint (namespace ``AWS/SageMaker``, dimensions
``EndpointName`` and ``VariantName``); the local endpoint writes the same names, per
``window_seconds`` window, to the local metrics file the drift job uses
(``clinical_ml.monitor.metrics.append_local``), so one dashboard and one alarm rule read both:

- ``ModelLatency`` (Microseconds): time in the model handlers (decode, predict, encode);
- ``OverheadLatency`` (Microseconds): the rest of the request's time in the server (routing,
  reading the body, sending the answer);
- ``Invocations``, ``Invocation4XXErrors``, ``Invocation5XXErrors`` (Count).

A latency datapoint carries ``StatisticValues`` (SampleCount, Sum, Minimum, Maximum, as
PutMetricData takes them) and ``ExtendedStatistics`` ``p50``/``p99`` of the window (as
GetMetricStatistics returns them); ``Value`` is the p50. Per request the server only appends a
tuple to a deque (no lock, no I/O); a daemon thread turns the window into datapoints. With
several workers each writes its own datapoints (percentiles are per worker).
"""
from __future__ import annotations

import collections
import os
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from clinical_ml.logs import get_logger
from clinical_ml.monitor import metrics

log = get_logger(__name__)
NAMESPACE = "AWS/SageMaker"
LATENCY_METRICS = ("ModelLatency", "OverheadLatency")
COUNT_METRICS = ("Invocations", "Invocation4XXErrors", "Invocation5XXErrors")
METRICS = LATENCY_METRICS + COUNT_METRICS
NO_VARIANT = "AllTraffic"  # a request refused before a variant was picked


def dimensions(endpoint: str, variant: str) -> list[dict]:
    return [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]


def percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q, method="nearest"))


def window_points(samples: list[tuple], endpoint: str, timestamp: datetime) -> list[dict]:
    """Datapoints of one window of ``(variant, status, model_ns, total_ns)`` samples."""
    by_variant: dict[str, list[tuple]] = {}
    for s in samples:
        by_variant.setdefault(s[0] or NO_VARIANT, []).append(s)
    out = []
    for variant, rows in sorted(by_variant.items()):
        dims = dimensions(endpoint, variant)

        def dp(name: str, value: float, unit: str, **extra) -> dict:
            return {"MetricName": name, "Dimensions": dims, "Timestamp": timestamp,
                    "Value": float(value), "Unit": unit, **extra}

        status = np.asarray([r[1] for r in rows])
        out.append(dp("Invocations", len(rows), "Count"))
        out.append(dp("Invocation4XXErrors", int(((status >= 400) & (status < 500)).sum()), "Count"))
        out.append(dp("Invocation5XXErrors", int((status >= 500).sum()), "Count"))
        timed = [r for r in rows if r[2] is not None]
        if not timed:
            continue
        model_us = np.asarray([r[2] for r in timed], dtype=float) / 1000.0
        total_us = np.asarray([r[3] for r in timed], dtype=float) / 1000.0
        for name, v in (("ModelLatency", model_us), ("OverheadLatency", np.maximum(total_us - model_us, 0))):
            p50, p99 = percentile(v, 50), percentile(v, 99)
            out.append(dp(name, p50, "Microseconds",
                          StatisticValues={"SampleCount": float(v.size), "Sum": float(v.sum()),
                                           "Minimum": float(v.min()), "Maximum": float(v.max())},
                          ExtendedStatistics={"p50": p50, "p99": p99}))
    return out


class ServingMetrics:
    """Collects per-request samples; ``flush`` (and the thread, every ``window_seconds``)
    appends the window's datapoints to ``path``."""

    def __init__(self, path: str | os.PathLike, endpoint: str, window_seconds: float = 60.0,
                 start_thread: bool = True, max_samples: int = 200_000):
        self.path, self.endpoint, self.window_seconds = Path(path), endpoint, window_seconds
        # bounded: were the writer stopped, the oldest samples go, memory does not grow
        self._buf: collections.deque[tuple] = collections.deque(maxlen=max_samples)
        self.written = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if start_thread:
            self.start()

    def start(self) -> None:
        """Start (or restart, after ``close``) the writer thread."""
        if self._thread is None or not self._thread.is_alive():
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, args=(self._stop,),
                                            name="serving-metrics", daemon=True)
            self._thread.start()

    def resume(self) -> None:
        """After ``close``: start the writer again if this collector ran one (an app reused by
        a second server lifespan); one built with ``start_thread=False`` stays manual."""
        if self._thread is not None:
            self.start()

    def observe(self, variant: str | None, status: int, model_ns: int | None, total_ns: int) -> None:
        """One finished request (the request path's only cost: a deque append)."""
        self._buf.append((variant, status, model_ns, total_ns))

    def flush(self, now: datetime | None = None) -> list[dict]:
        samples = []
        try:
            while True:
                samples.append(self._buf.popleft())
        except IndexError:
            pass
        if not samples:
            return []
        points = window_points(samples, self.endpoint, now or datetime.now(timezone.utc))
        metrics.append_local(points, self.path, namespace=NAMESPACE)
        self.written += len(points)
        return points

    def _run(self, stop: threading.Event) -> None:
        while not stop.wait(self.window_seconds):
            self._safe_flush()
        self._safe_flush()

    def _safe_flush(self) -> None:
        try:
            self.flush()
        except OSError as e:  # a full disk must not stop serving
            log.error("serving metrics write failed (%s)", type(e).__name__)

    def close(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._stop.set()
            self._thread.join(5)
        else:
            self._safe_flush()
