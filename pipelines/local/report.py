"""``summary.json`` and ``report.html`` of a local run: what ran, how long, what it produced."""
from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from clinical_ml.io import write_json, write_text
from clinical_ml.registry import to_json
from pipelines.local import report_plots as rp

_STYLE = ("body{font-family:system-ui,sans-serif;margin:2em;max-width:70em}table{border-collapse:collapse;"
          "margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}"
          ".Failed{background:#fdd}.Succeeded,.Cached,.Reused{background:#efe}.NotExecuted,.NotStarted{color:#888}"
          "figure{margin:0 0 1.5em}figcaption{color:#444;font-size:.9em;max-width:40em}img{max-width:100%}")
_CAPTIONS = {
    "drift score over windows": "Drift score of each traffic window (points coloured by drift status; dashed: "
                                "the alarm threshold; dotted: the promotion of the retrained model).",
    "AUROC over windows": "AUROC of each window's labelled requests with its 95% bootstrap CI; a window "
                          "without labels is a gap (\u201cno labels\u201d). Dotted: the promotion.",
}


def _table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(
        f"<tr class='{html.escape(str(r.get('status', '')))}'>" +
        "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _img(alt: str, png: bytes) -> str:
    src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
    return (f'<figure><img alt="{html.escape(alt)}" src="{src}">'
            f"<figcaption>{html.escape(_CAPTIONS[alt])}</figcaption></figure>")


def _timeline(summary: dict[str, Any]) -> list[str]:
    """Plots and table of summary["timeline"], then the promotion decision; nothing when absent."""
    parts = []
    timeline = rp.rows_of(summary.get("timeline"))
    if timeline:
        parts += ["<section id='timeline'><h2>Timeline</h2>", _img("drift score over windows", rp.drift_png(timeline)),
                  _img("AUROC over windows", rp.auroc_png(timeline)),
                  _table(rp.table_rows(timeline), ["window", "label", "model", "phase", "drift_score", "drift_status",
                                                   "drift_threshold", "auroc", "auroc_ci", "rows", "labelled"]),
                  "</section>"]
    if isinstance(summary.get("promotion"), dict):
        parts.append(f"<h2>Promotion</h2><p>{html.escape(rp.promotion_text(summary['promotion']))}</p>")
    return parts


def render_html(summary: dict[str, Any]) -> str:
    parts = [f"<!doctype html><meta charset='utf-8'><title>clinical-ml local run</title><style>{_STYLE}</style>",
             "<h1>clinical-ml local run</h1>"]
    for ex in summary.get("executions", []):
        parts.append(f"<h2>Execution {html.escape(ex['execution_id'])} &mdash; trigger "
                     f"{html.escape(str(ex.get('trigger')))}, {html.escape(ex['status'])}, {ex.get('duration_s', 0):.1f}s</h2>")
        if ex.get("failure"):
            f = ex["failure"]
            parts.append(f"<p class='Failed'>Step {html.escape(f['step'])}: {html.escape(f['message'])}<br>"
                         f"log: {html.escape(f['log'])}</p>")
        parts.append(_table(ex.get("steps", []), ["name", "type", "status", "duration_s", "message"]))
    if summary.get("registered"):
        parts.append("<h2>Registered model versions</h2>")
        rows = [{**r, "metrics": json.dumps(r.get("metrics", {}))[:300]} for r in summary["registered"]]
        parts.append(_table(rows, ["group", "version", "approval", "execution_id", "metrics"]))
    if summary.get("endpoint"):
        parts.append(f"<h2>Endpoint</h2><pre>{html.escape(json.dumps(summary['endpoint'], indent=2))}</pre>")
    parts += _timeline(summary)
    if summary.get("drift"):
        parts.append("<h2>Drift</h2><details><summary>drift results (JSON)</summary>"
                     f"<pre>{html.escape(json.dumps(summary['drift'], indent=2)[:20000])}</pre></details>")
    if summary.get("missing"):
        parts.append("<h2>Missing pieces</h2><ul>" + "".join(f"<li>{html.escape(m)}</li>" for m in summary["missing"]) + "</ul>")
    return "\n".join(parts) + "\n"


def write_report(folder: Path, summary: dict[str, Any]) -> None:
    summary = to_json(summary)
    write_json(folder / "summary.json", summary)
    write_text(folder / "report.html", render_html(summary))
