"""scripts/check_report_browser.py: a real headless Chromium decodes the report's timeline plots."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.local.report import write_report

CHECKER = Path(__file__).resolve().parents[1] / "scripts" / "check_report_browser.py"
BROWSER = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
pytestmark = pytest.mark.skipif(BROWSER is None, reason="no chromium binary on PATH (chromium / chromium-browser); "
                                                        "Debian: apt-get install chromium")
TIMELINE = [
    {"window": "normal", "label": "normal traffic", "model": "outcomes v1", "phase": "before promotion",
     "drift_score": 0.04, "drift_status": "ok", "drift_threshold": 0.1, "auroc": 0.91, "auroc_ci": [0.85, 0.95],
     "rows": 300, "labelled": 300},
    {"window": "shifted", "label": "new period", "model": "outcomes v1", "phase": "before promotion",
     "drift_score": 0.3, "drift_status": "violations", "drift_threshold": 0.1, "auroc": None, "auroc_ci": None,
     "rows": 200, "labelled": 0},
    {"window": "after-promotion", "label": "after promotion", "model": "outcomes v2", "phase": "after promotion",
     "drift_score": 0.08, "drift_status": "ok", "drift_threshold": 0.1, "auroc": 0.86, "auroc_ci": [0.78, 0.93],
     "rows": 100, "labelled": 100},
]


def run_checker(report: Path, *args: str) -> tuple[int, dict]:
    res = subprocess.run([sys.executable, str(CHECKER), str(report), *args], capture_output=True, text=True,
                         timeout=120)
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1, res.stdout + res.stderr  # one line of JSON
    return res.returncode, json.loads(lines[0])


def test_browser_decodes_both_timeline_images(tmp_path):
    write_report(tmp_path, {"executions": [], "timeline": TIMELINE, "promotion": {"promoted": True}})
    rc, out = run_checker(tmp_path / "report.html", "--min-images", "2")
    assert rc == 0 and out["ok"], out
    assert [i["alt"] for i in out["images"]] == ["drift score over windows", "AUROC over windows"]
    assert all(i["complete"] is True and i["naturalWidth"] > 0 for i in out["images"])
    assert "HeadlessChrome" in out["browser"]


def test_broken_image_or_no_timeline_fails(tmp_path):
    write_report(tmp_path, {"executions": [], "timeline": TIMELINE})
    page = (tmp_path / "report.html").read_text(encoding="utf-8")
    broken = tmp_path / "broken.html"  # the AUROC plot's bytes replaced by a PNG signature and garbage
    broken.write_text(re.sub(r'(alt="AUROC over windows" src="data:image/png;base64,)[^"]+',
                             r"\1iVBORw0KGgpub3QgYSBwbmc=", page), encoding="utf-8")
    rc, out = run_checker(broken)
    assert rc == 1 and not out["ok"] and out["failed"] == ["AUROC over windows"], out
    write_report(tmp_path, {"executions": []})
    rc, out = run_checker(tmp_path / "report.html")
    assert rc == 1 and not out["ok"] and out["images"] == [], out
