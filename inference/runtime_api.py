"""The SageMaker runtime API's ``InvokeEndpoint`` on the local endpoint.

Application code written for SageMaker calls ``boto3.client("sagemaker-runtime")
.invoke_endpoint(EndpointName=..., Body=..., ContentType=..., Accept=..., TargetVariant=...,
InferenceId=..., CustomAttributes=...)``; with ``endpoint_url="http://127.0.0.1:PORT"`` the
same call reaches ``POST /endpoints/<name>/invocations`` of ``clinical-ml serve`` (routed in
``inference/app.py``). This module holds what the runtime front end adds to the container
contract, in the shapes botocore parses (its ``rest-json`` protocol, the
``sagemaker-runtime`` service model):

- the request checks SageMaker makes before the model sees anything: the endpoint name (a
  ``ValidationError``, 400, for a name this server does not serve), ``InferenceId`` (1-64
  printable characters) and ``CustomAttributes`` (at most 1,024 ASCII characters); an unknown
  ``TargetVariant`` is a ``ValidationError`` too; a body over the 6 MB limit is a bare 413,
  as SageMaker answers it (botocore raises a ``ClientError`` with code ``413``);
- errors of the model (the container's 4xx/5xx) become ``ModelError`` (424) with
  ``OriginalStatusCode`` and ``OriginalMessage``, so boto3 raises
  ``client.exceptions.ModelError`` exactly as it does against SageMaker;
- every answer carries ``x-amzn-RequestId``; the error type goes in ``x-amzn-ErrorType``.

Signatures are not verified: the server binds 127.0.0.1 (docs/serving.md); any credentials,
dummy ones included, are accepted. Custom attributes are opaque: never logged, never captured.
"""
from __future__ import annotations

import re
import uuid

import orjson

PREFIX = "/endpoints/"
SUFFIX = "/invocations"
CUSTOM_ATTRIBUTES = "x-amzn-sagemaker-custom-attributes"
CUSTOM_ATTRIBUTES_OUT = b"x-amzn-sagemaker-custom-attributes"
REQUEST_ID = b"x-amzn-requestid"
ERROR_TYPE = b"x-amzn-errortype"
MAX_CUSTOM_ATTRIBUTES = 1024
_INFERENCE_ID = re.compile(r"\S[\x20-\x7e]{0,63}")  # the service model: 1-64, \A\S[\p{Print}]*\z
_ENDPOINT_NAME = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}")


class ApiError(Exception):
    """An error of the runtime front end: HTTP status, botocore error code, message."""

    def __init__(self, status: int, code: str | None, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def endpoint_name(path: str) -> str | None:
    """``/endpoints/<name>/invocations`` -> ``<name>``; None for any other path."""
    if path.startswith(PREFIX) and path.endswith(SUFFIX):
        name = path[len(PREFIX):-len(SUFFIX)]
        if name and "/" not in name:
            return name
    return None


def check(name: str, served: str, inference_id: str | None, custom: str | None) -> None:
    """SageMaker's own checks of an InvokeEndpoint request; raises ``ApiError`` (400)."""
    if name != served:
        shown = name[:63] if _ENDPOINT_NAME.fullmatch(name) else "(invalid name)"
        raise ApiError(400, "ValidationError", f"Endpoint {shown} of account local not found. "
                                               f"This server serves endpoint {served!r}.")
    if inference_id is not None and not _INFERENCE_ID.fullmatch(inference_id):
        raise ApiError(400, "ValidationError", "InferenceId must be 1 to 64 printable "
                                               "characters, the first not a space")
    if custom is not None and (len(custom) > MAX_CUSTOM_ATTRIBUTES or not custom.isascii()):
        raise ApiError(400, "ValidationError", "CustomAttributes must be at most "
                                               f"{MAX_CUSTOM_ATTRIBUTES} ASCII characters")


def request_id() -> bytes:
    return str(uuid.uuid4()).encode()


def error(status: int, code: str | None, message: str) -> tuple[int, bytes, list]:
    """(status, body, headers) of a front-end error as SageMaker sends it."""
    headers = [(REQUEST_ID, request_id())]
    if code:
        headers.append((ERROR_TYPE, code.encode()))
    return status, orjson.dumps({"message": message}), headers


def model_error(status: int, message: str, endpoint: str) -> tuple[int, bytes, list]:
    """The container answered ``status`` (4xx/5xx): SageMaker's ``ModelError`` (424)."""
    kind = "client" if status < 500 else "server"
    original = orjson.dumps({"status": status, "message": message}).decode()
    body = {"ErrorCode": f"{kind.upper()}_ERROR_FROM_MODEL", "OriginalStatusCode": status,
            "OriginalMessage": original,
            "Message": f'Received {kind} error ({status}) from primary with message "{original}". '
                       f"See server.log of local endpoint {endpoint} for more information."}
    return 424, orjson.dumps(body), [(REQUEST_ID, request_id()), (ERROR_TYPE, b"ModelError")]
