"""An offline SageMaker ``PipelineSession``: building the definition needs no network and no
credentials.

The SDK otherwise reaches AWS while *building* a definition: it looks up (and creates) the
default bucket, validates the role with IAM and sends telemetry. None of that is needed to
produce JSON, so we preset the bucket, skip role validation and opt out of telemetry.
"""
from __future__ import annotations

import contextlib
import json
import os
import types
from pathlib import Path
from typing import Iterator

CONFIG = Path(__file__).with_name("sagemaker_config.yaml")
DEFAULT_REGION = "us-east-1"


def prepare_environment(region: str | None = None) -> str:
    """Set the environment the SDK reads at import and session time; return the region."""
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    os.environ.setdefault("AWS_DEFAULT_REGION", region)
    os.environ["SAGEMAKER_VALIDATE_ROLE"] = "false"
    os.environ.setdefault("SAGEMAKER_USER_CONFIG_OVERRIDE", str(CONFIG))
    return region


def _memoized(validate):
    """``validate(config)`` that runs once per distinct config."""
    if getattr(validate, "_clinical_ml_memoized", False):
        return validate
    seen: set[str] = set()

    def once(sagemaker_config=None):
        key = json.dumps(sagemaker_config, sort_keys=True, default=str)
        if key not in seen:
            validate(sagemaker_config)
            seen.add(key)

    once._clinical_ml_memoized = True
    return once


def _validate_config_once() -> None:
    """Validate each distinct SDK config once instead of on every config lookup.

    The SDK re-checks its (large) JSON schema and re-validates the config for every value it
    reads and every session it creates, about 200 times per definition: 30 s instead of 5.
    Same check, memoized.
    """
    from sagemaker.core.config import config as config_module
    from sagemaker.core.config.config_manager import SageMakerConfig

    SageMakerConfig.validate_sagemaker_config = staticmethod(_memoized(SageMakerConfig.validate_sagemaker_config))
    config_module.validate_sagemaker_config = _memoized(config_module.validate_sagemaker_config)


def pipeline_session(region: str, default_bucket: str, boto_session=None):
    """A ``PipelineSession`` whose default bucket is preset (never looked up or created).

    The session carries a dummy static key: building a definition signs no request, and
    looking up real credentials could itself reach the network (instance metadata). API calls
    (upsert, start) use their own boto3 clients, see ``pipelines.aws``.
    """
    prepare_environment(region)
    import boto3
    from sagemaker.core.workflow.pipeline_context import PipelineSession

    _validate_config_once()
    if boto_session is None:
        boto_session = boto3.Session(region_name=region, aws_access_key_id="offline",
                                     aws_secret_access_key="offline")
    session = PipelineSession(boto_session=boto_session, default_bucket=default_bucket)
    session._default_bucket = default_bucket  # skip the bucket existence check (network)
    return session


@contextlib.contextmanager
def shared_boto_session(boto_session) -> Iterator[None]:
    """Let the SDK's throwaway local sessions reuse ``boto_session`` while steps are built.

    Each step constructor instantiates a ``LocalSagemakerClient`` only to read a method name;
    that creates a fresh boto3 session which reloads the service models (about 1 s per step).
    Sharing one session (and so one model loader) makes the build about twice as fast.
    """
    from sagemaker.core.local import local_session

    original = local_session.boto3
    local_session.boto3 = types.SimpleNamespace(Session=lambda *args, **kwargs: boto_session)
    try:
        yield
    finally:
        local_session.boto3 = original
