"""The note half of ``make demo``: what ExtractNotes and NoteFeatures did, and a sharding check.

ExtractNotes runs as 2 instances in the demo (``ExtractNotesInstanceCount=2``; the runner plays
them one after another). The check extracts the first ``CHECK_NOTES`` notes again in one
single-shard run with the same model and compares their lines with the sharded output, byte for
byte: sharding must not change what a note gets (a full second pass would double the step).
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from clinical_ml.io import read_json

CHECK_NOTES = 64  # a fixed sample: enough notes to reach both shards, a few seconds


def _lines_by_id(folder: Path) -> dict[tuple, str]:
    from clinical_ml.notes.extracted import read_part_lines

    return {key: line for p in sorted(folder.glob("part-*.jsonl")) for key, line in read_part_lines(p)}


def sharding_check(run_dir: Path, log: Path, n: int = CHECK_NOTES) -> dict[str, Any]:
    """Single-shard extraction of the first ``n`` notes vs the sharded step's lines for them."""
    step = run_dir / "steps" / "ExtractNotes"
    parts = sorted((step / "input" / "notes").glob("part-*.jsonl"))
    if not parts:
        return {"checked": 0, "why": "no note shards"}
    first = []
    for p in parts:
        first += p.read_text(encoding="utf-8").splitlines()[: n - len(first)]
        if len(first) >= n:
            break
    sharded = _lines_by_id(step / "output" / "extracted")
    log.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo-shard-check-") as tmp:
        notes = Path(tmp) / "notes"
        notes.mkdir()
        (notes / "part-00000.jsonl").write_text("\n".join(first) + "\n", encoding="utf-8")
        with open(log, "ab") as f:
            rc = subprocess.run([sys.executable, "-m", "clinical_ml.cli", "extract-notes", "--model",
                                 str(step / "input" / "model"), "--notes", str(notes), "--output", str(Path(tmp) / "out"),
                                 "--num-shards", "1", "--shard-index", "0", "--stage", "extract", "--workers", "1",
                                 "--threads", "1"],  # two threads on two busy cores: 2x slower
                                stdout=f, stderr=subprocess.STDOUT).returncode
        if rc != 0:
            return {"checked": 0, "why": f"single-shard extraction failed (exit {rc}; log {log})"}
        single = _lines_by_id(Path(tmp) / "out" / "extracted")
    differ = sorted(k for k, line in single.items() if sharded.get(k) != line)
    return {"checked": len(single), "identical": len(single) - len(differ), "differ": len(differ)}


def notes_summary(run_dir: Path) -> dict[str, Any]:
    """Counts and speed of ExtractNotes, the feature sets, and what note features changed."""
    steps = run_dir / "steps"
    out: dict[str, Any] = {}
    manifests = sorted((steps / "ExtractNotes" / "output" / "extracted").glob("manifest-*.json"))
    shards = [read_json(m) for m in manifests]
    if shards:
        secs = sum(s["seconds"] for s in shards)
        notes = sum(s["notes"] for s in shards)
        out["extract"] = {"shards": len(shards), "notes": notes, "seconds": round(secs, 1),
                          "notes_per_s": round(notes / secs, 2) if secs else None}
    for name in ("ihm", "readmit"):
        m = steps / "NoteFeatures" / "output" / "features" / name / "manifest.json"
        if m.is_file():
            d = read_json(m)
            out.setdefault("features", {})[name] = {k: d.get(k) for k in (
                "admissions", "notes_used", "columns", "cut_hours", "allow_discharge_summary")}
    ev = steps / "EvaluateOutcomes" / "output" / "evaluation" / "evaluation.json"
    if ev.is_file():
        out["note_features_effect"] = read_json(ev).get("note_features")
    return out
