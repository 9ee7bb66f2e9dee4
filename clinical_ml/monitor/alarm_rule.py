"""CloudWatch composite-alarm rules (``AlarmRule``), parsed and evaluated without ``eval``.

The grammar (the subset of CloudWatch's rule language the project writes and evaluates):

    rule     := or_expr END
    or_expr  := and_expr ("OR" and_expr)*
    and_expr := not_expr ("AND" not_expr)*
    not_expr := "NOT" not_expr | atom
    atom     := STATE "(" name ")" | "TRUE" | "FALSE" | "(" or_expr ")"
    STATE    := "ALARM" | "OK" | "INSUFFICIENT_DATA"
    name     := '"' any characters but '"' '"' | a bare name of letters, digits and _ . : / # + -

Keywords are upper case, as CloudWatch writes them; NOT binds tighter than AND, AND tighter
than OR. ``parse(rule)`` returns a small tree of tuples, ``evaluate(tree, states)`` its truth
value given each child alarm's state. Anything else is an ``AlarmRuleError`` that names the
column and what was expected there.
"""
from __future__ import annotations

import re
STATES = ("ALARM", "OK", "INSUFFICIENT_DATA")
_KEYWORDS = {"AND", "OR", "NOT", "TRUE", "FALSE", *STATES}
_TOKEN = re.compile(r'\s*(?:(?P<paren>[()])|(?P<quoted>"[^"]*")|(?P<word>[A-Za-z0-9_.:/#+-]+)|(?P<bad>\S))')

# ("state", STATE, name) | ("const", bool) | ("not", node) | ("and"/"or", node, node)
Node = tuple


class AlarmRuleError(ValueError):
    """An alarm rule that does not follow the grammar (or names no alarm)."""

    def __init__(self, rule: str, col: int, message: str) -> None:
        super().__init__(f"alarm rule, column {col + 1}: {message}: {rule!r}")
        self.rule, self.column = rule, col + 1


def _tokens(rule: str) -> list[tuple[str, str, int]]:
    out, pos = [], 0
    while pos < len(rule):
        m = _TOKEN.match(rule, pos)
        if m is None:  # only trailing whitespace is left
            break
        kind = m.lastgroup
        out.append((kind, m.group(kind), m.start(kind)))  # "bad" tokens fail where the parser meets them
        pos = m.end()
    return out


class _Parser:
    def __init__(self, rule: str) -> None:
        self.rule, self.toks, self.i = rule, _tokens(rule), 0

    def _peek(self) -> tuple[str, str, int] | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def _fail(self, expected: str) -> AlarmRuleError:
        tok = self._peek()
        if tok is None:
            return AlarmRuleError(self.rule, len(self.rule), f"the rule ends where {expected} was expected")
        if tok[0] == "bad":
            return AlarmRuleError(self.rule, tok[2], "unterminated quoted alarm name" if tok[1] == '"'
                                  else f"unexpected character {tok[1]!r}")
        return AlarmRuleError(self.rule, tok[2], f"unexpected {tok[1]!r}; expected {expected}")

    def _take(self, text: str) -> bool:
        tok = self._peek()
        if tok is not None and tok[1] == text and tok[0] in ("paren", "word"):
            self.i += 1
            return True
        return False

    def rule_(self) -> Node:
        if not self.toks:
            raise AlarmRuleError(self.rule, 0, "empty rule")
        node = self.or_()
        if self._peek() is not None:
            raise self._fail("AND, OR or the end of the rule")
        return node

    def or_(self) -> Node:
        node = self.and_()
        while self._take("OR"):
            node = ("or", node, self.and_())
        return node

    def and_(self) -> Node:
        node = self.not_()
        while self._take("AND"):
            node = ("and", node, self.not_())
        return node

    def not_(self) -> Node:
        if self._take("NOT"):
            return ("not", self.not_())
        return self.atom()

    def atom(self) -> Node:
        tok = self._peek()
        expected = "ALARM(...), OK(...), INSUFFICIENT_DATA(...), TRUE, FALSE, NOT or '('"
        if tok is None or tok[0] in ("quoted", "bad"):
            raise self._fail(expected)
        if self._take("("):
            node = self.or_()
            if not self._take(")"):
                raise self._fail("')'")
            return node
        if tok[1] in ("TRUE", "FALSE"):
            self.i += 1
            return ("const", tok[1] == "TRUE")
        if tok[1] not in STATES:
            raise self._fail(expected)
        self.i += 1
        if not self._take("("):
            raise self._fail(f"'(' after {tok[1]}")
        name = self._peek()
        if name is None or name[0] in ("paren", "bad") or (name[0] == "word" and name[1] in _KEYWORDS):
            raise self._fail("an alarm name")
        if name[0] == "quoted" and len(name[1]) == 2:
            raise AlarmRuleError(self.rule, name[2], "empty alarm name")
        self.i += 1
        if not self._take(")"):
            raise self._fail("')' after the alarm name")
        return ("state", tok[1], name[1][1:-1] if name[0] == "quoted" else name[1])


def parse(rule: str) -> Node:
    """The tree of ``rule``; ``AlarmRuleError`` when it does not follow the grammar."""
    if not isinstance(rule, str):
        raise TypeError(f"alarm rule must be a string, not {type(rule).__name__}")
    return _Parser(rule).rule_()


def alarm_names(node: Node) -> set[str]:
    """The child alarms a rule refers to."""
    if node[0] == "state":
        return {node[2]}
    if node[0] == "const":
        return set()
    return set().union(*(alarm_names(n) for n in node[1:]))


def evaluate(node: Node, states: dict[str, str]) -> bool:
    """Truth of the tree given each alarm's state (an unknown alarm is in no state)."""
    kind = node[0]
    if kind == "state":
        return states.get(node[2]) == node[1]
    if kind == "const":
        return node[1]
    if kind == "not":
        return not evaluate(node[1], states)
    if kind == "and":
        return evaluate(node[1], states) and evaluate(node[2], states)
    return evaluate(node[1], states) or evaluate(node[2], states)
