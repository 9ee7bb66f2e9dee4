"""Shared test fixtures.

Reference data (`../shared/data` beside the checkout) is optional: tests that read it use the
``shared_data`` fixture and skip with a reason when it is absent.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CLINICAL_ML_SHARED_DATA", REPO.parent / "shared" / "data"))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; skips the test when the reference data is not beside the checkout."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (optional; see README)")
    return SHARED_DATA


def shared_subdir(shared: Path, name: str) -> Path:
    p = shared / name
    if not p.exists():
        pytest.skip(f"{p} not present")
    return p
