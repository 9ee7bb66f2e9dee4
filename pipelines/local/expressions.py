"""Evaluate the expressions of a SageMaker pipeline definition (schema 2020-12-01) locally.

A definition's Arguments hold plain JSON plus four kinds of expression, which SageMaker
resolves at execution time and so do we:

- ``{"Get": "Parameters.<name>"}``, ``{"Get": "Execution.<variable>"}``;
- ``{"Get": "Steps.<step>.<property path>"}`` (a step's Describe* response, e.g.
  ``ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri``, ``ModelArtifacts.S3ModelArtifacts``);
- ``{"Std:Join": {"On": sep, "Values": [...]}}``;
- ``{"Std:JsonGet": {"PropertyFile": {"Get": "Steps.<step>.PropertyFiles.<name>"} | "S3Uri": ..., "Path": "a.b[0]"}}``;

and condition objects (``Equals``, ``GreaterThan[OrEqualTo]``, ``LessThan[OrEqualTo]``, ``In``,
``Not``, ``Or``) in Condition steps.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clinical_ml.io import DataError

_TOKEN = re.compile(r"""\.?([A-Za-z_][A-Za-z0-9_]*)|\[\s*'([^']*)'\s*\]|\[\s*"([^"]*)"\s*\]|\[\s*(\d+)\s*\]""")


def parse_path(path: str) -> list[str | int]:
    """``Outputs['train'].S3Output.S3Uri`` / ``gate.auc`` / ``a[0].b`` -> tokens (str keys, int indexes)."""
    out: list[str | int] = []
    pos = 0
    path = path.strip()
    if path.startswith("$"):
        path = path[1:]
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise DataError(f"cannot parse property path {path!r} at {path[pos:]!r}")
        name, sq, dq, idx = m.groups()
        out.append(int(idx) if idx is not None else (name if name is not None else (sq if sq is not None else dq)))
        pos = m.end()
    return out


def walk(obj: Any, tokens: list[str | int], what: str) -> Any:
    """Follow tokens through dicts/lists; a string key on a list selects the item it names
    (``Outputs['train']`` is the output whose ``OutputName`` is ``train``, as in SageMaker)."""
    cur = obj
    for t in tokens:
        if isinstance(cur, list) and isinstance(t, str):
            hits = [x for x in cur if isinstance(x, dict) and t in
                    [v for k, v in x.items() if k.endswith("Name") or k == "Key"]]
            if not hits:
                raise DataError(f"{what}: no item named {t!r}")
            cur = hits[0]
        elif isinstance(cur, list):
            if not -len(cur) <= t < len(cur):
                raise DataError(f"{what}: index {t} out of range")
            cur = cur[t]
        elif isinstance(cur, dict):
            if t not in cur:
                raise DataError(f"{what}: no field {t!r} (have {', '.join(map(str, cur)) or 'nothing'})")
            cur = cur[t]
        else:
            raise DataError(f"{what}: cannot look up {t!r} in a {type(cur).__name__}")
    return cur


@dataclass
class Context:
    """What expressions can see: parameter values, execution variables, finished steps."""
    parameters: dict[str, Any]
    execution: dict[str, Any]
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)       # step -> Describe*-like properties
    property_files: dict[tuple[str, str], Path] = field(default_factory=dict)  # (step, name) -> local file
    localize: Callable[[str], str] = staticmethod(lambda u: u)

    def get(self, ref: str) -> Any:
        head, _, rest = ref.partition(".")
        if head == "Parameters":
            if rest not in self.parameters:
                raise DataError(f"definition refers to unknown parameter {rest!r}")
            return self.parameters[rest]
        if head == "Execution":
            if rest not in self.execution:
                raise DataError(f"unknown execution variable {rest!r}")
            return self.execution[rest]
        if head == "Steps":
            step, _, path = rest.partition(".")
            if step not in self.steps:
                raise DataError(f"step {step!r} has not run (referenced as {ref!r}); "
                                "is a dependency missing from the definition?")
            if path.startswith("PropertyFiles."):
                return {"__property_file__": (step, path.split(".", 1)[1])}
            return walk(self.steps[step], parse_path(path), f"{ref}")
        raise DataError(f"unsupported reference {ref!r}")


