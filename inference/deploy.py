"""Deploy step (processing contract): a promoted model package -> the endpoint's traffic.

The step runs only after CheckPromotion passed (docs/retraining.md), so the package it gets
is the promoted one. ``--traffic`` (pipeline parameter ``PromotionTraffic``) says what it then
serves (docs/serving.md, "Deploy"):

- ``all`` (default): ``champion`` = ``--model-package-arn`` at weight 1.0, and ``previous`` =
  the newest *other* Approved package of the group (what served before) at weight 0.0. The old
  model stays loaded but gets no traffic, so a rollback is a weights-only change
  (UpdateEndpointWeightsAndCapacities, seconds) instead of a new endpoint config (minutes).
- ``canary``: ``champion`` = the previous Approved package at ``1 - challenger_weight``,
  ``challenger`` = the new package at ``challenger_weight``. Nothing shifts the rest of the
  traffic later: a second Deploy of the same package with ``--traffic all`` finishes it.

When the group has no other Approved package (first deploy), or the newest one is this very
package, the endpoint has one variant, ``champion``, serving the new package with all traffic.
Variant names stay stable (``champion`` serves the production model under ``all``), so capture
paths and drift schedules do too.

Backends: ``sagemaker`` (boto3: create_model from the package; weights-only changes with
update_endpoint_weights_and_capacities, otherwise a new endpoint config with the variants and
DataCaptureConfig under KMS, then create_endpoint or update_endpoint) and ``local`` (packages
from ``clinical_ml.registry.LocalRegistry``, ``clinical-ml serve`` started detached, replacing a
running local endpoint of the same name). Both write ``endpoint.json`` (``change``: ``create``,
``variants``, ``weights`` or ``none``).
"""
from __future__ import annotations

import argparse
import os
import sys

from clinical_ml import audit
from clinical_ml.io import backend, write_json
from clinical_ml.logs import get_logger
from inference.variants import TRAFFIC

log = get_logger(__name__)
OUTPUT = "/opt/ml/processing/output/deploy"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="inference/deploy.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--model-package-arn", help="the package to deploy (the challenger)")
    p.add_argument("--model-package-group", help="group to find the champion in (default: the package's)")
    p.add_argument("--endpoint-name", default=os.environ.get("CLINICAL_ML_ENDPOINT", "clinical-ml-outcomes"))
    p.add_argument("--instance-type", default="ml.m5.large")
    p.add_argument("--instance-count", type=int, default=1)
    p.add_argument("--traffic", choices=TRAFFIC, default="all",
                   help="all: the new package serves all traffic (the old one kept at weight 0); "
                        "canary: the new package gets --challenger-weight")
    p.add_argument("--challenger-weight", type=float, default=0.2,
                   help="--traffic canary: share of traffic for the new package (0..1)")
    p.add_argument("--capture-percent", type=float, default=100.0)
    p.add_argument("--capture-uri", help="s3:// prefix (local backend: localized path) for capture")
    p.add_argument("--kms-key-id", help="KMS key for captured data and endpoint volumes")
    p.add_argument("--role-arn", default=os.environ.get("ROLE_ARN"))
    p.add_argument("--image-uri", help="serving image; default: the image in the model package")
    p.add_argument("--backend", choices=["sagemaker", "local"], default=backend())
    p.add_argument("--require-approval", choices=["true", "false"], default="true",
                   help="refuse a package whose status is not Approved")
    p.add_argument("--wait", action="store_true", help="sagemaker: wait until InService")
    p.add_argument("--output-dir", default=OUTPUT)
    p.add_argument("--host", default="127.0.0.1", help="local backend: bind address")
    p.add_argument("--port", type=int, default=0, help="local backend: port (0: keep/pick one)")
    p.add_argument("--state-dir", help="local backend: endpoints folder (default: beside the registry)")
    p.add_argument("--delete", action="store_true", help="local backend: stop the named endpoint")
    a = p.parse_args(argv)
    if not a.delete and not a.model_package_arn:
        p.error("--model-package-arn is required")
    if not 0 <= a.challenger_weight <= 1:
        p.error("--challenger-weight must be within 0..1")
    if not 0 <= a.capture_percent <= 100:
        p.error("--capture-percent must be within 0..100")
    if a.instance_count < 1:
        p.error("--instance-count must be >= 1")
    return a


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.backend == "local":
        from inference import deploy_local as impl  # noqa: PLC0415
    else:
        from inference import deploy_sagemaker as impl  # noqa: PLC0415
    if args.delete:
        impl.delete(args)
        return 0
    info = impl.deploy(args)
    out = write_json(os.path.join(args.output_dir, "endpoint.json"), info)
    audit.log_event("endpoint_updated" if info.get("action") == "update" else "endpoint_deployed",
                    endpoint=info["endpoint_name"], backend=args.backend, change=info.get("change"),
                    variants=[{k: v.get(k) for k in ("name", "model_package_arn", "weight")}
                              for v in info["variants"]])
    log.info("endpoint %s %s (%s) with %d variant(s); wrote %s", info["endpoint_name"], info["action"],
             info.get("change"), len(info["variants"]), out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
