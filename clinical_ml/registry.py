"""A local stand-in for the SageMaker Model Registry (model package groups and versions).

The local runner's register steps write here and the local deploy reads from here, with the
same calls and the same response shapes as boto3's ``sagemaker`` client, so code that deploys
"the latest approved model package" is written once for both backends.

Layout (``root`` is ``runs/registry``)::

    <root>/<group>/group.json                 DescribeModelPackageGroup-like record
    <root>/<group>/<version>/package.json     DescribeModelPackage-like record
    <root>/<group>/<version>/model.tar.gz     copy of the model data (when it was a local file)

Versions are allocated by ``mkdir`` (atomic: two writers never get the same number) and every
record is written to a temporary file and renamed into place, so a reader never sees half a
record and a killed writer leaves at worst an empty version folder, which readers skip.
"""
from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path
from typing import Any

from clinical_ml.io import DataError, read_json, write_json

ARN_PREFIX = "arn:aws:sagemaker:local:000000000000"
APPROVAL_STATUSES = ("Approved", "Rejected", "PendingManualApproval")
_NAME_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _check_name(name: str) -> str:
    # SageMaker's pattern for group names: ^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$
    if not name or len(name) > 63 or not set(name) <= _NAME_OK or name[0] == "-" or name[-1] == "-":
        raise DataError(f"model package group name {name!r}: use 1-63 letters, digits and "
                        "single hyphens (SageMaker's naming rule)")
    return name


def _check_status(status: str) -> str:
    if status not in APPROVAL_STATUSES:
        raise DataError(f"approval status {status!r}: must be one of {', '.join(APPROVAL_STATUSES)}")
    return status


def package_arn(group: str, version: int) -> str:
    return f"{ARN_PREFIX}:model-package/{group}/{version}"


def group_arn(group: str) -> str:
    return f"{ARN_PREFIX}:model-package-group/{group}"


def parse_arn(arn: str) -> tuple[str, int]:
    """``arn:...:model-package/<group>/<version>`` -> (group, version)."""
    try:
        resource = arn.split(":", 5)[5]
        kind, group, version = resource.split("/")
        if kind != "model-package":
            raise ValueError(kind)
        return group, int(version)
    except (IndexError, ValueError):
        raise DataError(f"{arn!r}: not a model package ARN "
                        "(expected arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>)") from None


def _iso(t: dt.datetime) -> str:
    return t.isoformat()


def _from_iso(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s)


