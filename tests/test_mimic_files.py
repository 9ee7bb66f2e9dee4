"""Locating MIMIC-III table files: release/demo layouts, local folders and s3:// prefixes."""
from __future__ import annotations

import gzip

import pytest

from clinical_ml.io import DataError
from clinical_ml.mimic import files


def _write(path, text: str, gz: bool = False) -> None:
    data = text.encode()
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)


def test_locate_release_and_demo_layouts(tmp_path):
    _write(tmp_path / "PATIENTS.csv.gz", '"ROW_ID","SUBJECT_ID"\n1,2\n', gz=True)
    _write(tmp_path / "admissions.csv", "row_id,subject_id\n1,2\n")
    _write(tmp_path / "LABEVENTS_partial.csv", "HADM_ID\n1\n")
    p = files.locate_table(str(tmp_path), "patients")
    assert p.table == "PATIENTS" and p.compressed and p.upper_header
    a = files.locate_table(str(tmp_path), "ADMISSIONS")
    assert not a.compressed and not a.upper_header and a.uri.endswith("admissions.csv")
    assert set(files.list_tables(str(tmp_path))) == {"PATIENTS", "ADMISSIONS"}
    assert files.unrecognised_files(str(tmp_path)) == ["LABEVENTS_partial.csv"]
    assert "CHARTEVENTS" in files.missing_tables(str(tmp_path))


def test_missing_table_and_folder_are_named(tmp_path):
    with pytest.raises(DataError, match=r"CHARTEVENTS.*" + tmp_path.name):
        files.locate_table(str(tmp_path), "CHARTEVENTS")
    with pytest.raises(DataError, match="not found"):
        files.list_tables(str(tmp_path / "nope"))
    with pytest.raises(KeyError, match="unknown MIMIC-III table"):
        files.locate_table(str(tmp_path), "NOT_A_TABLE")


def test_s3_prefix(monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="mimic-bkt")
        s3.put_object(Bucket="mimic-bkt", Key="v1.4/PATIENTS.csv.gz",
                      Body=gzip.compress(b'"ROW_ID","SUBJECT_ID"\n1,2\n', mtime=0))
        s3.put_object(Bucket="mimic-bkt", Key="v1.4/nested/ADMISSIONS.csv.gz", Body=b"x")
        found = files.list_tables("s3://mimic-bkt/v1.4")
        assert list(found) == ["PATIENTS"]  # only files directly under the prefix
        tf = found["PATIENTS"]
        assert tf.uri == "s3://mimic-bkt/v1.4/PATIENTS.csv.gz" and tf.upper_header
        assert files.open_binary(tf).read() == b'"ROW_ID","SUBJECT_ID"\n1,2\n'
        with pytest.raises(DataError, match="ADMISSIONS"):
            files.locate_table("s3://mimic-bkt/v1.4/", "ADMISSIONS")
