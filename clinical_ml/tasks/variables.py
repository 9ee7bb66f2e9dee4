"""The 17 mimic3-benchmarks variables: itemid map, unit cleaning, valid ranges, channel names.

Package data (``resources/``, derived from mimic3-benchmarks' MIT-licensed resource files, so
the builder needs nothing outside the package at run time):

- ``variables.csv``: the 114 itemids with ``STATUS == ready`` and ``COUNT > 0`` in
  ``itemid_to_variable_map.csv`` (the benchmark's ``read_itemid_to_variable_map``);
- ``variable_ranges.csv``: outlier/valid ranges of the 17 variables;
- ``channel_info.json``: the categorical value maps (Glasgow coma scale components).

Cleaning follows ``mimic3benchmark/preprocessing.py::clean_events`` rule by rule, written as
one SQL CASE per variable so DuckDB applies it while streaming the events:

- SBP/DBP ``"120/80"`` strings give the first/second number; CRR text -> 0/1;
- FiO2: percentages (> 1.0, unit not torr) divided by 100 (the reference's own "correct way";
  its Python-3 code path divides *every* value without a torr unit, see docs/tasks.md);
- Glucose/pH: non-numeric text -> dropped; O2 saturation: also x100 when <= 1;
- Temperature: converted F->C when value >= 79 (the reference's ``'F' in s.lower()`` test can
  never be true, so only the value rule acts, and we keep that behaviour);
- Weight: oz -> /16 then lb -> kg (x0.453592), by unit or label; Height: inches -> cm, rounded.

Values outside ``variable_ranges`` are *kept* exactly as the reference keeps them (its
``remove_outliers_for_variable`` is never called in the episode extraction); the builder counts
them per variable in the manifest. Values the reference would crash on (non-numeric text for a
numeric variable) are dropped and counted.
"""
from __future__ import annotations

import csv
import json
from functools import lru_cache
from importlib import resources
from typing import NamedTuple

from clinical_ml.sql import Sql, literal, raw
from clinical_ml.tasks.io import snake

_PKG = "clinical_ml.tasks.resources"
_NUM_RE = r"^(\d+(\.\d*)?|\.\d+)$"  # the reference's clean_lab / clean_o2sat regex


class Channel(NamedTuple):
    variable: str        # name as in the itemid map, e.g. "Heart Rate"
    name: str            # snake_case column name, e.g. "heart_rate"
    categorical: bool
    values: dict[str, float]  # categorical text -> numeric code (channel_info.json)


def _open(name: str):
    return resources.files(_PKG).joinpath(name).open("r", encoding="utf-8")


@lru_cache(maxsize=1)
def itemid_map() -> list[tuple[int, str, str, str]]:
    """``(itemid, variable, mimic_label, linksto)`` for the 114 benchmark itemids."""
    with _open("variables.csv") as f:
        return [(int(r["itemid"]), r["variable"], r["mimic_label"], r["linksto"])
                for r in csv.DictReader(f)]


@lru_cache(maxsize=1)
def channels() -> tuple[Channel, ...]:
    """The 17 channels in the benchmark's (sorted) order."""
    with _open("channel_info.json") as f:
        info = json.load(f)
    out = []
    for variable in sorted(info):
        spec = info[variable]
        cat = bool(spec.get("possible_values"))
        out.append(Channel(variable, snake(variable), cat,
                           {k: float(v) for k, v in spec.get("values", {}).items()} if cat else {}))
    return tuple(out)


def channel_names() -> list[str]:
    return [c.name for c in channels()]


@lru_cache(maxsize=1)
def ranges() -> dict[str, dict[str, float]]:
    """variable -> {outlier_low, valid_low, impute, valid_high, outlier_high}."""
    with _open("variable_ranges.csv") as f:
        return {r["variable"]: {k: float(v) for k, v in r.items() if k != "variable"}
                for r in csv.DictReader(f)}


def _num(expr: str = "value") -> str:
    return f"TRY_CAST({expr} AS DOUBLE)"


def _strict_num(expr: str = "value") -> str:
    """Numeric only when the text matches the reference's number regex (else NULL)."""
    return f"CASE WHEN regexp_full_match(trim({expr}), {literal(_NUM_RE)}) THEN {_num(f'trim({expr})')} END"


