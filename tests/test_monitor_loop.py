"""Local alarm evaluation (mirrors CloudWatch) and the local drift -> retrain loop with its guard."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from clinical_ml.monitor import alarms, metrics
from clinical_ml.monitor.guard import LocalLedger
from clinical_ml.monitor.loop import default_ledger, evaluate_and_trigger

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
DIMS = metrics.dimensions("ep", "sched")


def dp(name, value, hour):
    return {"Namespace": metrics.NAMESPACE, "MetricName": name, "Dimensions": DIMS,
            "Timestamp": T0 + timedelta(hours=hour, minutes=1), "Value": value}


def test_metric_alarm_evaluation_periods_and_missing_data():
    spec = alarms.alarm_specs("ep", "sched", 1.0, evaluation_periods=3, datapoints_to_alarm=2)[0]
    assert alarms.evaluate(spec, []) == "INSUFFICIENT_DATA"
    pts = [dp("drift_score", 0.4, 0), dp("drift_score", 1.5, 1), dp("drift_score", 0.3, 2)]
    assert alarms.evaluate(spec, pts) == "OK"                       # 1 of 3 breaching, need 2
    pts.append(dp("drift_score", 2.0, 2))                            # Maximum of the period breaches
    assert alarms.evaluate(spec, pts) == "ALARM"
    assert alarms.evaluate(spec, pts, now=T0 + timedelta(hours=6)) == "OK"   # old breaches aged out
    other = [{**p, "Dimensions": metrics.dimensions("other-ep", "sched")} for p in pts]
    assert alarms.evaluate(spec, other) == "INSUFFICIENT_DATA"     # dimensions must match
    assert alarms.evaluate(spec, [dp("drift_score", 1.0, 0)]) == "OK"   # GreaterThan, not >=


def test_composite_rule():
    states = {"a": "OK", "b": "ALARM"}
    assert alarms.evaluate_composite('ALARM("a") OR ALARM("b")', states) == "ALARM"
    assert alarms.evaluate_composite('ALARM("a") AND ALARM("b")', states) == "OK"
    assert alarms.evaluate_composite('ALARM("b") AND NOT ALARM("a")', states) == "ALARM"


def test_local_loop_starts_one_guarded_execution(tmp_path, monkeypatch):
    monkeypatch.setenv("CLINICAL_ML_AUDIT_FILE", str(tmp_path / "audit.jsonl"))
    mfile = tmp_path / "metrics.jsonl"
    ledger = default_ledger(tmp_path / "runs")
    started = []

    def start(params):
        started.append(params)
        return {"id": f"exec-{len(started)}", "status": "Executing"}

    metrics.append_local([dp("rows_analyzed", 500, 0), dp("drift_score", 0.5, 0)], mfile)
    r = evaluate_and_trigger(mfile, "ep", "sched", start, ledger)
    assert r["composite"] == "OK" and r["started"] is None and not started
    metrics.append_local([dp("rows_analyzed", 500, 1), dp("drift_score", 4.2, 1)], mfile)
    window = (T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    now = T0 + timedelta(hours=1, minutes=30)
    results = [evaluate_and_trigger(mfile, "ep", "sched", start, ledger, window=window, now=now) for _ in range(5)]
    assert [r["composite"] for r in results] == ["ALARM"] * 5
    assert len(started) == 1 and results[0]["started"] == "exec-1"
    # static parameters only, as EventBridge passes them: the execution's guard finds the data window
    assert started[0] == {"Trigger": "drift"}
    assert {r["decision"]["reason"] for r in results[1:]} == {"in_flight"}
    LocalLedger(ledger).finish("exec-1", "Succeeded")
    again = evaluate_and_trigger(mfile, "ep", "sched", start, ledger, now=now + timedelta(minutes=10))
    assert again["decision"]["reason"] == "cooldown" and len(started) == 1
    much_later = evaluate_and_trigger(mfile, "ep", "sched", start, ledger, cooldown_s=600,
                                      now=now + timedelta(minutes=20))
    assert much_later["composite"] == "ALARM" and much_later["started"] == "exec-2"
    from clinical_ml.audit import read_records, verify_records

    recs = read_records(tmp_path / "audit.jsonl")
    assert verify_records(recs) == []
    assert sum(r["event"] == "drift_alarm" for r in recs) == 7
    triggered = [(r["outcome"], r["details"]["execution"]) for r in recs if r["event"] == "retrain_triggered"]
    assert triggered[0] == ("ok", "exec-1") and triggered[-1] == ("ok", "exec-2")
    assert [o for o, _ in triggered[1:-1]] == ["skipped"] * 5


def test_empty_windows_never_alarm(tmp_path):
    mfile = tmp_path / "m.jsonl"
    metrics.append_local([dp("rows_analyzed", 0, h) for h in range(5)], mfile)
    r = evaluate_and_trigger(mfile, "ep", "sched", lambda p: "never", tmp_path / "ledger.json")
    assert r["alarms"]["clinical-ml-ep-drift-score"] == "INSUFFICIENT_DATA" and r["started"] is None
