"""Train the outcome models (SageMaker training contract).

Channels ``train`` and ``validation`` are split folders of the task tree (build-tasks output);
the model directory goes to ``SM_MODEL_DIR`` (SageMaker packs it as model.tar.gz).
Optional channel ``note_features`` (``SM_CHANNEL_NOTE_FEATURES``, ``--note-features DIR``):
per-admission note features, ``DIR/{ihm,readmit}/note_features.parquet`` (extract-notes); with
them ihm/readmit also get a with-notes XGBoost variant in ``with_notes/`` (the served models stay
table-only). Hyperparameters arrive as ``--name value`` arguments (dashes or underscores both
accepted)::

    python training/train_outcomes.py --train tasks/train --validation tasks/val \
        --model-dir model --tasks ihm,decomp,los,pheno,readmit --models xgboost,lr,gru --seed 0

    clinical-ml train-outcomes ...   # the same script

On several instances (``/opt/ml/input/config/resourceconfig.json`` lists more than one host)
it trains the XGBoost models only, over xgboost's collective, each host reading its shard of
the rows (``clinical_ml/outcomes/distributed.py``); the first host writes the model.
Tuning trials print ``validation:<task>_<metric>=<value>`` lines (MetricDefinitions).
"""
from __future__ import annotations

import argparse
import os
import sys

# Idle OpenMP threads sleep instead of spinning: XGBoost/torch with a fixed thread count on a
# shared or oversubscribed host otherwise slow down 10-30x. Must precede their import.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from clinical_ml.distributed import read_resource_config
from clinical_ml.logs import get_logger
from clinical_ml.outcomes import note_features
from clinical_ml.outcomes.distributed import train_all_distributed
from clinical_ml.outcomes.objective import metric_lines
from clinical_ml.outcomes.train import MODELS, HyperParameters, train_all

log = get_logger("train_outcomes")


def _csv(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip() and v.strip() != "auto"]


def _auto_flag(value: str) -> bool | None:
    """A SageMaker hyperparameter's auto/true/false (hyperparameters arrive as strings)."""
    v = value.strip().lower()
    if v not in ("auto", "true", "false", "1", "0", "yes", "no"):
        raise argparse.ArgumentTypeError(f"expected auto, true or false, got {value!r}")
    return None if v == "auto" else v in ("true", "1", "yes")


def _opt(parser, name: str, **kw):
    """``--max-rounds`` also answers to ``--max_rounds`` (SageMaker hyperparameter keys)."""
    names = [f"--{name}"] + ([f"--{name.replace('-', '_')}"] if "-" in name else [])
    parser.add_argument(*names, **kw)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _opt(p, "train", default=env.get("SM_CHANNEL_TRAIN", "/opt/ml/input/data/train"),
         help="train split folder (SM_CHANNEL_TRAIN)")
    _opt(p, "validation", default=env.get("SM_CHANNEL_VALIDATION", "/opt/ml/input/data/validation"),
         help="validation split folder (SM_CHANNEL_VALIDATION)")
    _opt(p, "note-features", default=env.get("SM_CHANNEL_NOTE_FEATURES", "/opt/ml/input/data/note_features"),
         help="note features folder <task>/note_features.parquet (SM_CHANNEL_NOTE_FEATURES); "
              "absent or empty: table features only")
    _opt(p, "model-dir", default=env.get("SM_MODEL_DIR", "/opt/ml/model"), help="output model directory")
    _opt(p, "tasks", type=_csv, default=[], help="comma list; default: every task in the train split")
    _opt(p, "models", type=_csv, default=list(MODELS), help="comma list of xgboost,lr,gru")
    hp = HyperParameters()
    _opt(p, "seed", type=int, default=hp.seed)
    # fixed for reproducibility; fewer when the job has fewer CPUs (SM_NUM_CPUS: a local runner
    # running tuning trials side by side gives each its share)
    _opt(p, "nthread", type=int, default=min(hp.nthread, int(env.get("SM_NUM_CPUS") or hp.nthread)),
         help="XGBoost/torch threads")
    _opt(p, "max-rounds", type=int, default=hp.max_rounds)
    _opt(p, "early-stopping-rounds", type=int, default=hp.early_stopping_rounds)
    _opt(p, "learning-rate", type=float, default=hp.learning_rate)
    _opt(p, "max-depth", type=int, default=hp.max_depth)
    _opt(p, "subsample", type=float, default=hp.subsample)
    _opt(p, "colsample-bytree", type=float, default=hp.colsample_bytree)
    _opt(p, "min-child-weight", type=float, default=hp.min_child_weight)
    _opt(p, "reg-lambda", type=float, default=hp.reg_lambda, help="XGBoost lambda (L2 on leaf weights)")
    _opt(p, "reg-alpha", type=float, default=hp.reg_alpha, help="XGBoost alpha (L1 on leaf weights)")
    _opt(p, "lr-c", type=float, default=None, help="override the LR inverse regularisation for every task")
    _opt(p, "gru-epochs", type=int, default=hp.gru_epochs)
    _opt(p, "gru-hidden", type=int, default=hp.gru_hidden)
    _opt(p, "gru-batch-size", type=int, default=hp.gru_batch_size)
    _opt(p, "gru-lr", type=float, default=hp.gru_lr)
    _opt(p, "gru-device", default=None, help="cuda or cpu (default: cuda if available)")
    _opt(p, "external-memory", type=_auto_flag, default=hp.external_memory,
         help="true: XGBoost's quantised rows in disk pages (flat peak RSS, the same booster); "
              "false: in memory; auto (default): pages from ~100 k training rows")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    hp = HyperParameters(seed=args.seed, nthread=args.nthread, max_rounds=args.max_rounds,
                         early_stopping_rounds=args.early_stopping_rounds,
                         learning_rate=args.learning_rate, max_depth=args.max_depth,
                         subsample=args.subsample, colsample_bytree=args.colsample_bytree,
                         min_child_weight=args.min_child_weight, reg_lambda=args.reg_lambda,
                         reg_alpha=args.reg_alpha, lr_c=args.lr_c,
                         gru_epochs=args.gru_epochs, gru_hidden=args.gru_hidden,
                         gru_batch_size=args.gru_batch_size, gru_lr=args.gru_lr,
                         gru_device=args.gru_device, external_memory=args.external_memory)
    resources = read_resource_config()
    if len(resources["hosts"]) > 1:  # several instances: XGBoost only, each host reads its shard of the rows
        log.info("distributed XGBoost over %d hosts (this is %s)", len(resources["hosts"]), resources["current_host"])
        training = train_all_distributed(args.train, args.validation, args.model_dir, args.tasks or None, hp, resources)
        for line in metric_lines(training):
            print(line, flush=True)
        return 0
    sources = note_features.locate(args.note_features)
    if not sources:
        log.info("no note features in %s: table features only", args.note_features)
    meta = train_all(args.train, args.validation, args.model_dir, args.tasks or None, args.models, hp,
                     note_features=sources)
    for task, summary in meta["training"].items():
        trained = ", ".join(f"xgboost {summary['xgboost']['rounds']} rounds" if m == "xgboost" else m
                            for m in meta["task_models"][task])
        log.info("%s: n_train=%d n_val=%d: %s", task, summary["n_train"], summary["n_val"], trained or "nothing")
    for line in metric_lines(meta["training"]):  # what the tuning job's MetricDefinitions read
        print(line, flush=True)
    log.info("model written to %s (code %s, data %s)", args.model_dir, meta["code_version"],
             (meta["data_manifest_sha256"] or "no manifest")[:12])
    return 0


if __name__ == "__main__":
    sys.exit(main())