def resolve(value: Any, ctx: Context) -> Any:
    """Replace every expression inside ``value`` (recursively) by its value."""
    if isinstance(value, list):
        return [resolve(v, ctx) for v in value]
    if not isinstance(value, dict):
        return value
    if set(value) == {"Get"}:
        return ctx.get(value["Get"])
    if set(value) == {"Std:Join"}:
        spec = value["Std:Join"]
        return str(spec.get("On", "")).join(_to_str(resolve(v, ctx)) for v in spec.get("Values", []))
    if set(value) == {"Std:JsonGet"}:
        return json_get(value["Std:JsonGet"], ctx)
    return {k: resolve(v, ctx) for k, v in value.items()}


def _to_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def json_get(spec: dict[str, Any], ctx: Context) -> Any:
    path = spec.get("Path", "")
    if "PropertyFile" in spec:
        pf = resolve(spec["PropertyFile"], ctx)
        if not (isinstance(pf, dict) and "__property_file__" in pf):
            raise DataError(f"Std:JsonGet: PropertyFile must be a Steps.<step>.PropertyFiles.<name> reference, got {pf!r}")
        key = pf["__property_file__"]
        if key not in ctx.property_files:
            raise DataError(f"property file {key[1]!r} of step {key[0]!r} is not declared in that step's PropertyFiles")
        file = ctx.property_files[key]
    elif "S3Uri" in spec:
        file = Path(ctx.localize(str(resolve(spec["S3Uri"], ctx))))
    else:
        raise DataError(f"Std:JsonGet needs PropertyFile or S3Uri: {spec!r}")
    if not Path(file).is_file():
        raise DataError(f"{file}: property file missing (the step did not write it)")
    try:
        data = json.loads(Path(file).read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise DataError(f"{file}: not valid JSON ({e.msg})") from None
    return walk(data, parse_path(path), f"{file}:{path}")


_COMPARE = {
    "Equals": lambda a, b: a == b,
    "GreaterThan": lambda a, b: a > b,
    "GreaterThanOrEqualTo": lambda a, b: a >= b,
    "LessThan": lambda a, b: a < b,
    "LessThanOrEqualTo": lambda a, b: a <= b,
}


def _coerce_pair(a: Any, b: Any) -> tuple[Any, Any]:
    """SageMaker compares numbers as numbers even when one side came out of JSON as a string."""
    if isinstance(a, (int, float)) and not isinstance(a, bool) and isinstance(b, str):
        return a, float(b)
    if isinstance(b, (int, float)) and not isinstance(b, bool) and isinstance(a, str):
        return float(a), b
    return a, b


def evaluate_condition(cond: dict[str, Any], ctx: Context) -> bool:
    kind = cond.get("Type")
    if kind in _COMPARE:
        a, b = _coerce_pair(resolve(cond["LeftValue"], ctx), resolve(cond["RightValue"], ctx))
        try:
            return bool(_COMPARE[kind](a, b))
        except TypeError:
            raise DataError(f"condition {kind}: cannot compare {a!r} with {b!r}") from None
    if kind == "In":
        q = resolve(cond["QueryValue"], ctx)
        return any(_coerce_pair(q, v)[0] == _coerce_pair(q, v)[1] for v in resolve(cond["Values"], ctx))
    if kind == "Not":
        return not evaluate_condition(cond["Condition"], ctx)
    if kind == "Or":
        return any(evaluate_condition(c, ctx) for c in cond["Conditions"])
    raise DataError(f"unsupported condition type {kind!r}")


def step_refs(value: Any) -> set[str]:
    """Names of the steps an Arguments tree reads from (implicit dependencies, as in SageMaker)."""
    out: set[str] = set()
    if isinstance(value, list):
        for v in value:
            out |= step_refs(v)
    elif isinstance(value, dict):
        get = value.get("Get")
        if isinstance(get, str) and get.startswith("Steps."):
            out.add(get.split(".")[1])
        for v in value.values():
            out |= step_refs(v)
    return out
