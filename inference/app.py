"""The serving app: a raw ASGI application speaking SageMaker's hosting contract.

``GET /ping`` (health), ``POST /invocations`` (predict), ``GET /openapi.json`` (the request
schema), and ``POST /endpoints/<name>/invocations``: the SageMaker runtime API's
InvokeEndpoint, so boto3's ``sagemaker-runtime`` client works against this server unchanged
(front-end checks and error shapes in ``inference/runtime_api.py``). Raw ASGI rather than a
framework: the whole request path is a dozen lines we can read, and a single-row request
spends its time in the model, not in routing (docs/serving.md).

Per request: pick the production variant (``X-Amzn-SageMaker-Target-Variant`` or a weighted
draw), refuse bodies over SageMaker's 6 MB limit (413), run the four handlers, answer with
``X-Amzn-Invoked-Production-Variant`` (and ``X-Amzn-SageMaker-Custom-Attributes`` echoed),
and hand a capture event to the background writer when the request is sampled. Client errors
become 4xx with ``{"status", "message"}``; anything else is a 500 whose log line names the
exception type only (request bodies are never logged).
"""
from __future__ import annotations

import asyncio
import datetime as dt
import gc
import os
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import orjson

from clinical_ml.io import DataError
from clinical_ml.logs import get_logger
from inference import codecs, handlers, runtime_api
from inference.capture import CaptureWriter, Event
from inference.serving_metrics import ServingMetrics
from inference.codecs import RequestError

log = get_logger(__name__)
MAX_PAYLOAD = 6 * 1024 * 1024  # SageMaker real-time endpoints: 6 MB request payload
INLINE_BYTES = 256 * 1024  # outcome requests up to this size run on the event loop (~1 ms)
TARGET = "x-amzn-sagemaker-target-variant"
INFERENCE_ID = "x-amzn-sagemaker-inference-id"
INVOKED = b"x-amzn-invoked-production-variant"


@dataclass
class Variant:
    name: str
    model: Any
    weight: float = 1.0


def _header(scope: dict, name: str) -> str | None:
    key = name.encode()
    for k, v in scope["headers"]:
        if k == key:
            return v.decode("latin-1")
    return None


