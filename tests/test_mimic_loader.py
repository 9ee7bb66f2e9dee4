"""Loader: explicit schema, header case, chunking, quirks, and clear errors on bad input."""
from __future__ import annotations

import gzip
import shutil

import pandas as pd
import pytest

from clinical_ml.io import DataError
from clinical_ml.mimic import files, loader
from clinical_ml.mimic.schema import SYNTH_TABLES, table
from clinical_ml.synth.generate import generate


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth") / "mimic"
    generate(out, patients=30, seed=11)
    return out


def test_written_schema_equals_loader_schema(synth):
    """Every synthetic table has the release columns in order and reads with the loader dtypes."""
    for name in SYNTH_TABLES:
        tf = files.locate_table(str(synth), name)
        assert tf.compressed and tf.upper_header
        header = files.header_line(tf).replace('"', "").split(",")
        assert header == table(name).names, name
        df = loader.read_table(str(synth), name)
        assert {c: str(t) for c, t in df.dtypes.items()} == loader.pandas_dtypes(name), name
        assert len(df) > 0, name


def test_lower_case_csv_and_column_selection(synth, tmp_path):
    df = pd.read_csv(synth / "ADMISSIONS.csv.gz", dtype=str)
    df.columns = [c.lower() for c in df.columns]
    df.to_csv(tmp_path / "ADMISSIONS.csv", index=False)
    got = loader.read_table(str(tmp_path), "admissions", columns=["hadm_id", "ADMITTIME", "subject_id"])
    assert list(got.columns) == ["SUBJECT_ID", "HADM_ID", "ADMITTIME"]  # release order
    ref = loader.read_table(str(synth), "ADMISSIONS", columns=["SUBJECT_ID", "HADM_ID", "ADMITTIME"])
    pd.testing.assert_frame_equal(got, ref)


def test_iter_table_streams_in_chunks(synth):
    chunks = list(loader.iter_table(str(synth), "CHARTEVENTS", columns=["ITEMID", "VALUENUM"], chunksize=1000))
    assert len(chunks) > 3 and all(len(c) <= 1000 for c in chunks)
    whole = loader.read_table(str(synth), "CHARTEVENTS", columns=["ITEMID", "VALUENUM"])
    assert sum(map(len, chunks)) == len(whole)


def test_quirks_are_counted_and_dedupe_drops(synth):
    stats = loader.LoadStats()
    df = loader.read_table(str(synth), "CHARTEVENTS", stats=stats)
    q = stats.quirks["CHARTEVENTS"]
    assert q["missing_icustay_id"] == df["ICUSTAY_ID"].isna().sum() > 0
    assert q["value_without_valuenum"] > 0 and q["duplicate_rows"] > 0
    deduped = loader.read_table(str(synth), "CHARTEVENTS", dedupe=True)
    assert len(deduped) == len(df) - q["duplicate_rows"]
    lab = loader.read_table(str(synth), "LABEVENTS")
    vals = loader.numeric_value(lab)
    assert vals.notna().sum() >= lab["VALUENUM"].notna().sum()


def test_age_over_89_maps_to_91_4():
    dob = pd.Series(pd.to_datetime(["1850-01-01", "2080-06-01"]))
    when = pd.Series(pd.to_datetime(["2150-01-01", "2150-06-01"]))
    stats = loader.LoadStats()
    age = loader.age_years(dob, when, stats)
    assert age.iloc[0] == loader.SHIFTED_AGE and 69.9 < age.iloc[1] < 70.1
    assert stats.quirks["PATIENTS"]["age_over_89_shifted"] == 1


PATIENTS_OK = "row_id,subject_id,gender,dob,dod,dod_hosp,dod_ssn,expire_flag\n1,10,M,2080-01-01 00:00:00,,,,0\n"


@pytest.mark.parametrize("content,match", [
    (b"", r"PATIENTS\.csv: empty file"),
    (b"row_id,subject_id,gender,dob,dod,dod_hosp,dod_ssn\n1,10,M,2080-01-01 00:00:00,,,\n",
     r"PATIENTS\.csv: table PATIENTS is missing column\(s\) EXPIRE_FLAG"),
    (PATIENTS_OK.replace("2080-01-01 00:00:00", "01/13/2080 x").encode(),
     r"PATIENTS\.csv: table PATIENTS, column DOB: 1 value\(s\) are not a timestamp .*line 2"),
    (PATIENTS_OK.replace(",", ";").encode(), r"PATIENTS\.csv: table PATIENTS: header is not comma-separated"),
    (PATIENTS_OK.replace(",M,", ",\xe9,").encode("latin-1"),
     r"PATIENTS\.csv: table PATIENTS: bytes that are not UTF-8 at line 2, column GENDER"),
    (PATIENTS_OK.replace(",10,", ",ten,").encode(), r"column SUBJECT_ID: 1 value\(s\) are not an integer"),
])
def test_bad_inputs_name_file_and_column(tmp_path, content, match):
    (tmp_path / "PATIENTS.csv").write_bytes(content)
    with pytest.raises(DataError, match=match):
        loader.read_table(str(tmp_path), "PATIENTS")


def test_bad_gzip_member(tmp_path):
    (tmp_path / "PATIENTS.csv.gz").write_bytes(gzip.compress(PATIENTS_OK.encode())[:-12])
    with pytest.raises(DataError, match="PATIENTS"):
        loader.read_table(str(tmp_path), "PATIENTS")


def test_demo_tables_read_unchanged(shared_data, tmp_path):
    demo = shared_data / "mimic3-demo"
    if not demo.is_dir():
        pytest.skip(f"{demo} not present")
    pts = loader.read_table(str(demo), "PATIENTS")
    assert len(pts) == 100 and str(pts["DOB"].dtype) == "datetime64[s]"
    dx = loader.read_table(str(demo), "DIAGNOSES_ICD")
    assert dx["ICD9_CODE"].str.len().max() <= 5 and (dx["ICD9_CODE"].str.startswith("0")).any()
    stats = loader.LoadStats()
    loader.read_table(str(demo), "PRESCRIPTIONS", stats=stats)
    assert stats.quirks["PRESCRIPTIONS"]["duplicate_rows"] > 0
    shutil.copy(demo / "PATIENTS.csv", tmp_path / "PATIENTS.csv")
    assert len(loader.read_table(str(tmp_path), "patients")) == 100


def test_reads_from_s3_like_local(synth, monkeypatch):
    boto3 = pytest.importorskip("boto3")
    moto = pytest.importorskip("moto")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    with moto.mock_aws():
        s3 = boto3.client("s3", region_name="us-east-1")
        s3.create_bucket(Bucket="mimic-bkt")
        for name in ("PATIENTS", "CHARTEVENTS"):
            s3.upload_file(str(synth / f"{name}.csv.gz"), "mimic-bkt", f"synth/{name}.csv.gz")
        for name in ("PATIENTS", "CHARTEVENTS"):
            remote = loader.read_table("s3://mimic-bkt/synth", name)
            pd.testing.assert_frame_equal(remote, loader.read_table(str(synth), name))