class LocalRegistry:
    """Model package groups and versioned packages under one folder (see module docstring).

    ``describe_*`` and ``list_*`` return dicts shaped like boto3's responses; times are
    timezone-aware ``datetime`` objects as boto3 returns them (``to_json`` converts for files).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    # -- groups -----------------------------------------------------------------------------
    def create_model_package_group(self, name: str, description: str = "") -> str:
        """Create the group if missing (idempotent, like the pipeline's upsert) and return its ARN."""
        _check_name(name)
        gdir = self.root / name
        gdir.mkdir(parents=True, exist_ok=True)
        record = gdir / "group.json"
        if not record.exists():
            write_json(record, {
                "ModelPackageGroupName": name,
                "ModelPackageGroupArn": group_arn(name),
                "ModelPackageGroupDescription": description,
                "CreationTime": _iso(_now()),
                "ModelPackageGroupStatus": "Completed",
            })
        return group_arn(name)

    def describe_model_package_group(self, name: str) -> dict[str, Any]:
        rec = read_json(self._group_file(name))
        rec["CreationTime"] = _from_iso(rec["CreationTime"])
        return rec

    def list_model_package_groups(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if (p / "group.json").is_file())

    def _group_file(self, name: str) -> Path:
        f = self.root / _check_name(name) / "group.json"
        if not f.is_file():
            raise DataError(f"model package group {name!r} not found under {self.root}; "
                            "create it first (create_model_package_group)")
        return f

    # -- packages ---------------------------------------------------------------------------
    def create_model_package(self, group: str, model_data: str | os.PathLike,
                             approval_status: str = "PendingManualApproval",
                             model_metrics: dict[str, Any] | None = None,
                             customer_metadata: dict[str, str] | None = None,
                             image_uri: str | None = None, description: str = "",
                             copy_model: bool = True) -> str:
        """Register ``model_data`` as the next version of ``group`` and return its ARN.

        A local ``model_data`` file or folder is copied into the version folder so the
        registered version outlives the run folder that produced it (registry semantics: a
        version is immutable). ``s3://`` URIs are recorded as given.
        """
        self._group_file(group)
        _check_status(approval_status)
        src = str(model_data)
        version, vdir = self._allocate_version(group)
        try:
            url = src
            if copy_model and not src.startswith("s3://"):
                p = Path(src)
                if p.is_file():
                    dest = vdir / p.name
                    shutil.copyfile(p, vdir / f".{p.name}.tmp")
                    os.replace(vdir / f".{p.name}.tmp", dest)
                    url = str(dest.resolve())
                elif p.is_dir():
                    dest = vdir / "model"
                    shutil.copytree(p, vdir / ".model.tmp")
                    os.replace(vdir / ".model.tmp", dest)
                    url = str(dest.resolve())
                else:
                    raise DataError(f"{src}: model data not found; pass the training step's "
                                    "model.tar.gz (or model folder)")
            now = _iso(_now())
            record = {
                "ModelPackageGroupName": group,
                "ModelPackageVersion": version,
                "ModelPackageArn": package_arn(group, version),
                "ModelPackageDescription": description,
                "CreationTime": now,
                "LastModifiedTime": now,
                "InferenceSpecification": {
                    "Containers": [{"Image": image_uri or "", "ModelDataUrl": url}],
                    "SupportedContentTypes": ["application/json", "text/csv", "application/jsonlines"],
                    "SupportedResponseMIMETypes": ["application/json"],
                },
                "ModelPackageStatus": "Completed",
                "ModelApprovalStatus": approval_status,
                "ModelMetrics": model_metrics or {},
                "CustomerMetadataProperties": {k: str(v) for k, v in (customer_metadata or {}).items()},
                "SourceModelDataUrl": src,
            }
            write_json(vdir / "package.json", record)
        except BaseException:
            shutil.rmtree(vdir, ignore_errors=True)  # no half-registered version
            raise
        return record["ModelPackageArn"]

    def _allocate_version(self, group: str) -> tuple[int, Path]:
        gdir = self.root / group
        while True:
            version = max(self._versions(group, include_incomplete=True), default=0) + 1
            vdir = gdir / str(version)
            try:
                vdir.mkdir()  # atomic claim of the version number
                return version, vdir
            except FileExistsError:
                continue

    def _versions(self, group: str, include_incomplete: bool = False) -> list[int]:
        gdir = self.root / group
        if not gdir.is_dir():
            return []
        out = []
        for p in gdir.iterdir():
            if p.is_dir() and p.name.isdigit() and (include_incomplete or (p / "package.json").is_file()):
                out.append(int(p.name))
        return sorted(out)

    def describe_model_package(self, arn: str) -> dict[str, Any]:
        group, version = parse_arn(arn)
        f = self.root / group / str(version) / "package.json"
        if not f.is_file():
            raise DataError(f"model package {arn} not found under {self.root}")
        rec = read_json(f)
        for k in ("CreationTime", "LastModifiedTime"):
            rec[k] = _from_iso(rec[k])
        return rec

    def list_model_packages(self, group: str, approval_status: str | None = None) -> list[dict[str, Any]]:
        """Summaries (boto3 ``ModelPackageSummaryList`` items) of ``group``, newest version first."""
        if approval_status is not None:
            _check_status(approval_status)
        out = []
        for v in sorted(self._versions(group), reverse=True):
            rec = self.describe_model_package(package_arn(group, v))
            if approval_status and rec["ModelApprovalStatus"] != approval_status:
                continue
            out.append({k: rec[k] for k in ("ModelPackageGroupName", "ModelPackageVersion", "ModelPackageArn",
                                           "ModelPackageDescription", "CreationTime", "ModelPackageStatus",
                                           "ModelApprovalStatus")})
        return out

    def latest_approved(self, group: str) -> dict[str, Any] | None:
        """The newest Approved package (full description) or None: what a deploy step serves."""
        items = self.list_model_packages(group, approval_status="Approved")
        return self.describe_model_package(items[0]["ModelPackageArn"]) if items else None

    def update_model_package(self, arn: str, approval_status: str, approval_description: str = "") -> str:
        _check_status(approval_status)
        group, version = parse_arn(arn)
        f = self.root / group / str(version) / "package.json"
        rec = read_json(f) if f.is_file() else None
        if rec is None:
            raise DataError(f"model package {arn} not found under {self.root}")
        rec["ModelApprovalStatus"] = approval_status
        rec["LastModifiedTime"] = _iso(_now())
        if approval_description:
            rec["ApprovalDescription"] = approval_description
        write_json(f, rec)
        return arn


def to_json(obj: Any) -> Any:
    """A describe/list response with datetimes as ISO strings (for summary.json and friends)."""
    if isinstance(obj, dict):
        return {k: to_json(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [to_json(v) for v in obj]
    if isinstance(obj, dt.datetime):
        return obj.isoformat()
    return obj
