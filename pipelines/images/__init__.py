"""Container images: one Dockerfile per family, built on SageMaker's framework images with this
repository at /opt/ml/code (the path every pipeline step's entrypoint names).

``python -m pipelines.images [--family F] [--push]`` (``make image [PUSH=1]``) builds them where a
Docker engine exists and pushes them to this account's ECR repositories (the pipeline's
image-URI parameter defaults, ``pipelines.parameters.IMAGE_REPOSITORIES``); elsewhere it prints
the exact commands and says what is missing.
"""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from pipelines.parameters import IMAGE_REPOSITORIES, image_uri

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parents[1]
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


def dockerfile(family: str) -> Path:
    return HERE / family / "Dockerfile"


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


def build_commands(family: str, region: str, account: str, tag: str, context: str, push: bool) -> list[list[str]]:
    target = image_uri(family, account, region, tag)
    cmds = [["docker", "build", "--file", str(dockerfile(family)), "--build-arg",
             f"BASE_IMAGE={base_image(family, region)}", "--tag", target, context]]
    if push:
        cmds.append(["docker", "push", target])
    return cmds


def docker_available() -> bool:
    if shutil.which("docker") is None:
        return False
    return subprocess.run(["docker", "info"], capture_output=True).returncode == 0


__all__ = ["IMAGE_REPOSITORIES", "BASE_IMAGES", "build_commands", "build_context", "dockerfile", "base_image"]
