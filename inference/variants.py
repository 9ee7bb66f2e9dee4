"""What a Deploy changes on an endpoint: the variant plan, the kind of update, the champion it
keeps (``inference/deploy.py``'s module docstring has the rules). Shared by the step script and
its two backends (``deploy_local``, ``deploy_sagemaker``), which the script imports: here, not in
the script, so no backend imports the script back."""
from __future__ import annotations

from typing import Any

from clinical_ml.io import DataError

CHAMPION, CHALLENGER, PREVIOUS = "champion", "challenger", "previous"
TRAFFIC = ("all", "canary")


def plan_variants(new_arn: str, champion_arn: str | None, challenger_weight: float,
                  traffic: str = "all") -> list[dict[str, Any]]:
    """Production variants for the new package and the previous champion (module docstring)."""
    if traffic not in TRAFFIC:
        raise DataError(f"traffic {traffic!r} is not one of {', '.join(TRAFFIC)}")
    if champion_arn is None or champion_arn == new_arn:
        return [{"name": CHAMPION, "model_package_arn": new_arn, "weight": 1.0}]
    if traffic == "all":
        return [{"name": CHAMPION, "model_package_arn": new_arn, "weight": 1.0},
                {"name": PREVIOUS, "model_package_arn": champion_arn, "weight": 0.0}]
    return [{"name": CHAMPION, "model_package_arn": champion_arn, "weight": round(1.0 - challenger_weight, 6)},
            {"name": CHALLENGER, "model_package_arn": new_arn, "weight": round(challenger_weight, 6)}]


def classify_change(current: dict[str, tuple[Any, float]] | None,
                    desired: dict[str, tuple[Any, float]]) -> str:
    """What an update must do, from ``{variant: (what it runs, weight)}`` now and wanted.

    ``create`` (no endpoint), ``none``, ``weights`` (same variants running the same models:
    only traffic moves, no new instances) or ``variants`` (a new endpoint config).
    """
    if current is None:
        return "create"
    if {n: k for n, (k, _) in current.items()} != {n: k for n, (k, _) in desired.items()}:
        return "variants"
    same = all(abs(current[n][1] - w) < 1e-9 for n, (_, w) in desired.items())
    return "none" if same else "weights"


def previous_approved(summaries: list[dict[str, Any]], new_arn: str) -> str | None:
    """The newest Approved package other than ``new_arn`` (summaries: newest first)."""
    for s in summaries:
        if s.get("ModelApprovalStatus", "Approved") == "Approved" and s["ModelPackageArn"] != new_arn:
            return s["ModelPackageArn"]
    return None


def check_package(desc: dict[str, Any], require_approval: bool) -> None:
    status = desc.get("ModelApprovalStatus")
    if status == "Rejected" or (require_approval and status != "Approved"):
        raise DataError(f"model package {desc.get('ModelPackageArn')} is {status}; approve it "
                        "(update_model_package) or pass --require-approval false")
