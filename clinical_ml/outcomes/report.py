"""report.html: one self-contained page (PNG plots embedded as base64, no external assets)
with ROC, precision-recall and calibration plots per binary task and the metric tables with
their bootstrap CIs, model comparisons and subgroup results; with note features, a section
comparing the table model with its with-notes variant (table and ROC curves)."""
from __future__ import annotations

import base64
import html
import io

import numpy as np

from clinical_ml.outcomes import metrics as mt

MODEL_NAMES = {"xgboost": "XGBoost", "lr": "Logistic regression", "gru": "GRU"}
_CSS = """body{font-family:system-ui,sans-serif;margin:2em;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
.muted{color:#888}img{width:32%;min-width:280px}"""


def _fmt(res: dict | None) -> str:
    if not res:
        return "<span class=muted>-</span>"
    if res.get("value") is None:
        return f"<span class=muted>{html.escape(str(res.get('undefined', 'n/a')))}</span>"
    s = f"{res['value']:.3f}"
    if "ci_low" in res:
        s += f" <span class=muted>({res['ci_low']:.3f}-{res['ci_high']:.3f})</span>"
    return s


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return f'<img alt="plot" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _plots(task: str, preds: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import precision_recall_curve, roc_curve

    y = preds["y"]
    models = [m for m in MODEL_NAMES if m in preds]
    figs = []
    fig, ax = plt.subplots(figsize=(4, 4))
    for m in models:
        fpr, tpr, _ = roc_curve(y, preds[m])
        ax.plot(fpr, tpr, label=f"{MODEL_NAMES[m]} ({mt.auroc(y, preds[m]):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(title=f"{task}: ROC", xlabel="1 - specificity", ylabel="sensitivity")
    ax.legend(fontsize=8)
    figs.append(_png(fig))
    fig, ax = plt.subplots(figsize=(4, 4))
    for m in models:
        prec, rec, _ = precision_recall_curve(y, preds[m])
        ax.plot(rec, prec, label=f"{MODEL_NAMES[m]} ({mt.auprc(y, preds[m]):.3f})")
    ax.axhline(y.mean(), ls=":", color="grey")
    ax.set(title=f"{task}: precision-recall", xlabel="recall", ylabel="precision", ylim=(0, 1.02))
    ax.legend(fontsize=8)
    figs.append(_png(fig))
    fig, ax = plt.subplots(figsize=(4, 4))
    for m in models:
        b = mt.ece_bins(preds[m])
        n = np.bincount(b, minlength=mt.ECE_BINS)
        keep = n > 0
        mp = np.bincount(b, weights=preds[m], minlength=mt.ECE_BINS)[keep] / n[keep]
        my = np.bincount(b, weights=y, minlength=mt.ECE_BINS)[keep] / n[keep]
        ax.plot(mp, my, "o-", ms=3, label=MODEL_NAMES[m])
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(title=f"{task}: calibration ({mt.ECE_BINS} bins)", xlabel="mean predicted",
           ylabel="observed fraction", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    figs.append(_png(fig))
    return "".join(figs)


def _metric_table(entry: dict) -> str:
    models = [m for m in MODEL_NAMES if m in entry]
    metrics = [k for k in entry[models[0]] if k != "label_auroc"] if models else []
    rows = ["<tr><th>model</th>" + "".join(f"<th>{html.escape(k)}</th>" for k in metrics) + "</tr>"]
    for m in models:
        rows.append(f"<tr><td>{MODEL_NAMES[m]}</td>" +
                    "".join(f"<td>{_fmt(entry[m].get(k))}</td>" for k in metrics) + "</tr>")
    out = "<table>" + "".join(rows) + "</table>"
    comps = entry.get("comparisons", {})
    if comps:
        out += "<table><tr><th>paired difference</th><th>value (95% CI)</th></tr>" + "".join(
            f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in comps.items()) + "</table>"
    return out


def _subgroup_table(sub: dict) -> str:
    metric = sub.get("metric", "auroc")
    rows = [f"<tr><th>group</th><th>value</th><th>n</th><th>positives</th><th>{html.escape(metric)} (95% CI)</th></tr>"]
    for col, table in sub.items():
        if col in ("model", "metric"):
            continue
        if "skipped" in table and not isinstance(table["skipped"], dict):
            rows.append(f"<tr><td>{html.escape(col)}</td><td colspan=4 class=muted>{html.escape(table['skipped'])}</td></tr>")
            continue
        for value, e in table.items():
            res = _fmt(e.get(metric)) if metric in e else f"<span class=muted>skipped: {html.escape(e.get('skipped', ''))}</span>"
            rows.append(f"<tr><td>{html.escape(col)}</td><td>{html.escape(str(value))}</td><td>{e['n']}</td>"
                        f"<td>{e.get('n_pos', '')}</td><td>{res}</td></tr>")
    return "<table>" + "".join(rows) + "</table>"


def _fmt_diff(res: dict) -> str:
    """A signed difference with its CI written "a to b" (a dash would read as a minus sign)."""
    if not res or res.get("value") is None:
        return _fmt(res)
    ci = f" <span class=muted>({res['ci_low']:+.3f} to {res['ci_high']:+.3f})</span>" if "ci_low" in res else ""
    return f"{res['value']:+.3f}{ci}"


def _note_plot(task: str, pr: dict) -> str:
    """ROC curves of the table model and its with-notes variant on the same test rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(4, 4))
    for key, name in (("without", "table features"), ("with", "table + note features")):
        fpr, tpr, _ = roc_curve(pr["y"], pr[key])
        ax.plot(fpr, tpr, label=f"{name} ({mt.auroc(pr['y'], pr[key]):.3f})")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(title=f"{task}: ROC, XGBoost with/without notes", xlabel="1 - specificity", ylabel="sensitivity")
    ax.legend(fontsize=8)
    return _png(fig)


def _note_section(block: dict, note_preds: dict) -> str:
    """What the note features change (evaluation.json ``note_features``; not in the gate)."""
    rows = ["<tr><th>task</th><th>n</th><th>rows with notes</th><th>note columns</th><th>metric</th>"
            "<th>without notes</th><th>with notes</th><th>difference (95% CI)</th></tr>"]
    for task, e in block.get("tasks", {}).items():
        for m in block.get("metrics", ["auroc"]):
            rows.append(f"<tr><td>{html.escape(task)}</td><td>{e['n']}</td><td>{e['rows_with_notes']}</td>"
                        f"<td>{e['note_columns']}</td><td>{html.escape(m)}</td><td>{_fmt(e[m]['without'])}</td>"
                        f"<td>{_fmt(e[m]['with'])}</td><td>{_fmt_diff(e[m]['difference'])}</td></tr>")
    out = ["<h2>Note features (XGBoost with and without; not in the gate)</h2>",
           "<p>Same test rows, paired bootstrap; the served model uses table features only. "
           f"{html.escape(block.get('fill', ''))}. ihm: notes charted before 48 h only; readmit: every "
           "note, the discharge summary included.</p>", "<table>" + "".join(rows) + "</table>"]
    out += [f"<p class=muted>{html.escape(t)}: {html.escape(why)}</p>" for t, why in block.get("skipped", {}).items()]
    plots = [_note_plot(t, note_preds[t]) for t in block.get("tasks", {}) if t in note_preds]
    if plots:
        out.append("<div>" + "".join(plots) + "</div>")
    return "\n".join(out)


def render(evaluation: dict, preds: dict, note_preds: dict | None = None,
           title: str = "Outcome model evaluation") -> str:
    b = evaluation.get("bootstrap", {})
    parts = [f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
             f"<style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>",
             f"<p>95% percentile bootstrap intervals over {b.get('resamples')} resamples of test rows "
             f"(seed {b.get('seed')}); subgroups with fewer than {evaluation.get('subgroup_min_n')} rows "
             "or one class are reported as skipped.</p>",
             "<p class=muted>model code " + html.escape(str(evaluation.get("model", {}).get("code_version")))
             + ", training data manifest sha256 "
             + html.escape(str(evaluation.get("model", {}).get("data_manifest_sha256"))) + "</p>",
             "<h2>Gate (XGBoost point estimates)</h2><table><tr><th>metric</th><th>value</th></tr>" +
             "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in evaluation["gate"].items()) +
             "</table>"]
    for task, entry in evaluation["tasks"].items():
        parts.append(f"<h2>{html.escape(task)} <span class=muted>({entry['type']}, n={entry['n']}"
                     + (f", prevalence {entry['prevalence']:.3f}" if "prevalence" in entry else "") + ")</span></h2>")
        if entry["type"] == "binary" and task in preds:
            parts.append(f"<div>{_plots(task, preds[task])}</div>")
        parts.append(_metric_table(entry))
        if entry["type"] == "multilabel" and "xgboost" in entry:
            per = entry["xgboost"].get("label_auroc", {})
            parts.append("<details><summary>per-phenotype AUROC (XGBoost)</summary><table>" + "".join(
                f"<tr><td>{html.escape(k)}</td><td>{_fmt(v)}</td></tr>" for k, v in per.items()) + "</table></details>")
        if "subgroups" in entry:
            parts.append(f"<h3>Subgroups ({MODEL_NAMES.get(entry['subgroups'].get('model'), '')})</h3>")
            parts.append(_subgroup_table(entry["subgroups"]))
    if "note_features" in evaluation:
        parts.append(_note_section(evaluation["note_features"], note_preds or {}))
    parts.append("</body></html>")
    return "\n".join(parts)
