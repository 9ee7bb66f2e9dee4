"""The one place where SQL text for DuckDB is put together.

Values reach DuckDB in one of two ways, never by pasting a Python string into SQL:

- bound parameters, ``con.execute("... WHERE split = ? ...", [split])``, wherever a statement
  stands alone (COPY targets, ``read_parquet(?)``, ranges of ids);
- this module, where SQL is composed from pieces that are reused in several statements (the
  ``read_csv(...)`` relation over a MIMIC-III file, CASE expressions over the channel table):
  ``literal()`` quotes a string, path or number, ``ident()`` quotes an identifier, ``raw()``
  marks SQL that this code wrote itself (never data), and ``render()`` fills a template's
  ``{name}`` placeholders with those and nothing else, so a plain ``str`` cannot slip in
  unquoted: it raises ``TypeError``.

A path such as ``/data/o'brien dir é/tasks`` becomes ``'/data/o''brien dir é/tasks'``: DuckDB's
standard SQL string literal, where a quote is doubled and nothing else is special.
"""
from __future__ import annotations

import math
import os
import re
from typing import Iterable

__all__ = ["Sql", "ident", "join", "literal", "raw", "render"]

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Sql(str):
    """SQL text that was quoted by this module or written by the code: what ``render`` takes."""

    __slots__ = ()


def raw(text: str) -> Sql:
    """Mark SQL written by this code base (a constant or a fragment built from constants)."""
    if not isinstance(text, str):
        raise TypeError(f"raw() takes SQL text, not {type(text).__name__}")
    return Sql(text)


def _text(value: str, what: str) -> str:
    if "\x00" in value:
        raise ValueError(f"{what} contains a NUL character")
    return value


def ident(name: str) -> Sql:
    """A quoted identifier (table or column name): ``"name"``, inner quotes doubled."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"an SQL identifier must be a non-empty string, not {name!r}")
    return Sql('"' + _text(name, "identifier").replace('"', '""') + '"')


def literal(value: object) -> Sql:
    """A constant: string or path -> ``'...'`` (quotes doubled); int/float/bool/None as SQL."""
    if value is None:
        return Sql("NULL")
    if isinstance(value, bool):
        return Sql("TRUE" if value else "FALSE")
    if isinstance(value, int):
        return Sql(str(int(value)))
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"SQL literal must be a finite number, not {value!r}")
        return Sql(repr(value))
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if isinstance(text, bytes):
            raise TypeError("SQL literal: bytes paths are not supported; pass str")
        return Sql("'" + _text(text, "literal").replace("'", "''") + "'")
    raise TypeError(f"no SQL literal for {type(value).__name__}")


def _part(name: str, value: object) -> Sql:
    if isinstance(value, Sql):
        return value
    if isinstance(value, (int, float)):  # bool too: numbers cannot carry SQL
        return literal(value)
    raise TypeError(f"render: {{{name}}} got a {type(value).__name__}; wrap it with ident(), "
                    "literal() or, for SQL this code wrote, raw()")


def render(template: str, **parts: object) -> Sql:
    """``template`` with each ``{name}`` replaced by ``parts[name]`` (Sql or a number).

    Every placeholder must be given and every part used; braces that are not ``{identifier}``
    (DuckDB struct literals such as ``{'a': 'VARCHAR'}``) are left as they are.
    """
    used: set[str] = set()

    def fill(m: re.Match) -> str:
        name = m.group(1)
        if name not in parts:
            raise KeyError(f"render: no value for {{{name}}}")
        used.add(name)
        return _part(name, parts[name])

    out = _PLACEHOLDER.sub(fill, template)
    unused = sorted(set(parts) - used)
    if unused:
        raise KeyError(f"render: unused parts {unused}")
    return Sql(out)


def join(sep: str, items: Iterable[object]) -> Sql:
    """``sep.join`` over Sql pieces (numbers become literals); a plain str raises TypeError."""
    return Sql(sep.join(_part(f"item {i}", x) for i, x in enumerate(items)))
