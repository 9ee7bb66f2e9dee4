"""Helpers for the pipeline tests: walk a definition's steps and substitute its expressions.

Substituting means: every ``{"Get": ...}``, ``{"Std:Join": ...}`` or ``{"Std:JsonGet": ...}``
becomes a plain value (parameter defaults for parameters, dummies for step properties) so the
step's Arguments can be checked against botocore's request shapes and a script's argparse.
"""
from __future__ import annotations

import re
from typing import Any, Iterator

EXPRESSION_KEYS = ("Get", "Std:Join", "Std:JsonGet")
EXECUTION_VARIABLES = {"PipelineName", "PipelineExecutionId", "PipelineExecutionArn", "StartDateTime",
                       "CurrentDateTime", "PipelineArn", "TrainingJobName", "ProcessingJobName"}


def iter_steps(steps: list[dict], parent: str | None = None, branch: str | None = None
               ) -> Iterator[tuple[dict, str | None, str | None]]:
    """Every step (conditions' branches included) with its enclosing condition and branch."""
    for step in steps:
        yield step, parent, branch
        if step["Type"] == "Condition":
            yield from iter_steps(step["Arguments"].get("IfSteps", []), step["Name"], "if")
            yield from iter_steps(step["Arguments"].get("ElseSteps", []), step["Name"], "else")


def all_steps(definition: dict) -> dict[str, dict]:
    return {s["Name"]: s for s, _, _ in iter_steps(definition["Steps"])}


def is_expression(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and next(iter(value)) in EXPRESSION_KEYS


def iter_expressions(obj: Any) -> Iterator[dict]:
    """Every expression in ``obj``, nested ones included (e.g. a Get inside a Join)."""
    if is_expression(obj):
        yield obj
        key, body = next(iter(obj.items()))
        if key == "Std:Join":
            for v in body["Values"]:
                yield from iter_expressions(v)
        elif key == "Std:JsonGet":
            yield from iter_expressions(body["PropertyFile"])
        return
    if isinstance(obj, dict):
        for v in obj.values():
            yield from iter_expressions(v)
    elif isinstance(obj, list):
        for v in obj:
            yield from iter_expressions(v)


def referenced_steps(obj: Any) -> set[str]:
    """Names of the steps whose properties ``obj`` reads (data dependencies)."""
    names = set()
    for expr in iter_expressions(obj):
        get = expr.get("Get")
        if isinstance(get, str) and get.startswith("Steps."):
            names.add(get.split(".")[1])
    return names


def substitute(obj: Any, params: dict[str, Any], dummy: str = "s3://dummy-bucket/dummy") -> Any:
    """``obj`` with every expression replaced by a plain value (see module docstring)."""
    if is_expression(obj):
        key, body = next(iter(obj.items()))
        if key == "Get":
            kind, _, rest = body.partition(".")
            if kind == "Parameters":
                return params[rest]
            if kind == "Execution":
                return f"dummy-{rest}"
            return dummy
        if key == "Std:Join":
            return body["On"].join(str(substitute(v, params, dummy)) for v in body["Values"])
        return 0.5  # Std:JsonGet: a metric value
    if isinstance(obj, dict):
        return {k: substitute(v, params, dummy) for k, v in obj.items()}
    if isinstance(obj, list):
        return [substitute(v, params, dummy) for v in obj]
    return obj


def parameter_defaults(definition: dict) -> dict[str, Any]:
    return {p["Name"]: p.get("DefaultValue") for p in definition["Parameters"]}


_TOKEN = re.compile(r"\.?([A-Za-z0-9_]+)|\[(\d+|'[^']*')\]")


def property_path(path: str) -> list[str | int]:
    """``ProcessingOutputConfig.Outputs['train'].S3Output.S3Uri`` -> members and index keys."""
    tokens: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN.match(path, pos)
        if not m:
            raise ValueError(f"bad property path {path!r} at {pos}")
        member, index = m.groups()
        tokens.append(member if member is not None else (index.strip("'") if index.startswith("'") else int(index)))
        pos = m.end()
    return tokens
