"""Champion vs challenger on the same held-out rows -> comparison.json (SageMaker processing contract).

Inputs: the production model (``--champion-group GROUP``: the newest Approved version of that
model package group, looked up when the step runs, as the pipeline's CompareModels step does;
or ``input/champion``: model.tar.gz or a directory; ``--champion none`` when nothing is in
production yet), the newly trained model (``input/challenger``) and the test split of the new
data window (``input/test``). Output: ``output/comparison/
comparison.json``, written atomically (a temporary sibling renamed into place), the PropertyFile
a ConditionStep reads: ``decision.promote`` (bool) and ``decision.reason`` (docs/contracts.md).

Both models predict the same rows; AUROC, Brier, ECE and calibration slope/intercept of each
and the challenger-minus-champion differences share one set of seeded bootstrap resamples
(paired CIs). Rule (clinical_ml/outcomes/champion.py, docs/retraining.md): promote when the
AUROC difference's 95% CI lower bound is above ``-auroc-margin`` and the ECE is not worse by
more than ``--ece-margin``. A group without an Approved version: promote, reason "no production
model" (``clinical_ml/outcomes/production.py``). Exit 0 whatever the decision; 2 on bad input
(a missing model file, a task one model lacks, a missing test split), naming the file.

    python processing/compare_models.py --champion prod/model.tar.gz --challenger new/ --test tasks/test --output cmp/
    clinical-ml compare-models --champion none --challenger new/ --test tasks/test --output cmp/
    clinical-ml compare-models --champion-group clinical-ml-outcomes --challenger new/ --test tasks/test --output cmp/
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as evaluate_outcomes: before xgboost's import

from clinical_ml import audit
from clinical_ml.io import DataError, processing_dir, resolve_model_dir, write_json
from clinical_ml.logs import get_logger
from clinical_ml.outcomes.artifact import load
from clinical_ml.outcomes.bootstrap import DEFAULT_RESAMPLES
from clinical_ml.outcomes.champion import Rule, compare
from clinical_ml.outcomes.production import production_model

log = get_logger("compare_models")
BASE = processing_dir()
NO_CHAMPION = ("none", "")
OUTPUT_FILE = "comparison.json"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    rule = Rule()
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    champion = p.add_mutually_exclusive_group()
    champion.add_argument("--champion", default=None,
                          help="production model: model.tar.gz or folder; 'none' = no champion yet (promote); "
                               f"default $CHAMPION_MODEL or {BASE}/input/champion")
    champion.add_argument("--champion-group", default=None, metavar="GROUP",
                          help="look the champion up: the newest Approved version of this model package group "
                               "(SageMaker registry, or the local runner's); none Approved = promote")
    p.add_argument("--challenger", default=f"{BASE}/input/challenger", help="new model: model.tar.gz or folder")
    p.add_argument("--test", default=f"{BASE}/input/test", help="test split folder of the new window's task tree")
    p.add_argument("--output", default=f"{BASE}/output/comparison", help=f"output folder ({OUTPUT_FILE})")
    p.add_argument("--tasks", default="ihm", help="comma list of binary tasks to compare (default ihm)")
    p.add_argument("--model", default="xgboost", help="which saved model of each side to score (the served one)")
    p.add_argument("--bootstrap", type=int, default=DEFAULT_RESAMPLES, help="paired bootstrap resamples")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--auroc-margin", type=float, default=float(os.environ.get("AUROC_MARGIN", rule.auroc_margin)),
                   help="non-inferiority margin on the AUROC difference")
    p.add_argument("--ece-margin", type=float, default=float(os.environ.get("ECE_MARGIN", rule.ece_margin)),
                   help="largest ECE increase accepted")
    return p.parse_args(argv)


def _load(path: str, role: str, scratch: str):
    try:
        return load(resolve_model_dir(path, Path(scratch) / role))
    except DataError as e:
        raise DataError(f"{role} model: {e}") from None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.auroc_margin < 0 or args.ece_margin < 0:
        raise DataError("--auroc-margin and --ece-margin must be >= 0")
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]
    rule = Rule(auroc_margin=args.auroc_margin, ece_margin=args.ece_margin)
    with tempfile.TemporaryDirectory(prefix="compare-") as scratch:
        package = None
        if args.champion_group:
            path, package = production_model(args.champion_group, Path(scratch) / "champion-data")
            given = package.get("model_data_url") or "none"
            log.info("champion: %s", package["model_package_arn"] or f"no Approved version in {args.champion_group}")
        else:
            given = args.champion or os.environ.get("CHAMPION_MODEL") or f"{BASE}/input/champion"
            path = None if given.strip().lower() in NO_CHAMPION else given
        champion = None if path is None else _load(str(path), "champion", scratch)
        challenger = _load(args.challenger, "challenger", scratch)
        doc = compare(champion, challenger, args.test, tasks, args.model, rule, args.bootstrap, args.seed,
                      given={"champion": given, "challenger": args.challenger})
    if package is not None:
        doc["champion_package"] = package
        if champion is None:
            doc["decision"]["reason"] = (f"no production model (no Approved version in model package group "
                                         f"{args.champion_group}): promote; {doc['decision']['reason']}")
    path = write_json(Path(args.output) / OUTPUT_FILE, doc)  # atomic: temp sibling, then rename
    audit.log_event("models_compared", promote=doc["decision"]["promote"], reason=doc["decision"]["reason"],
                    champion=(package or {}).get("model_package_arn") or given,
                    champion_fingerprint=(doc["champion"] or {}).get("fingerprint"),
                    challenger_fingerprint=doc["challenger"]["fingerprint"],
                    test_data_manifest_sha256=doc["test"]["data_manifest_sha256"])
    log.info("champion vs challenger: promote=%s", doc["decision"]["promote"])
    print(json.dumps({"promote": doc["decision"]["promote"], "reason": doc["decision"]["reason"],
                      "output": str(path)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
