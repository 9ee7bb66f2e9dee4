"""The container engine as the project uses it here: podman, set up by scripts/containers-setup.sh.

State lives outside the repository, in ``CLINICAL_ML_ENGINE_HOME`` (default
``/var/lib/clinical-ml-engine``): ``containers.conf`` (runtime runc, ulimits), ``storage.conf``
(images under ``storage/``). Every podman call goes through ``podman()`` / ``engine_env()`` so it
reads that configuration, whoever calls it (``make images``, the local runner, the local
endpoint, tests). docs/containers.md.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from clinical_ml.io import DataError

DEFAULT_HOME = "/var/lib/clinical-ml-engine"
BASE_IMAGE = "localhost/clinical-ml-base:bookworm"
SOURCE_LABEL = "org.clinical-ml.source-hash"
SETUP = "scripts/containers-setup.sh"


def engine_home() -> Path:
    return Path(os.environ.get("CLINICAL_ML_ENGINE_HOME", DEFAULT_HOME))


def base_image() -> str:
    return os.environ.get("CLINICAL_ML_BASE_IMAGE", BASE_IMAGE)


def engine_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's) with CONTAINERS_CONF / CONTAINERS_STORAGE_CONF set to
    the project's engine configuration when it exists (an explicit setting wins)."""
    out = dict(os.environ if env is None else env)
    home = engine_home()
    for var, name in (("CONTAINERS_CONF", "containers.conf"), ("CONTAINERS_STORAGE_CONF", "storage.conf")):
        if var not in out and (home / name).is_file():
            out[var] = str(home / name)
    return out


def podman_path() -> str | None:
    return shutil.which(os.environ.get("CLINICAL_ML_PODMAN", "podman"))


def podman(*args: str) -> list[str]:
    exe = podman_path()
    if exe is None:
        raise DataError(f"podman is not installed; run {SETUP} (docs/containers.md)")
    return [exe, *args]


def run(args: list[str], check: bool = True, capture: bool = True, timeout: float | None = None,
        **kw) -> subprocess.CompletedProcess:
    """``podman ARGS`` with the project's engine configuration."""
    proc = subprocess.run(podman(*args), env=engine_env(), capture_output=capture, text=True,
                          timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise DataError(f"podman {' '.join(args[:3])} ... failed (exit {proc.returncode}): "
                        f"{(proc.stderr or '').strip()[-800:]}")
    return proc


def why_unavailable() -> str:
    """'' when podman runs with the project's configuration, else the reason (for skips and errors)."""
    if podman_path() is None:
        return f"podman is not installed (run {SETUP})"
    home = engine_home()
    if not (home / "containers.conf").is_file():
        return f"the engine is not configured ({home}/containers.conf missing: run {SETUP})"
    try:
        proc = run(["info", "--format", "{{.Host.OCIRuntime.Name}}"], check=False, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"podman info failed: {e}"
    if proc.returncode != 0:
        return f"podman info failed: {(proc.stderr or '').strip()[-300:]}"
    return ""


def image_exists(image: str) -> bool:
    if podman_path() is None:
        return False
    return run(["image", "exists", image], check=False).returncode == 0


def image_labels(image: str) -> dict[str, str]:
    proc = run(["image", "inspect", image], check=False)
    if proc.returncode != 0:
        raise DataError(f"image {image} is not built here; run `make images` (docs/containers.md)")
    doc = json.loads(proc.stdout)
    return (doc[0].get("Labels") or doc[0].get("Config", {}).get("Labels") or {}) if doc else {}


def image_problem(image: str, source_hash: str, allow_stale: bool = False) -> str:
    """'' when ``image`` is built here from the sources of ``source_hash`` (any sources with
    ``allow_stale``), else why not: what the runner refuses and the container tests skip on."""
    if not image_exists(image):
        return f"image {image} is not built here; run `make images` (docs/containers.md)"
    built = image_labels(image).get(SOURCE_LABEL, "")
    if built != source_hash and not allow_stale:
        return (f"image {image} was built from other sources (label {built[:12] or 'none'}, this checkout "
                f"{source_hash[:12]}); run `make images` again (or CLINICAL_ML_ALLOW_STALE_IMAGES=1 to run it anyway)")
    return ""


def image_id(image: str) -> str:
    return run(["image", "inspect", "--format", "{{.Id}}", image]).stdout.strip()
