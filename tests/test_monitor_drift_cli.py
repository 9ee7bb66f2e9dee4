"""``clinical-ml drift`` run by hand: no AWS configured means local metrics or one error line,
never a botocore traceback."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from clinical_ml import cli
from clinical_ml.monitor import formats, stats
from clinical_ml.monitor import scenarios as S
from clinical_ml.monitor.capture import iter_frame_records, write_capture
from monitoring import drift_job  # noqa: F401 (logging set up now, not inside a capsys test)

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.fixture
def no_aws(tmp_path, monkeypatch):
    """A shell with no AWS settings at all (and no instance metadata service to ask)."""
    for k in ("CLINICAL_ML_BACKEND", "CLINICAL_ML_RUN_DIR", "AWS_REGION", "AWS_DEFAULT_REGION",
              "AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
              "AWS_ENDPOINT_URL", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
              "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def window(tmp_path):
    ref = S.reference_frame(1500, seed=0, channels=["heart_rate", "temperature"])
    cols = [c for c in ref.columns if c != "y"]
    st_ = stats.dataset_statistics(ref, cols)
    formats.write_baseline(tmp_path / "baseline", st_, stats.suggest_constraints(st_))
    frame = S.generate(ref, "none", 300, seed=1)[cols]
    write_capture(tmp_path / "cap", "ep", "AllTraffic", iter_frame_records(frame, T0, T0 + timedelta(hours=1), 5))
    return ["--capture", str(tmp_path / "cap"), "--baseline", str(tmp_path / "baseline"),
            "--output", str(tmp_path / "out"), "--window-end", "2026-01-01T01:00:00Z"]


def test_without_aws_settings_metrics_go_to_the_local_file(no_aws, window, tmp_path, capsys, caplog):
    assert cli.main(["drift", *window]) == 0
    assert "Traceback" not in capsys.readouterr().err
    warned = [r.getMessage() for r in caplog.records if "not CloudWatch" in r.getMessage()]
    assert len(warned) == 1 and "no AWS region configured" in warned[0] and "AWS_REGION" in warned[0]
    summary = json.loads((tmp_path / "out" / "drift_summary.json").read_text())
    assert summary["metrics"]["backend"] == "local" and "no AWS region" in summary["metrics"]["reason"]
    lines = (tmp_path / "out" / "drift_metrics.jsonl").read_text().splitlines()
    assert len(lines) == summary["metrics"]["datapoints"] > 0
    assert summary["status"] == "ok" and summary["rows_analyzed"] == 300


def test_cloudwatch_asked_without_a_region_is_one_line(no_aws, window, capsys):
    assert cli.main(["drift", *window, "--metrics-backend", "cloudwatch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert "Traceback" not in "\n".join(err) and len(err) == 1
    assert "no AWS region configured" in err[0] and "--metrics-backend local" in err[0]


def test_a_region_but_no_credentials_is_one_line_with_what_to_do(no_aws, window, tmp_path, monkeypatch,
                                                                  capsys):
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    assert cli.main(["drift", *window]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    [line] = [x for x in err.splitlines() if x.startswith("clinical-ml drift: error:")]
    assert "NoCredentialsError" in line and "configure them" in line and "--no-metrics" in line
    # the window's files were written before publishing failed
    summary = json.loads((tmp_path / "out" / "drift_summary.json").read_text())
    assert summary["status"] == "ok" and "NoCredentialsError" in summary["metrics"]["error"]


def test_the_local_backend_is_unchanged(no_aws, window, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CLINICAL_ML_BACKEND", "local")
    assert cli.main(["drift", *window, "--metrics-file", str(tmp_path / "m.jsonl")]) == 0
    assert not [r for r in caplog.records if "not CloudWatch" in r.getMessage()]  # local was asked
    summary = json.loads((tmp_path / "out" / "drift_summary.json").read_text())
    assert summary["metrics"] == {"backend": "local", "file": str(tmp_path / "m.jsonl"),
                                  "datapoints": summary["metrics"]["datapoints"]}
