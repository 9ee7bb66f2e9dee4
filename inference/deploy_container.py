"""The local endpoint as a container of the inference image (``CLINICAL_ML_ENDPOINT_RUNTIME=container``).

``run-local --containers`` sets it for the Deploy job, with ``DOCKER_HOST`` naming the engine's
Docker-API socket (podman system service): the job asks the engine for the endpoint's container
as SageMaker's Deploy asks the SageMaker API, and the container outlives the job. The container
is the registered package's image run as SageMaker hosting runs it, ``<image> serve``: the
first variant's model at ``/opt/ml/model``, the second at ``/opt/ml/model-b`` (the server routes
between them by weight and writes data capture, as the host endpoint does), port 8080 published
on 127.0.0.1 only. State (``endpoint.json``) lives where the host endpoint keeps it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError

RUNTIME_ENV = "CLINICAL_ML_ENDPOINT_RUNTIME"
MODEL_B = "/opt/ml/model-b"
CAPTURE = "/opt/ml/capture"


def wanted() -> bool:
    return os.environ.get(RUNTIME_ENV, "process") == "container"


def _client():
    try:
        import docker  # noqa: PLC0415
    except ImportError:
        raise DataError(f"{RUNTIME_ENV}=container needs the docker package (requirements.txt)") from None
    try:
        client = docker.from_env(timeout=120)
        client.ping()
    except Exception as e:  # noqa: BLE001 - any transport error means: no engine reachable
        raise DataError(f"{RUNTIME_ENV}=container: no Docker API at DOCKER_HOST="
                        f"{os.environ.get('DOCKER_HOST', '(unset)')}: {e}") from None
    return client


def container_name(endpoint: str) -> str:
    return f"clinical-ml-endpoint-{endpoint}"


def serve_command(variants: list[dict[str, Any]], endpoint: str, capture: bool, capture_percent: float) -> list[str]:
    """The arguments after ``serve`` (the image's entrypoint adds --host/--port/--model)."""
    cmd = ["serve", "--name-a", variants[0]["name"], "--endpoint-name", endpoint]
    if len(variants) > 1:
        cmd += ["--model-b", MODEL_B, "--name-b", variants[1]["name"], "--weight-b", str(variants[1]["weight"])]
    if capture:
        cmd += ["--capture-dir", CAPTURE, "--capture-percent", str(capture_percent)]
    return cmd


def start(image: str, variants: list[dict[str, Any]], endpoint: str, port: int, capture_dir: Path | None,
          capture_percent: float) -> dict[str, Any]:
    """Replace the endpoint's container with a new one; returns its name and id."""
    if not image:
        raise DataError("the model package names no inference image (InferenceSpecification.Containers[0].Image)")
    client = _client()
    name = container_name(endpoint)
    stop(endpoint, client)
    volumes = {variants[0]["model_dir"]: {"bind": "/opt/ml/model", "mode": "ro"}}
    if len(variants) > 1:
        volumes[variants[1]["model_dir"]] = {"bind": MODEL_B, "mode": "ro"}
    capture = capture_dir is not None and capture_percent > 0
    if capture:
        capture_dir.mkdir(parents=True, exist_ok=True)
        volumes[str(capture_dir)] = {"bind": CAPTURE, "mode": "rw"}
    try:
        c = client.containers.run(image, serve_command(variants, endpoint, capture, capture_percent), name=name,
                                  detach=True, ports={"8080/tcp": ("127.0.0.1", port)}, volumes=volumes,
                                  environment={"CLINICAL_ML_ENDPOINT": endpoint, "SAGEMAKER_BIND_TO_PORT": "8080"},
                                  labels={"org.clinical-ml.endpoint": endpoint})
    except Exception as e:  # noqa: BLE001 - the engine's message is the useful part
        raise DataError(f"could not start the endpoint container from {image}: {e}") from None
    return {"container": name, "container_id": c.id, "image": image}


def stop(endpoint: str, client=None) -> bool:
    client = client or _client()
    import docker.errors  # noqa: PLC0415

    try:
        c = client.containers.get(container_name(endpoint))
    except docker.errors.NotFound:
        return False
    c.remove(force=True)
    return True


def logs(endpoint: str, tail: int = 60) -> str:
    try:
        return _client().containers.get(container_name(endpoint)).logs(tail=tail).decode(errors="replace")
    except Exception as e:  # noqa: BLE001
        return f"(no container logs: {e})"