# The SQL fragments below are written by this module; every value in them (variable names,
# category texts, codes, range bounds) goes through clinical_ml.sql.literal.
def clean_value_sql() -> Sql:
    """SQL expression: cleaned numeric value of an event row (``variable``, ``value``,
    ``uom`` lower-cased unit, ``label`` lower-cased MIMIC label); NULL means dropped."""
    v = _num()
    fio2 = f"CASE WHEN {v} > 1.0 AND NOT contains(uom, 'torr') THEN {v} / 100.0 ELSE {v} END"
    o2 = (f"CASE WHEN {_strict_num()} <= 1 THEN {_strict_num()} * 100.0 ELSE {_strict_num()} END")
    oz = "(contains(uom, 'oz') OR contains(label, 'oz'))"
    lb = "(contains(uom, 'lb') OR contains(label, 'lb'))"
    weight = (f"CASE WHEN {oz} THEN {v} / 16.0 * 0.453592 WHEN {lb} THEN {v} * 0.453592 "
              f"ELSE {v} END")
    height = (f"CASE WHEN contains(uom, 'in') OR contains(label, 'in') "
              f"THEN round({v} * 2.54) ELSE {v} END")
    temp = f"CASE WHEN {v} >= 79 THEN ({v} - 32) * 5.0 / 9 ELSE {v} END"
    sbp = (f"CASE WHEN contains(value, '/') THEN TRY_CAST(regexp_extract(value, '^(\\d+)/(\\d+)$', 1) AS DOUBLE) "
           f"ELSE {v} END")
    dbp = (f"CASE WHEN contains(value, '/') THEN TRY_CAST(regexp_extract(value, '^(\\d+)/(\\d+)$', 2) AS DOUBLE) "
           f"ELSE {v} END")
    crr = ("CASE WHEN value IN ('Normal <3 secs', 'Brisk') THEN 0.0 "
           "WHEN value IN ('Abnormal >3 secs', 'Delayed') THEN 1.0 END")
    rules = {
        "Capillary refill rate": crr,
        "Diastolic blood pressure": dbp,
        "Systolic blood pressure": sbp,
        "Fraction inspired oxygen": fio2,
        "Oxygen saturation": o2,
        "Glucose": _strict_num(),
        "pH": _strict_num(),
        "Temperature": temp,
        "Weight": weight,
        "Height": height,
    }
    cases = []
    for ch in channels():
        if ch.categorical and ch.variable not in rules:
            m = " ".join(f"WHEN {literal(k)} THEN {literal(val)}" for k, val in ch.values.items())
            cases.append(f"WHEN {literal(ch.variable)} THEN (CASE value {m} END)")
        else:
            cases.append(f"WHEN {literal(ch.variable)} THEN ({rules.get(ch.variable, v)})")
    return raw("CASE variable " + " ".join(cases) + " END")


# Categorical in channel_info.json but cleaned to numbers first (capillary refill -> 0/1); its
# text value is then the number as the reference writes it ("0.0", "1.0").
CLEANED_CATEGORICAL = ("Capillary refill rate",)


def categorical_value_sql(variable: str = "variable", value: str = "value_str") -> Sql:
    """SQL: numeric code of a categorical channel's text (channel_info.json); NULL if unknown.
    ``variable`` and ``value`` are column expressions written by the caller's code."""
    cases = []
    for ch in channels():
        if ch.categorical:
            m = " ".join(f"WHEN {literal(k)} THEN {literal(val)}" for k, val in ch.values.items())
            cases.append(f"WHEN {literal(ch.variable)} THEN (CASE {value} {m} END)")
    return raw(f"CASE {variable} " + " ".join(cases) + " END")


def ranges_sql() -> Sql:
    """A VALUES list ``(variable, outlier_low, valid_low, valid_high, outlier_high)``."""
    cols = ("outlier_low", "valid_low", "valid_high", "outlier_high")
    rows = ["(" + ", ".join([literal(k)] + [literal(float(r[c])) for c in cols]) + ")"
            for k, r in sorted(ranges().items())]
    return raw("VALUES " + ", ".join(rows))
