"""Container images: one multi-target Dockerfile (``pipelines/images/Dockerfile``, targets
processing, training-cpu, training-gpu, inference) with this repository at /opt/ml/code (the
path every pipeline step's entrypoint names).

``python -m pipelines.images [--family F] [--push]`` (``make image [PUSH=1]``) builds them on
SageMaker's framework images where a Docker engine exists and pushes them to this account's ECR
repositories (the pipeline's image-URI parameter defaults, ``pipelines.parameters.IMAGE_REPOSITORIES``);
elsewhere it prints the exact commands and says what is missing.
``python -m pipelines.images --local`` (``make images``) builds them here with podman on the local
Debian base of scripts/containers-setup.sh, tagged with the same URIs the definition names
(docs/containers.md).
"""
from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from pipelines.parameters import IMAGE_REPOSITORIES, image_uri

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
DOCKERFILE = HERE / "Dockerfile"
# SageMaker deep learning container registry (most commercial regions).
DLC_ACCOUNT = "763104351884"
BASE_IMAGES = {
    "processing": "pytorch-training:2.5.1-cpu-py311-ubuntu22.04-sagemaker",
    "training-cpu": "pytorch-training:2.5.1-cpu-py311-ubuntu22.04-sagemaker",
    "training-gpu": "pytorch-training:2.5.1-gpu-py311-cu124-ubuntu22.04-sagemaker",
    "inference": "pytorch-inference:2.5.1-cpu-py311-ubuntu22.04-sagemaker",
}
# What goes into the build context: the code the steps import, nothing else (no .venv, runs/).
CONTEXT = ["setup.py", "requirements.txt", "requirements-models.txt", "clinical_ml", "processing",
           "training", "inference", "monitoring", "pipelines"]
# pip settings worth carrying into a local build (`pip config list` keys)
PIP_KEYS = ("index-url", "extra-index-url", "find-links", "constraint", "cert", "trusted-host",
            "default-timeout", "retries", "proxy")


def dockerfile(family: str | None = None) -> Path:
    """The one Dockerfile (every family is a target of it)."""
    if family is not None and family not in IMAGE_REPOSITORIES:
        raise ValueError(f"unknown image family {family!r}; families are {sorted(IMAGE_REPOSITORIES)}")
    return DOCKERFILE


def base_image(family: str, region: str) -> str:
    return f"{DLC_ACCOUNT}.dkr.ecr.{region}.amazonaws.com/{BASE_IMAGES[family]}"


def build_context(dest: Path) -> Path:
    """Copy the files an image needs into ``dest`` (caches and bytecode left out)."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", ".pytest_cache")
    dest.mkdir(parents=True, exist_ok=True)
    for name in CONTEXT:
        src = REPO_ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=ignore)
        elif src.is_file():
            shutil.copy2(src, dest / name)
    return dest


def build_commands(family: str, region: str, account: str, tag: str, context: str, push: bool,
                   engine: str = "docker", base: str | None = None, extra: list[str] = ()) -> list[list[str]]:
    target = image_uri(family, account, region, tag)
    cmds = [[engine, "build", "--file", str(dockerfile(family)), "--target", family, "--build-arg",
             f"BASE_IMAGE={base or base_image(family, region)}", *extra, "--tag", target, context]]
    if push:
        cmds.append([engine, "push", target])
    return cmds


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


def _pip_settings(env: dict[str, str] | None = None) -> dict[str, str]:
    """This machine's effective pip settings: config files, then PIP_* variables (which win)."""
    import sys  # noqa: PLC0415

    env = dict(os.environ if env is None else env)
    proc = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True,
                          env={k: v for k, v in env.items() if not k.startswith("PIP_")})
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition("=")
        name = key.split(".", 1)[-1]
        if sep and name in PIP_KEYS:
            out[name] = value.strip().strip("'\"")
    for name in PIP_KEYS:
        v = env.get("PIP_" + name.upper().replace("-", "_"))
        if v:
            out[name] = v
    return out


def local_pip_config(dest: Path, env: dict[str, str] | None = None) -> tuple[Path, list[str]]:
    """A pip.conf with this machine's index settings, and the read-only ``--volume`` flags that
    make every local path it names (find-links folders, file:// indexes, constraints, CA
    bundle) visible at the same path during the build. Mounted at /etc/pip.conf for the
    build's RUN steps only: nothing of it stays in the image."""
    settings = _pip_settings(env)
    paths: set[str] = set()
    for name in ("index-url", "extra-index-url", "find-links", "constraint", "cert"):
        for item in settings.get(name, "").split():
            p = item[len("file://"):] if item.startswith("file://") else item
            if not p.startswith("/"):
                continue
            if name.endswith("index-url") and Path(p).name == "simple":
                p = str(Path(p).parent)  # an index's files may sit beside simple/
            if Path(p).exists():
                paths.add(p)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text("[global]\n" + "".join(f"{k} = {v}\n" for k, v in sorted(settings.items())))
    vols = ["--volume", f"{dest}:/etc/pip.conf:ro"]
    for p in sorted(paths):
        vols += ["--volume", f"{p}:{p}:ro"]
    return dest, vols


__all__ = ["IMAGE_REPOSITORIES", "BASE_IMAGES", "DOCKERFILE", "build_commands", "build_context", "dockerfile",
           "base_image", "local_pip_config"]