class ServingApp:
    """ASGI callable; one instance per worker process."""

    def __init__(self, variants: list[Variant], endpoint: str = "local",
                 capture: CaptureWriter | None = None, max_payload: int = MAX_PAYLOAD,
                 seed: int | None = None, openapi: dict | None = None,
                 metrics: ServingMetrics | None = None):
        if not variants:
            raise ValueError("at least one production variant is required")
        names = [v.name for v in variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique: {names}")
        total = sum(v.weight for v in variants)
        if total <= 0 or any(v.weight < 0 for v in variants):
            raise ValueError("variant weights must be >= 0 with a positive sum")
        self.variants = {v.name: v for v in variants}
        self._cum: list[tuple[float, Variant]] = []
        acc = 0.0
        for v in variants:
            acc += v.weight / total
            self._cum.append((acc, v))
        self.endpoint, self.capture, self.max_payload = endpoint, capture, max_payload
        self._rand = random.Random(seed)
        self._pool = self._new_pool()
        self.counts: dict[str, int] = {n: 0 for n in names}
        self.errors = {"4xx": 0, "5xx": 0}
        self._openapi = orjson.dumps(openapi) if openapi else None
        self.metrics = metrics  # ModelLatency/OverheadLatency/4XX/5XX (inference/serving_metrics.py)

    # -- routing -----------------------------------------------------------------------------
    def pick(self, target: str | None) -> Variant:
        if target is not None:
            v = self.variants.get(target)
            if v is None:
                raise RequestError(400, f"target variant {target[:64]!r} is not a production "
                                        f"variant of this endpoint ({', '.join(self.variants)})")
            return v
        r = self._rand.random()
        for edge, v in self._cum:
            if r < edge:
                return v
        return self._cum[-1][1]

    # -- ASGI --------------------------------------------------------------------------------
    async def __call__(self, scope: dict, receive, send) -> None:
        await self._dispatch(scope, receive, send)  # an ASGI app returns None (uvicorn checks)

    async def _dispatch(self, scope: dict, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            return await self._lifespan(receive, send)
        if kind != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/invocations":
            if method != "POST":
                return await self._error(send, 405, "use POST /invocations")
            if self.metrics is None:
                return await self._invoke(scope, receive, send)
            t0 = time.perf_counter_ns()
            status = await self._invoke(scope, receive, send)
            return self._observe(scope, status, t0)
        if path.startswith(runtime_api.PREFIX):  # the SageMaker runtime API (InvokeEndpoint)
            name = runtime_api.endpoint_name(path)
            if name is None:
                return await self._error(send, 404, f"no route {path[:64]!r}; use POST "
                                                    "/endpoints/<name>/invocations")
            if method != "POST":
                return await self._error(send, 405, "use POST /endpoints/<name>/invocations")
            if self.metrics is None:
                return await self._invoke_runtime(scope, receive, send, name)
            t0 = time.perf_counter_ns()
            status = await self._invoke_runtime(scope, receive, send, name)
            return self._observe(scope, status, t0)
        if path == "/ping":
            if method not in ("GET", "HEAD"):
                return await self._error(send, 405, "use GET /ping")
            body = orjson.dumps({"status": "ok", "variants": {n: {"weight": v.weight,
                                "model_version": v.model.version, "model_type": v.model.kind}
                                for n, v in self.variants.items()}})
            return await self._send(send, 200, body, b"application/json")
        if path == "/openapi.json" and method == "GET" and self._openapi:
            return await self._send(send, 200, self._openapi, b"application/json")
        if path == "/stats" and method == "GET":
            stats = {"invocations": self.counts, "errors": self.errors,
                     "capture": self.capture.stats() if self.capture else None}
            return await self._send(send, 200, orjson.dumps(stats), b"application/json")
        return await self._error(send, 404, f"no route {path[:64]!r}; use GET /ping, POST "
                                            "/invocations or POST /endpoints/<name>/invocations")

    def _observe(self, scope: dict, status: int | None, t0: int) -> None:
        """One finished invocation to the metrics (a deque append; None: client went away)."""
        if status is not None:
            self.metrics.observe(scope.get("cm.variant"), status, scope.get("cm.model_ns"),
                                 time.perf_counter_ns() - t0)

    async def _lifespan(self, receive, send) -> None:
        while True:
            msg = await receive()
            if msg["type"] == "lifespan.startup":
                if self.metrics is not None:
                    self.metrics.resume()  # after an earlier shutdown of this app
                await send({"type": "lifespan.startup.complete"})
            elif msg["type"] == "lifespan.shutdown":
                self.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    @staticmethod
    def _new_pool() -> ThreadPoolExecutor:
        return ThreadPoolExecutor(max_workers=2, thread_name_prefix="predict")

    def close(self) -> None:
        """Publish captured data and stop helper threads (both restart if the app is reused)."""
        if self.capture:
            self.capture.close()
        if self.metrics:
            self.metrics.close()
        pool, self._pool = self._pool, self._new_pool()
        pool.shutdown(wait=False)

    async def _read(self, scope: dict, receive) -> bytes:
        length = _header(scope, "content-length")
        if length and length.isdigit() and int(length) > self.max_payload:
            raise RequestError(413, f"payload of {int(length)} bytes exceeds the "
                                    f"{self.max_payload} byte limit; split the request")
        chunks, size = [], 0
        while True:
            msg = await receive()
            if msg["type"] == "http.disconnect":
                raise ConnectionError("client went away")
            chunk = msg.get("body", b"")
            size += len(chunk)
            if size > self.max_payload:
                raise RequestError(413, f"payload exceeds the {self.max_payload} byte limit; "
                                        "split the request")
            chunks.append(chunk)
            if not msg.get("more_body"):
                return b"".join(chunks)

    async def _invoke(self, scope: dict, receive, send) -> int | None:
        variant = None
        try:
            variant = self.pick(_header(scope, TARGET))
            body = await self._read(scope, receive)
        except RequestError as e:
            return await self._error(send, e.status, e.message, variant)
        except ConnectionError:
            return None
        return await self._answer(scope, send, variant, body)

    async def _invoke_runtime(self, scope: dict, receive, send, name: str) -> int | None:
        """``POST /endpoints/<name>/invocations``: InvokeEndpoint as SageMaker's front end
        answers it (inference/runtime_api.py); the model part is the container's."""
        variant = None
        try:
            runtime_api.check(name, self.endpoint, _header(scope, INFERENCE_ID),
                              _header(scope, runtime_api.CUSTOM_ATTRIBUTES))
            try:
                variant = self.pick(_header(scope, TARGET))
            except RequestError as e:
                raise runtime_api.ApiError(400, "ValidationError", e.message) from None
            try:
                body = await self._read(scope, receive)
            except RequestError as e:  # SageMaker answers an oversized body with a bare 413
                raise runtime_api.ApiError(e.status, None, e.message) from None
        except runtime_api.ApiError as e:
            self.errors["5xx" if e.status >= 500 else "4xx"] += 1
            status, out, headers = runtime_api.error(e.status, e.code, e.message)
            await self._send(send, status, out, b"application/json", variant, headers)
            return e.status
        except ConnectionError:
            return None
        return await self._answer(scope, send, variant, body, runtime=True)

    async def _answer(self, scope: dict, send, variant: Variant, body: bytes,
                      runtime: bool = False) -> int:
        """Run the handlers for one request and send the answer (or the model's error);
        returns the status the model's answer had (the metrics count 4xx/5xx by it)."""
        scope["cm.variant"] = variant.name
        t_model = time.perf_counter_ns()
        try:
            ctype_header = _header(scope, "content-type")
            ctype = codecs.media_type(ctype_header)
            accept = codecs.accept_type(_header(scope, "accept"), ctype)
            model = variant.model
            if model.kind == "outcomes" and len(body) <= INLINE_BYTES and b'"series"' not in body[:256]:
                out, out_type = handlers.transform(model, body, ctype, accept)
            else:  # slow work (notes, big batches) off the loop, so /ping stays answered
                out, out_type = await asyncio.get_running_loop().run_in_executor(
                    self._pool, handlers.transform, model, body, ctype, accept)
            scope["cm.model_ns"] = time.perf_counter_ns() - t_model
        except RequestError as e:
            return await self._error(send, e.status, e.message, variant, runtime)
        except DataError as e:
            return await self._error(send, 400, str(e)[:500], variant, runtime)
        except Exception as e:  # noqa: BLE001 (never let a request crash the worker)
            log.error("invocation failed: %s", type(e).__name__)
            return await self._error(send, 500, "internal error while predicting", variant, runtime)
        self.counts[variant.name] += 1
        extra = []
        if out_type == codecs.CSV:
            extra.append((b"x-output-columns", ",".join(model.columns).encode()))
        custom = _header(scope, runtime_api.CUSTOM_ATTRIBUTES)
        if custom is not None:  # echoed verbatim (SageMaker forwards it to the caller)
            extra.append((runtime_api.CUSTOM_ATTRIBUTES_OUT, custom.encode("latin-1")))
        if runtime:
            extra.append((runtime_api.REQUEST_ID, runtime_api.request_id()))
        await self._send(send, 200, out, out_type.encode(), variant, extra)
        cap = self.capture
        if cap is not None and cap.sample():
            cap.submit(Event(variant.name, dt.datetime.now(dt.timezone.utc),
                             _header(scope, INFERENCE_ID), ctype_header or ctype, body, out_type, out))
        return 200

    async def _send(self, send, status: int, body: bytes, ctype: bytes,
                    variant: Variant | None = None, extra: list | None = None) -> None:
        headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
        if variant is not None:
            headers.append((INVOKED, variant.name.encode()))
        if extra:
            headers += extra
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _error(self, send, status: int, message: str, variant: Variant | None = None,
                     runtime: bool = False) -> int:
        """Send an error; returns the original status (a runtime ModelError is sent as 424)."""
        self.errors["5xx" if status >= 500 else "4xx"] += 1
        if runtime:  # the runtime API wraps the container's error as SageMaker does
            sent, body, headers = runtime_api.model_error(status, message, self.endpoint)
            await self._send(send, sent, body, b"application/json", variant, headers)
            return status
        await self._send(send, status, codecs.error_body(status, message), b"application/json", variant)
        return status


def build_app(models: list[tuple[str, str, float]], endpoint: str = "local",
              capture_dir: str | None = None, capture_percent: float = 100.0,
              max_payload: int = MAX_PAYLOAD, limits: dict | None = None,
              seed: int | None = None, metrics_file: str | None = None,
              metrics_seconds: float = 60.0) -> ServingApp:
    """Load each ``(variant name, model dir, weight)`` and assemble the app."""
    from inference.openapi import spec  # noqa: PLC0415

    variants = [Variant(name, handlers.model_fn(path, **(limits or {})), weight)
                for name, path, weight in models]
    capture = CaptureWriter(capture_dir, endpoint, capture_percent) if capture_dir else None
    serving_metrics = ServingMetrics(metrics_file, endpoint, metrics_seconds) if metrics_file else None
    app = ServingApp(variants, endpoint, capture, max_payload, seed=seed,
                     openapi=spec([v.model for v in variants]), metrics=serving_metrics)
    gc.collect()
    gc.freeze()  # models and app are long-lived: keep them out of every later GC pass
    return app


ENV_CONFIG = "CLINICAL_ML_SERVE_CONFIG"


def app_from_env() -> ServingApp:
    """uvicorn factory for multi-worker runs: each worker loads the models itself."""
    cfg = orjson.loads(os.environ[ENV_CONFIG])
    if cfg.get("pin"):
        from inference.affinity import pin_worker  # noqa: PLC0415

        pin_worker(cfg["pin"]["dir"], cfg["pin"]["cpus"])
    return build_app([tuple(m) for m in cfg["models"]], cfg["endpoint"], cfg.get("capture_dir"),
                     cfg.get("capture_percent", 100.0), cfg.get("max_payload", MAX_PAYLOAD),
                     cfg.get("limits"), metrics_file=cfg.get("metrics_file"),
                     metrics_seconds=cfg.get("metrics_seconds", 60.0))
