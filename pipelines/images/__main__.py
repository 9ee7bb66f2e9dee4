"""``python -m pipelines.images [--family F ...] [--tag T] [--push] [--print]``: build (and push)
the clinical-ml images. Without a Docker engine it prints the commands and exits 2."""
from __future__ import annotations

import argparse
import base64
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from pipelines.images import DLC_ACCOUNT, IMAGE_REPOSITORIES, build_commands, build_context, docker_available


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
    args = p.parse_args(argv)
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


if __name__ == "__main__":
    sys.exit(main())
