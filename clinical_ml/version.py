"""Which code produced an artifact: recorded in model metadata, lineage and the audit trail."""
from __future__ import annotations

import os
import subprocess
from importlib import metadata as _md
from pathlib import Path


def code_version() -> str:
    """``CLINICAL_ML_CODE_VERSION`` (set in images), else the git commit, else the package version."""
    env = os.environ.get("CLINICAL_ML_CODE_VERSION")
    if env:
        return env
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
        if out.returncode == 0 and out.stdout.strip():
            dirty = subprocess.run(["git", "status", "--porcelain", "--", "."], cwd=here.parent,
                                   capture_output=True, text=True, timeout=5).stdout.strip()
            return f"git:{out.stdout.strip()}" + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        return f"clinical-ml=={_md.version('clinical-ml')}"
    except _md.PackageNotFoundError:
        return "unknown"
