"""``python -m pipelines.images [--family F ...] [--tag T] [--push] [--print] [--local]``: build (and push)
the clinical-ml images. Without a Docker engine it prints the commands and exits 2. ``--local``
builds with podman on the local base (scripts/containers-setup.sh) and records sizes and build
times in ``bench-results/images.json``."""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipelines.images import (DLC_ACCOUNT, IMAGE_REPOSITORIES, REPO_ROOT, build_commands, build_context,
                              docker_available, local_pip_config)


def _ecr_login(region: str, account: str) -> None:
    """docker login to our registry (push) and SageMaker's (base image pull)."""
    import boto3

    ecr = boto3.client("ecr", region_name=region)
    for registry in (account, DLC_ACCOUNT):
        auth = ecr.get_authorization_token(registryIds=[registry])["authorizationData"][0]
        user, password = base64.b64decode(auth["authorizationToken"]).decode().split(":", 1)
        subprocess.run(["docker", "login", "--username", user, "--password-stdin", auth["proxyEndpoint"]],
                       input=password.encode(), check=True)


def _ensure_repositories(region: str) -> None:
    import boto3

    ecr = boto3.client("ecr", region_name=region)
    for repo in IMAGE_REPOSITORIES.values():
        try:
            ecr.describe_repositories(repositoryNames=[repo])
        except ecr.exceptions.RepositoryNotFoundException:
            ecr.create_repository(repositoryName=repo, imageScanningConfiguration={"scanOnPush": True},
                                  encryptionConfiguration={"encryptionType": "KMS"}, imageTagMutability="MUTABLE")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m pipelines.images", description=__doc__.splitlines()[0])
    p.add_argument("--family", action="append", choices=sorted(IMAGE_REPOSITORIES),
                   help="image family (repeatable; default: all)")
    p.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1")
    p.add_argument("--account", default=os.environ.get("AWS_ACCOUNT_ID"),
                   help="ECR account (default: from STS when pushing, else 000000000000)")
    p.add_argument("--tag", default=os.environ.get("IMAGE_TAG", "latest"))
    p.add_argument("--push", action="store_true", help="create the ECR repositories if needed and push")
    p.add_argument("--print", dest="print_only", action="store_true", help="print the commands, run nothing")
    p.add_argument("--local", action="store_true",
                   help="build here with podman on the local base image (make images; docs/containers.md)")
    p.add_argument("--record", type=Path, default=REPO_ROOT / "bench-results" / "images.json",
                   help="with --local: where sizes and build times go")
    args = p.parse_args(argv)
    if args.local:
        return build_local(args.family or ["processing", "training-cpu", "inference", "training-gpu"],
                           args.region, args.account or "000000000000", args.tag, args.record, args.print_only)
    families = args.family or list(IMAGE_REPOSITORIES)
    account = args.account
    if account is None and args.push and not args.print_only:
        import boto3

        account = boto3.client("sts", region_name=args.region).get_caller_identity()["Account"]
    account = account or "000000000000"

    plan = [cmd for f in families for cmd in build_commands(f, args.region, account, args.tag, "<context>", args.push)]
    if args.print_only or not docker_available():
        if not args.print_only:
            print("No Docker engine here (docker not found or `docker info` failed): nothing built.\n"
                  "On a machine with Docker (and, for --push, AWS credentials allowed to use ECR), run\n"
                  "`make image PUSH=1`; it does the following, <context> being a copy of the repository's\n"
                  "code (setup.py, requirements*.txt, clinical_ml/, processing/, training/, inference/,\n"
                  "monitoring/, pipelines/):", file=sys.stderr)
        for cmd in plan:
            print(" ".join(cmd))
        return 0 if args.print_only else 2

    if args.push:
        _ensure_repositories(args.region)
        _ecr_login(args.region, account)
    with tempfile.TemporaryDirectory(prefix="clinical-ml-image-") as tmp:
        context = str(build_context(Path(tmp)))
        for f in families:
            for cmd in build_commands(f, args.region, account, args.tag, context, args.push):
                print("+ " + " ".join(cmd), file=sys.stderr)
                subprocess.run(cmd, check=True)
    return 0


def build_local(families: list[str], region: str, account: str, tag: str, record: Path, print_only: bool) -> int:
    """podman builds of the Dockerfile's targets FROM the local base, tagged with the URIs the
    definition's image parameters default to; this machine's pip settings are bind-mounted."""
    from clinical_ml import containers  # noqa: PLC0415
    from clinical_ml.io import write_json  # noqa: PLC0415
    from pipelines.local.engine import source_hash  # noqa: PLC0415

    why = containers.why_unavailable()
    if not why and not containers.image_exists(containers.base_image()):
        why = f"the base image {containers.base_image()} is missing (run {containers.SETUP})"
    if why and not print_only:
        print(f"make images: {why}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="clinical-ml-image-") as tmp:
        context = build_context(Path(tmp) / "context")
        _, volumes = local_pip_config(Path(tmp) / "pip" / "pip.conf")
        extra = [*volumes, "--build-arg", f"SOURCE_HASH={source_hash(REPO_ROOT)}", "--layers"]
        for family in families:
            (cmd,) = build_commands(family, region, account, tag, str(context), False, engine="podman",
                                    base=containers.base_image(), extra=extra)
            print("+ " + " ".join(cmd), file=sys.stderr)
            if print_only:
                continue
            t0 = time.monotonic()
            proc = subprocess.run(containers.podman(*cmd[1:]), env=containers.engine_env())
            seconds = round(time.monotonic() - t0, 1)
            if proc.returncode != 0:
                print(f"make images: {family} failed after {seconds} s (exit {proc.returncode})", file=sys.stderr)
                return 1
            image = cmd[cmd.index("--tag") + 1]
            size = int(containers.run(["image", "inspect", "--format", "{{.Size}}", image]).stdout.strip() or 0)
            rows.append({"family": family, "image": image, "build_s": seconds, "size_bytes": size,
                         "size_mb": round(size / 1e6), "id": containers.image_id(image)[:12]})
            print(f"{family}: {image} {rows[-1]['size_mb']} MB, built in {seconds} s", file=sys.stderr)
    if rows:
        write_json(record, {"engine": "podman", "base": containers.base_image(), "images": rows})
        print(f"{'family':<14}{'MB':>7}{'build s':>9}  image", file=sys.stderr)
        for r in rows:
            print(f"{r['family']:<14}{r['size_mb']:>7}{r['build_s']:>9}  {r['image']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
