"""The composite-alarm rule grammar (clinical_ml.monitor.alarm_rule): valid rules parse to the
tree CloudWatch's precedence gives, invalid ones fail with the column and what was expected,
and nothing is ever handed to ``eval``."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from clinical_ml.monitor import alarm_rule, alarms
from clinical_ml.monitor.alarm_rule import AlarmRuleError, parse

STATES = {"a": "OK", "b": "ALARM", "c": "INSUFFICIENT_DATA", "clinical-ml-ep-drift-score": "ALARM"}


@pytest.mark.parametrize("rule, tree", [
    ('ALARM("a")', ("state", "ALARM", "a")),
    ("OK(a)", ("state", "OK", "a")),
    ('INSUFFICIENT_DATA("name with spaces (and parens)")', ("state", "INSUFFICIENT_DATA", "name with spaces (and parens)")),
    ("  TRUE ", ("const", True)),
    ('NOT NOT ALARM("a")', ("not", ("not", ("state", "ALARM", "a")))),
    # AND binds tighter than OR; NOT tighter than AND
    ('ALARM("a") OR ALARM("b") AND NOT OK("c")',
     ("or", ("state", "ALARM", "a"), ("and", ("state", "ALARM", "b"), ("not", ("state", "OK", "c"))))),
    ('(ALARM("a") OR ALARM("b")) AND FALSE',
     ("and", ("or", ("state", "ALARM", "a"), ("state", "ALARM", "b")), ("const", False))),
    ("ALARM(arn:aws:cloudwatch:us-east-1:123456789012:alarm:x-y.z)",
     ("state", "ALARM", "arn:aws:cloudwatch:us-east-1:123456789012:alarm:x-y.z")),
    ('ALARM("a")OR(ALARM("b"))', ("or", ("state", "ALARM", "a"), ("state", "ALARM", "b"))),
])
def test_valid_rules_parse(rule, tree):
    assert parse(rule) == tree


@pytest.mark.parametrize("rule, truth", [
    ('ALARM("a") OR ALARM("b")', True),
    ('ALARM("a") AND ALARM("b")', False),
    ('ALARM("b") AND NOT ALARM("a")', True),
    ('INSUFFICIENT_DATA("c") AND OK("a")', True),
    ('ALARM("unknown")', False),
    ('NOT (OK("a") OR ALARM("b"))', False),
    ('ALARM("a") OR ALARM("b") AND FALSE', False),
    ('(ALARM("a") OR ALARM("b")) AND TRUE', True),
])
def test_evaluation(rule, truth):
    assert alarm_rule.evaluate(parse(rule), STATES) is truth
    assert alarms.evaluate_composite(rule, STATES) == ("ALARM" if truth else "OK")


@pytest.mark.parametrize("rule, col, message", [
    ("", 1, "empty rule"),
    ("   ", 1, "empty rule"),
    ('ALARM("a") OR', 14, "the rule ends where ALARM(...)"),
    ('ALARM("a") or ALARM("b")', 12, "unexpected 'or'; expected AND, OR or the end"),
    ('alarm("a")', 1, "unexpected 'alarm'; expected ALARM(...), OK(...)"),
    ('ALARM "a"', 7, "unexpected '\"a\"'; expected '(' after ALARM"),
    ('ALARM("a"', 10, "the rule ends where ')' after the alarm name"),
    ('ALARM("a) OR ALARM(b)', 7, "unterminated quoted alarm name"),
    ('ALARM("")', 7, "empty alarm name"),
    ("ALARM()", 7, "unexpected ')'; expected an alarm name"),
    ("ALARM(AND)", 7, "unexpected 'AND'; expected an alarm name"),
    ('(ALARM("a")', 12, "the rule ends where ')' was expected"),
    ('ALARM("a"))', 11, "unexpected ')'; expected AND, OR or the end"),
    ('ALARM("a") AND', 15, "the rule ends where"),
    ('ALARM("a") ; __import__("os")', 12, "unexpected character ';'"),
    ("__import__('os').system('x')", 1, "unexpected '__import__'"),
    ('ALARM("a") ALARM("b")', 12, "unexpected 'ALARM'; expected AND, OR or the end"),
    ('"a"', 1, "expected ALARM(...)"),
])
def test_invalid_rules_name_the_column_and_what_was_expected(rule, col, message):
    with pytest.raises(AlarmRuleError) as e:
        parse(rule)
    assert e.value.column == col, str(e.value)
    assert message in str(e.value)
    assert isinstance(e.value, ValueError)
    with pytest.raises(ValueError, match=f"column {col}"):
        alarms.evaluate_composite(rule, STATES)


def test_not_a_string():
    with pytest.raises(TypeError):
        parse(None)


def test_the_rules_we_put_parse_and_name_their_children():
    specs = alarms.alarm_specs("ep", "sched", features=["f_heart_rate_mean_full"])
    composite = specs[-1]
    children = {s["AlarmName"] for s in specs[:-1]}
    assert alarm_rule.alarm_names(parse(composite["AlarmRule"])) == children


def test_no_eval_in_the_monitor_package():
    for path in Path(alarms.__file__).parent.glob("*.py"):
        calls = [n.func.id for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Call)
                 and isinstance(n.func, ast.Name)]
        assert not {"eval", "exec", "compile"} & set(calls), path.name
