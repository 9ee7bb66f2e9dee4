"""How a container image becomes a local command: the ONE table the local runner uses.

SageMaker runs a step's script inside its image; locally there is no Docker, so each image
family maps to an interpreter on this machine that has the same code installed (this repo,
``pip install -e .``). The table is ordered; the first pattern that matches the image URI wins.
An image that matches nothing stops the run with a message naming it: we never guess.

| image URI pattern (regex)                              | local entry point                                   |
|--------------------------------------------------------|-----------------------------------------------------|
| ``clinical-ml-(processing|training|inference)``        | this venv's python (`sys.executable`)               |
| ``sagemaker-scikit-learn|sklearn``                     | this venv's python                                  |
| ``xgboost|pytorch|huggingface``                        | this venv's python                                  |
| ``sagemaker-base-python|python``                       | this venv's python                                  |

Inside the command (``ContainerEntrypoint`` + ``ContainerArguments`` for processing; the script
named by the training job for training):

| in the container                         | locally                                               |
|------------------------------------------|-------------------------------------------------------|
| ``python``, ``python3``, ``pythonX.Y``   | ``sys.executable``                                    |
| ``clinical-ml <cmd>``                    | ``sys.executable -m clinical_ml.cli <cmd>``           |
| ``/opt/ml/processing/input/code/x.py``   | the ``code`` input's script, found in the local fake S3 (what was uploaded) or, by key suffix, in this repo |
| any other ``/opt/ml/...`` path           | the step's folder in the run (see ``runner.StepPaths``) |
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

from clinical_ml.io import DataError

REPO_ROOT = Path(__file__).resolve().parents[2]

IMAGE_TABLE: list[tuple[str, str]] = [
    (r"clinical-ml-(processing|training|inference)", "python"),
    (r"sagemaker-scikit-learn|sklearn", "python"),
    (r"xgboost|pytorch|huggingface", "python"),
    (r"sagemaker-base-python|(^|/)python[:@]", "python"),
]

_PY = re.compile(r"^(.*/)?python(3(\.\d+)?)?$")


def entry_point_for_image(image: str) -> str:
    for pattern, kind in IMAGE_TABLE:
        if re.search(pattern, image or ""):
            return kind
    raise DataError(f"image {image!r} has no local entry point; add it to IMAGE_TABLE in "
                    "pipelines/local/entrypoints.py (see docs/local-runner.md)")


def local_command(cmd: list[str]) -> list[str]:
    """Map a container command line's interpreter to this machine's (table above)."""
    if not cmd:
        return cmd
    head = cmd[0]
    if _PY.match(head):
        return [sys.executable, *cmd[1:]]
    if Path(head).name == "clinical-ml":
        return [sys.executable, "-m", "clinical_ml.cli", *cmd[1:]]
    return list(cmd)


def find_in_repo(key: str) -> Path | None:
    """The repo file whose path is the longest suffix of ``key`` (an S3 key or container path).

    ``s3://bucket/prefix/code/processing/build_tasks.py`` -> ``<repo>/processing/build_tasks.py``.
    """
    parts = [p for p in key.replace("s3://", "").split("/") if p]
    for i in range(len(parts)):
        cand = REPO_ROOT.joinpath(*parts[i:])
        if cand.is_file():
            return cand
    return None


def resolve_code(uri: str, localize) -> Path:
    """Where a step's code (an S3 URI or local path) lives on this machine."""
    local = Path(localize(uri))
    if local.exists():
        return local
    found = find_in_repo(uri)
    if found is not None:
        return found
    raise DataError(f"code {uri!r}: not in the local S3 stand-in ({local}) and no file of this repo "
                    "matches its key; point the definition at a script in this repo")
