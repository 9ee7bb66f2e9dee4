"""Data windows: build tasks only from the admissions whose ADMITTIME falls in ``[start, end)``.

The pipeline's ``DataWindowStart``/``DataWindowEnd`` parameters reach build-tasks as
``--data-window-start/--data-window-end``: an ISO 8601 time (``Z``/offset; naive = UTC) or
``none`` (also ``""``) for an open end. Half-open like the drift windows, so consecutive windows
never share an admission.

Time axis: ADMITTIME as released. MIMIC-III shifts every patient's dates by its own random
offset (into 2100-2200), consistent within a patient only, so a window over ADMITTIME is a
window over anonymized time: on the real data it selects a pseudo-random set of patients, not
a calendar period (the synthetic eras of ``clinical-ml synth --later-fraction`` do lie on it).
The real data's one true period marker is ICUSTAYS.DBSOURCE (``carevue`` 2001-2008,
``metavision`` 2008-2012); docs/retraining.md says how to use it instead.

Only index admissions are windowed: ADMISSIONS stays whole for the outcomes that follow them
(a 30-day readmission after the window end still labels an admission inside it).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

from clinical_ml.io import DataError
from clinical_ml.sql import Sql, join, literal, raw, render

OPEN = ("", "none", "null")


def parse_bound(value: str | datetime | None, flag: str) -> datetime | None:
    """One bound -> naive UTC datetime (how DuckDB compares TIMESTAMP), or None when open."""
    if value is None or (isinstance(value, str) and value.strip().lower() in OPEN):
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        try:
            dt = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise DataError(f"{flag} {value!r}: expected an ISO 8601 time (e.g. 2200-01-01T00:00:00Z) "
                            "or 'none'") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt


@dataclass(frozen=True)
class Window:
    start: datetime | None = None
    end: datetime | None = None

    @classmethod
    def parse(cls, start: str | datetime | None, end: str | datetime | None) -> "Window":
        w = cls(parse_bound(start, "--data-window-start"), parse_bound(end, "--data-window-end"))
        if w.start is not None and w.end is not None and w.end <= w.start:
            raise DataError(f"--data-window-end {w.end.isoformat()} must be after "
                            f"--data-window-start {w.start.isoformat()} (the window is [start, end))")
        return w

    @property
    def is_open(self) -> bool:
        return self.start is None and self.end is None

    def predicate(self, col: str) -> Sql:
        """SQL ``col`` in [start, end); ``col`` is an expression written by this code."""
        parts = []
        if self.start is not None:
            parts.append(render("{c} >= CAST({t} AS TIMESTAMP)", c=raw(col), t=literal(self.start.isoformat(" "))))
        if self.end is not None:
            parts.append(render("{c} < CAST({t} AS TIMESTAMP)", c=raw(col), t=literal(self.end.isoformat(" "))))
        return join(" AND ", parts) if parts else raw("TRUE")

    def manifest(self) -> dict:
        def fmt(d: datetime | None) -> str | None:
            return None if d is None else d.strftime("%Y-%m-%dT%H:%M:%SZ")
        return {"start": fmt(self.start), "end": fmt(self.end), "column": "ADMISSIONS.ADMITTIME",
                "interval": "[start, end)"}


def _bound_text(value: str | None) -> str:
    """A window bound as the pipeline passes it: ISO ``...Z`` or ``none``."""
    d = parse_bound(value, "data window")
    return "none" if d is None else d.strftime("%Y-%m-%dT%H:%M:%SZ")


def retraining_window(trigger: str, start: str | None, end: str | None,
                      champion: dict | None) -> dict:
    """The window an execution trains and evaluates on: ``{"start", "end", "rule", "reason"}``.

    Why a rule and not a parameter: EventBridge starts a drift retraining with static
    parameters, so the execution finds its window itself (the DriftGuard step runs this).

    1. ``DataWindowStart``/``DataWindowEnd`` given (not ``none``): those, for every trigger.
    2. ``Trigger=drift`` without them: the data newer than the production model's training
       window, ``[champion's DataWindowEnd, open)``. The alarm says live traffic no longer
       looks like the champion's training data; the admissions after that window are the
       traffic the alarm saw. (Capture time cannot be mapped to ADMITTIME: MIMIC's dates are
       shifted per patient.)
    3. Otherwise (manual/schedule, or a champion whose window is open-ended): everything.
    """
    s, e = _bound_text(start), _bound_text(end)
    Window.parse(s, e)  # a reversed window fails here, before any data step
    if s != "none" or e != "none":
        return {"start": s, "end": e, "rule": "parameters", "reason": "DataWindowStart/DataWindowEnd given"}
    if trigger != "drift":
        return {"start": s, "end": e, "rule": "all", "reason": f"trigger={trigger}: every admission"}
    if champion is None:
        return {"start": s, "end": e, "rule": "all", "reason": "no production model: every admission"}
    meta = champion.get("CustomerMetadataProperties") or {}
    name = f"version {champion.get('ModelPackageVersion', '?')} of {champion.get('ModelPackageGroupName', '?')}"
    after = _bound_text(meta.get("data_window_end"))
    if after == "none":
        return {"start": s, "end": e, "rule": "all",
                "reason": f"the production model ({name}) was trained on an open-ended window: every admission"}
    return {"start": after, "end": "none", "rule": "after-champion",
            "reason": f"admissions from {after}: newer than the production model's window "
                      f"({name}, [{meta.get('data_window_start', 'none')}, {after}))"}
