"""OpenAPI 3.0 description of the endpoint, generated from the loaded models.

The request schema names the model's real features (so a fuzzer or a client generator sees
exactly what the server accepts); ``inference/openapi.json`` is this spec for the reference
layout (``python -m inference.openapi --model DIR > inference/openapi.json``) and the server
serves the live one at ``GET /openapi.json``.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any

_NUM_OR_NULL = {"type": "number", "nullable": True}
_ERROR = {"description": "client error: the message says which row/field and what to send",
          "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}


def _outcome_schemas(model) -> dict[str, Any]:
    props = {f: _NUM_OR_NULL for f in model.features}
    hour = {"type": "object", "required": ["hour"], "additionalProperties": False,
            "properties": {"hour": {"type": "number"},
                           **{c: {"oneOf": [{"type": "number"}, {"type": "string"}], "nullable": True}
                              for c in model.channels}}}
    return {
        "Features": {"type": "object", "required": list(model.features), "properties": {
            **props, "id": {"type": "string"}}, "additionalProperties": True},
        "FeatureArray": {"type": "array", "items": _NUM_OR_NULL,
                         "minItems": len(model.features), "maxItems": len(model.features)},
        "OutcomeRequest": {"oneOf": [
            {"type": "object", "required": ["instances"], "additionalProperties": False,
             "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": model.max_rows,
                                          "items": {"oneOf": [{"$ref": "#/components/schemas/Features"},
                                                              {"$ref": "#/components/schemas/FeatureArray"}]}}}},
            {"type": "object", "required": ["series"], "additionalProperties": False,
             "properties": {"series": {"type": "array", "minItems": 1, "items": hour}}},
        ]},
    }


def _extractor_schemas(model) -> dict[str, Any]:
    note = {"type": "object", "required": ["text"], "additionalProperties": False,
            "properties": {"id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                           "text": {"type": "string", "minLength": 1, "maxLength": model.max_chars}}}
    return {"Note": note, "ExtractorRequest": {"oneOf": [
        {"type": "object", "required": ["text"], "additionalProperties": False,
         "properties": {"text": {"type": "string", "minLength": 1}}},
        {"type": "object", "required": ["texts"], "additionalProperties": False,
         "properties": {"texts": {"type": "array", "minItems": 1, "maxItems": model.max_notes,
                                  "items": {"type": "string", "minLength": 1}}}},
        {"type": "object", "required": ["instances"], "additionalProperties": False,
         "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": model.max_notes,
                                      "items": {"$ref": "#/components/schemas/Note"}}}},
    ]}}


def spec(models: list) -> dict[str, Any]:
    """The OpenAPI document for an endpoint serving ``models`` (all variants: same kind)."""
    schemas: dict[str, Any] = {"Error": {"type": "object", "required": ["status", "message"],
                                         "properties": {"status": {"type": "integer"},
                                                        "message": {"type": "string"}}}}
    refs = []
    for m in models:
        if m.kind == "outcomes" and "OutcomeRequest" not in schemas:
            schemas.update(_outcome_schemas(m))
            refs.append({"$ref": "#/components/schemas/OutcomeRequest"})
        elif m.kind == "extractor" and "ExtractorRequest" not in schemas:
            schemas.update(_extractor_schemas(m))
            refs.append({"$ref": "#/components/schemas/ExtractorRequest"})
    json_schema = refs[0] if len(refs) == 1 else {"oneOf": refs}
    text = {"schema": {"type": "string"}}
    variant_header = {"name": "X-Amzn-SageMaker-Target-Variant", "in": "header", "required": False,
                      "schema": {"type": "string"},
                      "description": "route to this production variant instead of by weight"}
    return {
        "openapi": "3.0.3",
        "info": {"title": "clinical-ml endpoint", "version": "1",
                 "description": "SageMaker hosting contract: GET /ping, POST /invocations, "
                                "and the runtime API's POST /endpoints/{EndpointName}/invocations. "
                                "Requests above 6 MB get 413."},
        "paths": {
            "/ping": {"get": {"operationId": "ping", "responses": {"200": {"description": "healthy"}}}},
            "/invocations": {"post": {
                "operationId": "invoke",
                "parameters": [variant_header],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": json_schema},
                    "application/jsonlines": text,
                    "text/csv": text,
                }},
                "responses": {
                    "200": {"description": "predictions; header X-Amzn-Invoked-Production-Variant",
                            "content": {"application/json": {"schema": {"type": "object"}},
                                        "application/jsonlines": text, "text/csv": text}},
                    "400": _ERROR, "406": _ERROR, "413": _ERROR, "415": _ERROR, "422": _ERROR,
                },
            }},
            "/endpoints/{EndpointName}/invocations": {"post": {
                "operationId": "InvokeEndpoint",
                "description": "the SageMaker runtime API (boto3 sagemaker-runtime invoke_endpoint "
                               "with endpoint_url): same bodies; the model's 4xx/5xx come back "
                               "as ModelError (424), request errors as ValidationError (400)",
                "parameters": [{"name": "EndpointName", "in": "path", "required": True,
                                "schema": {"type": "string"}}, variant_header,
                               {"name": "X-Amzn-SageMaker-Inference-Id", "in": "header",
                                "required": False, "schema": {"type": "string", "maxLength": 64}},
                               {"name": "X-Amzn-SageMaker-Custom-Attributes", "in": "header",
                                "required": False, "schema": {"type": "string", "maxLength": 1024}}],
                "requestBody": {"required": True, "content": {
                    "application/json": {"schema": json_schema},
                    "application/jsonlines": text, "text/csv": text}},
                "responses": {"200": {"description": "as POST /invocations"},
                              "400": {"description": "ValidationError"},
                              "413": {"description": "body over 6 MB"},
                              "424": {"description": "ModelError"}},
            }},
        },
        "components": {"schemas": schemas},
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="print the endpoint's OpenAPI document for a model")
    p.add_argument("--model", required=True, help="model directory or model.tar.gz")
    args = p.parse_args(argv)
    from inference.handlers import model_fn  # noqa: PLC0415

    json.dump(spec([model_fn(args.model)]), sys.stdout, indent=1)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
