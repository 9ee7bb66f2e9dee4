"""The run report's timeline plots: drift score and AUROC per traffic window, as PNG bytes.

Figures are drawn on matplotlib's Agg canvas directly (no pyplot, no global backend state), so
they are the same bytes for the same timeline and take a fraction of a second. Every value may
be missing: a window without a drift score or an AUROC is a gap in its line, with a note.
"""
from __future__ import annotations

import io
import math
from typing import Any

BEFORE, AFTER = "before promotion", "after promotion"
STATUS_COLOURS = {"ok": "#2a9d4b", "drift": "#d62728", "violations": "#d62728"}
OTHER_COLOUR = "#7f7f7f"  # any other drift status (failed, no data, ...)
LINE_COLOUR = "#4c72b0"


def num(v: Any) -> float | None:
    """``v`` as a finite float, else None (None, NaN, strings and booleans included)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)


def ci(v: Any) -> tuple[float, float] | None:
    """A ``[low, high]`` list (or ``{"ci_low", "ci_high"}``) as two finite floats, else None."""
    if isinstance(v, dict):
        v = [v.get("ci_low"), v.get("ci_high")]
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        return None
    lo, hi = num(v[0]), num(v[1])
    return (lo, hi) if lo is not None and hi is not None and lo <= hi else None


def rows_of(timeline: Any) -> list[dict[str, Any]]:
    """The timeline's dict entries (anything else is dropped)."""
    return [r for r in timeline if isinstance(r, dict)] if isinstance(timeline, list) else []


def name_of(row: dict[str, Any], i: int) -> str:
    return str(row.get("window") or f"window {i + 1}")


def promotion_x(rows: list[dict[str, Any]]) -> float | None:
    """Half-way between the last "before promotion" window and the first "after promotion" one."""
    phases = [str(r.get("phase") or "").strip().lower() for r in rows]
    after = next((j for j, p in enumerate(phases) if p == AFTER), None)
    before = [i for i, p in enumerate(phases[:after]) if p == BEFORE] if after is not None else []
    return (before[-1] + after) / 2 if before else None


def _figure(rows: list[dict[str, Any]], title: str, ylabel: str):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 3.0), dpi=80)
    FigureCanvasAgg(fig)  # Agg, explicitly: headless and independent of MPLBACKEND
    ax = fig.add_subplot()
    # "$" would start mathtext (and a lone one can fail to render): window names are plain text
    names = [name_of(r, i).replace("$", r"\$")[:24] for i, r in enumerate(rows)]
    ax.set_xticks(range(len(rows)), names)
    ax.set_xlim(-0.5, len(rows) - 0.5)
    ax.set(title=title, ylabel=ylabel)
    ax.grid(axis="y", alpha=0.3)
    return fig, ax


def _mark_promotion(ax, rows: list[dict[str, Any]]) -> None:
    x = promotion_x(rows)
    if x is not None:
        ax.axvline(x, color="black", linestyle=":", linewidth=1.2)
        ax.text(x, 0.97, " promotion", transform=ax.get_xaxis_transform(), va="top", ha="left", fontsize=8)


def _note_gaps(ax, xs: list[int], text: str) -> None:
    for x in xs:
        ax.text(x, 0.04, text, transform=ax.get_xaxis_transform(), ha="center", va="bottom",
                fontsize=8, color=OTHER_COLOUR, style="italic")


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})  # no version string: stable bytes
    return buf.getvalue()


