"""File helpers every step uses: atomic writes, content hashes, JSON, model tarballs.

Nothing half-written is ever left behind: writers go to a temporary sibling path and are
renamed into place only when complete (rename is atomic on one filesystem).
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any, Iterator


class DataError(ValueError):
    """Bad input data: the message names the file/table and column and says what to do."""


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it into place on success.

    Works for files and directories. On error the temporary path is removed and any existing
    ``path`` is left untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}-{next(tempfile._get_candidate_names())}")
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        elif tmp.exists():
            tmp.unlink()


def write_text(path: str | os.PathLike, text: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def write_json(path: str | os.PathLike, obj: Any, indent: int | None = 2) -> Path:
    return write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    p = Path(path)
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{p}: file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(f"{p}: not valid JSON ({e.msg} at line {e.lineno} column {e.colno})") from None


def iter_jsonl(path: str | os.PathLike, fix: str = "one JSON object a line") -> Iterator[tuple[int, Any, str]]:
    """``(line number, object, raw line)`` of a JSON-lines file, blank lines skipped; a bad
    line is a DataError naming the file, the line and ``fix`` (what to do about it)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line), line
            except json.JSONDecodeError as e:
                raise DataError(f"{path}:{n}: not valid JSON ({e.msg}); {fix}") from None


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):  # numpy scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_tree(root: str | os.PathLike) -> str:
    """Content hash of a directory: relative paths and file bytes, in sorted order."""
    root = Path(root)
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*") if q.is_file()):
        h.update(p.relative_to(root).as_posix().encode())
        h.update(b"\0")
        h.update(sha256_file(p).encode())
    return h.hexdigest()


def make_model_tarball(model_dir: str | os.PathLike, out_file: str | os.PathLike) -> Path:
    """Pack a model directory as SageMaker's ``model.tar.gz`` (files at the archive root)."""
    model_dir = Path(model_dir)
    with atomic_path(out_file) as tmp:
        with tarfile.open(tmp, "w:gz") as tar:
            for p in sorted(model_dir.rglob("*")):
                tar.add(p, arcname=p.relative_to(model_dir).as_posix(), recursive=False)
    return Path(out_file)


def resolve_model_dir(path: str | os.PathLike, scratch: str | os.PathLike | None = None) -> Path:
    """A model given as a directory, a directory holding ``model.tar.gz``, or the tarball itself.

    SageMaker hands processing steps the training job's ``model.tar.gz``; the local runner and
    users often pass an unpacked directory. Tarballs are unpacked (safely) under ``scratch``.
    """
    p = Path(path)
    tarball = p if p.is_file() else p / "model.tar.gz"
    if not tarball.is_file():
        if p.is_dir():
            return p
        raise DataError(f"{p}: no model directory or model.tar.gz here; pass the training "
                        "step's model output")
    dest = Path(scratch) if scratch else Path(tempfile.mkdtemp(prefix="model-"))
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        safe_extract(tar, dest)
    return dest


def safe_extract(tar: tarfile.TarFile, dest: Path) -> None:
    """``extractall`` with the "data" filter (no absolute paths, no escaping links, no devices).
    Python before 3.11.4 (Debian bookworm's 3.11.2, the local image base) has no ``filter``:
    the same checks by hand there."""
    if hasattr(tarfile, "data_filter"):
        tar.extractall(dest, filter="data")
        return
    root = Path(dest).resolve()
    for m in tar.getmembers():
        # a symlink's target is relative to its own folder, a hard link's to the archive root
        link = (root / Path(m.name).parent / m.linkname if m.issym() else root / m.linkname
                if m.islnk() else root / m.name)
        if not all(p.resolve().is_relative_to(root) for p in (root / m.name, link)) or m.isdev():
            raise DataError(f"model tarball member {m.name!r} would land outside {root}; refusing it")
    tar.extractall(dest)  # nosec B202 - every member checked above


def backend() -> str:
    """``sagemaker`` inside real SageMaker jobs (default), ``local`` under the local runner.

    The local runner sets ``CLINICAL_ML_BACKEND=local`` for every step it runs; steps that talk
    to AWS (deploy, schedule, drift metrics) switch to their local equivalents on it.
    """
    return os.environ.get("CLINICAL_ML_BACKEND", "sagemaker")


def localize(uri: str) -> str:
    """Map an ``s3://bucket/key`` URI to the local runner's stand-in for S3.

    Under the local backend, ``s3://b/k`` becomes ``$CLINICAL_ML_S3_ROOT/b/k`` (the runner's
    ``runs/s3`` folder); local paths and every URI under the sagemaker backend pass unchanged.
    """
    root = os.environ.get("CLINICAL_ML_S3_ROOT")
    if backend() == "local" and root and uri.startswith("s3://"):
        return str(Path(root) / uri[len("s3://"):])
    return uri


def processing_dir() -> str:
    """Root of the SageMaker processing contract for argparse defaults.

    ``/opt/ml/processing`` inside a container; the step's folder in the run under the local
    runner, which sets ``CLINICAL_ML_PROCESSING_DIR`` (there is no /opt/ml on a laptop).
    Use as ``PROC = processing_dir()`` then ``default=f"{PROC}/input/mimic"``.
    """
    return os.environ.get("CLINICAL_ML_PROCESSING_DIR", "/opt/ml/processing")


RESOURCE_CONFIG = "/opt/ml/config/resourceconfig.json"


def sagemaker_shard(path: str | None = None) -> tuple[int, int]:
    """(num_shards, shard_index) of this SageMaker instance; (1, 0) outside SageMaker. The local
    runner points ``CLINICAL_ML_RESOURCE_CONFIG`` at the file of the instance it plays."""
    path = path or os.environ.get("CLINICAL_ML_RESOURCE_CONFIG") or RESOURCE_CONFIG
    try:
        cfg = json.loads(Path(path).read_text())
        hosts = sorted(cfg["hosts"])
        return len(hosts), hosts.index(cfg["current_host"])
    except (OSError, ValueError, KeyError):
        return 1, 0