def drift_png(timeline: Any) -> bytes:
    """Drift score per window: line + points coloured by status, threshold dashed, promotion dotted."""
    from matplotlib.lines import Line2D

    rows = rows_of(timeline)
    fig, ax = _figure(rows, "Drift score per traffic window", "drift score")
    scores = [num(r.get("drift_score")) for r in rows]
    xs = range(len(rows))
    ax.plot(xs, [math.nan if s is None else s for s in scores], color=LINE_COLOUR, linewidth=1.2, zorder=1)
    statuses = [str(r.get("drift_status") or "unknown") for r in rows]
    colours = [STATUS_COLOURS.get(s, OTHER_COLOUR) for s in statuses]
    pts = [(x, s, c) for x, s, c in zip(xs, scores, colours) if s is not None]
    if pts:
        ax.scatter(*zip(*[(x, s) for x, s, _ in pts]), c=[c for *_, c in pts], s=50, zorder=2,
                   edgecolors="black", linewidths=0.5)
    thresholds = [num(r.get("drift_threshold")) for r in rows]
    handles = [Line2D([], [], marker="o", linestyle="", color=STATUS_COLOURS.get(s, OTHER_COLOUR), label=s)
               for s in dict.fromkeys(st for st, sc in zip(statuses, scores) if sc is not None)]
    if any(t is not None for t in thresholds):
        if len({t for t in thresholds if t is not None}) == 1:
            ax.axhline(next(t for t in thresholds if t is not None), color="#d62728", linestyle="--", linewidth=1)
        else:
            ax.plot(xs, [math.nan if t is None else t for t in thresholds], color="#d62728", linestyle="--",
                    linewidth=1, drawstyle="steps-mid")
        handles.append(Line2D([], [], color="#d62728", linestyle="--", label="threshold"))
    if max((v for v in scores if v is not None), default=0) > 5:  # one drifted window would flatten the rest
        ax.set_yscale("symlog", linthresh=1.0)
    ax.set_ylim(bottom=0)
    _note_gaps(ax, [x for x, s in zip(xs, scores) if s is None], "no score")
    _mark_promotion(ax, rows)
    if handles:
        ax.legend(handles=handles, fontsize=8, loc="best")
    return _png(fig)


def auroc_png(timeline: Any) -> bytes:
    """AUROC per window with its CI as error bars; a window without labels is a gap with a note."""
    rows = rows_of(timeline)
    fig, ax = _figure(rows, "AUROC per traffic window (95% CI)", "AUROC")
    aurocs = [num(r.get("auroc")) for r in rows]
    xs = list(range(len(rows)))
    ax.plot(xs, [math.nan if a is None else a for a in aurocs], color=LINE_COLOUR, linewidth=1.2, zorder=1)
    lows, highs = [], []
    for x, a, r in zip(xs, aurocs, rows):
        if a is None:
            continue
        c = ci(r.get("auroc_ci"))
        lo, hi = (max(0.0, a - c[0]), max(0.0, c[1] - a)) if c else (0.0, 0.0)
        ax.errorbar([x], [a], yerr=[[lo], [hi]], fmt="o", color=LINE_COLOUR, ecolor="black", elinewidth=1,
                    capsize=4, markersize=7, zorder=2)
        lows.append(a - lo)
        highs.append(a + hi)
    ax.axhline(0.5, color=OTHER_COLOUR, linestyle=":", linewidth=1)  # chance
    bottom = min([0.45, *lows]) - 0.05 if lows else 0.0
    ax.set_ylim(max(0.0, bottom), 1.02)
    _note_gaps(ax, [x for x, a in zip(xs, aurocs) if a is None], "no labels")
    _mark_promotion(ax, rows)
    return _png(fig)


def fmt(v: Any, digits: int = 3) -> str:
    """A table cell: numbers rounded, a CI as ``[lo, hi]``, None as an empty cell."""
    if v is None:
        return ""
    if num(v) is not None and not isinstance(v, int):
        return f"{v:.{digits}f}"
    c = ci(v) if isinstance(v, (list, tuple, dict)) else None
    return f"[{c[0]:.{digits}f}, {c[1]:.{digits}f}]" if c else str(v)


def table_rows(timeline: Any) -> list[dict[str, str]]:
    """The timeline as display rows (plain strings, not yet escaped)."""
    return [{"window": name_of(r, i), **{k: fmt(r.get(k)) for k in (
        "label", "model", "phase", "drift_score", "drift_status", "drift_threshold", "auroc", "auroc_ci",
        "rows", "labelled")}} for i, r in enumerate(rows_of(timeline))]


def promotion_text(p: dict[str, Any]) -> str:
    """One sentence on CompareModels' decision (plain text, not yet escaped)."""
    promoted = p.get("promoted")
    head = "promoted" if promoted is True else "not promoted" if promoted is False else "decision unknown"
    parts = [f"Challenger {head}" + (f": {p['reason']}" if p.get("reason") else "") + "."]
    champ, chall = num(p.get("champion_auroc")), num(p.get("challenger_auroc"))
    if champ is not None or chall is not None:
        parts.append(f"AUROC on the new period: champion {fmt(champ) or 'n/a'}, challenger {fmt(chall) or 'n/a'}.")
    diff, lo, hi = num(p.get("difference")), num(p.get("ci_low")), num(p.get("ci_high"))
    if diff is not None:
        parts.append(f"Difference {diff:+.3f}" + (f" (95% CI {lo:+.3f} to {hi:+.3f})" if lo is not None
                                                  and hi is not None else "") + ".")
    return " ".join(parts)
