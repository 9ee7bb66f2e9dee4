"""Run a Tuning step (CreateHyperParameterTuningJob) on this machine, as SageMaker would.

- Trials are training jobs built from ``TrainingJobDefinition`` (static hyperparameters plus the
  trial's tuned ones), run by the same code as a Training step (``jobs.prepare_training``).
- The strategy comes from a well-kept library: ``Bayesian`` is Optuna's TPE (seeded by
  ``RandomSeed``; a few random start-up trials, then the model), ``Random`` its random sampler.
- ``MaxParallelTrainingJobs`` trials run side by side, each told it has its share of the CPUs
  (``SM_NUM_CPUS``); TPE's "constant liar" keeps parallel suggestions apart.
- A trial's objective is read from its log with the definition's ``MetricDefinitions`` regexes
  (the last value printed, as SageMaker takes the final one). A trial that fails, or prints no
  objective, is a failed trial; the tuning job fails only when every trial does.
- The result is DescribeHyperParameterTuningJob + ListTrainingJobsForHyperParameterTuningJob
  shaped (``TrainingJobSummaries`` best first, so ``get_top_model_s3_uri(0)`` is the best).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import re
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from clinical_ml.io import DataError

STRATEGIES = ("Bayesian", "Random")


@dataclass
class Trial:
    """One training job of the tuning job."""

    number: int
    name: str
    tuned: dict[str, str]
    status: str = "InProgress"           # Completed | Failed
    objective: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    failure: str = ""
    start: str = ""
    end: str = ""
    model_uri: str = ""


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def trial_name(tuning_job: str, number: int, tuned: dict[str, str]) -> str:
    """SageMaker's ``<tuning job>-<NNN>-<8 hex>`` naming."""
    digest = hashlib.sha256(repr(sorted(tuned.items())).encode()).hexdigest()[:8]
    return f"{tuning_job}-{number:03d}-{digest}"


def trial_request(definition: dict[str, Any], tuned: dict[str, str]) -> dict[str, Any]:
    """The CreateTrainingJob-shaped arguments of one trial (what ``prepare_training`` reads)."""
    algo = dict(definition.get("AlgorithmSpecification") or {})
    hps = {k: str(v) for k, v in (definition.get("StaticHyperParameters") or {}).items()}
    hps.update(tuned)
    return {"AlgorithmSpecification": algo, "HyperParameters": hps,
            "InputDataConfig": definition.get("InputDataConfig", []),
            "OutputDataConfig": definition.get("OutputDataConfig", {}),
            "ResourceConfig": definition.get("ResourceConfig", {}),
            "StoppingCondition": definition.get("StoppingCondition", {}),
            "Environment": definition.get("Environment") or {}}


def read_metrics(log_text: str, definitions: list[dict[str, str]]) -> dict[str, float]:
    """The last value each MetricDefinitions regex captures in a trial's log."""
    out: dict[str, float] = {}
    for d in definitions:
        values = re.findall(d["Regex"], log_text)
        if values:
            last = values[-1][0] if isinstance(values[-1], tuple) else values[-1]
            try:
                out[d["Name"]] = float(last)
            except ValueError:
                continue
    return out


def _sampler(strategy: str, seed: int | None, max_jobs: int):
    import optuna  # noqa: PLC0415 (only the runner needs it, and only for tuning)

    if strategy == "Random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "Bayesian":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=max(2, min(10, max_jobs // 3)),
                                          constant_liar=True, multivariate=True)
    raise DataError(f"tuning Strategy {strategy!r}: the local runner runs {', '.join(STRATEGIES)} "
                    "(Hyperband and Grid need SageMaker); set TuningStrategy to one of those")


def suggest(trial, ranges: dict[str, list[dict[str, Any]]]) -> dict[str, str]:
    """The trial's hyperparameters from ParameterRanges, as the strings SageMaker passes."""
    out: dict[str, str] = {}
    for r in ranges.get("IntegerParameterRanges", []):
        lo, hi = int(float(r["MinValue"])), int(float(r["MaxValue"]))
        out[r["Name"]] = str(trial.suggest_int(r["Name"], lo, hi, log=r.get("ScalingType") == "Logarithmic"))
    for r in ranges.get("ContinuousParameterRanges", []):
        lo, hi, scaling = float(r["MinValue"]), float(r["MaxValue"]), r.get("ScalingType", "Auto")
        if scaling == "ReverseLogarithmic":  # log-scaled distance from 1 (values close to 1)
            value = 1.0 - trial.suggest_float(f"1-{r['Name']}", 1.0 - hi, 1.0 - lo, log=True)
        else:
            value = trial.suggest_float(r["Name"], lo, hi, log=scaling == "Logarithmic")
        out[r["Name"]] = repr(round(value, 8))
    for r in ranges.get("CategoricalParameterRanges", []):
        out[r["Name"]] = str(trial.suggest_categorical(r["Name"], list(r["Values"])))
    return out


def _limits(config: dict[str, Any]) -> tuple[int, int]:
    limits = config.get("ResourceLimits") or {}
    try:
        max_jobs = int(limits["MaxNumberOfTrainingJobs"])
        parallel = int(limits.get("MaxParallelTrainingJobs", 1))
    except (KeyError, TypeError, ValueError):
        raise DataError("tuning ResourceLimits need integer MaxNumberOfTrainingJobs and "
                        "MaxParallelTrainingJobs (TuningMaxJobs / TuningMaxParallelJobs)") from None
    if max_jobs < 1 or parallel < 1:
        raise DataError(f"tuning ResourceLimits must be >= 1 (got MaxNumberOfTrainingJobs={max_jobs}, "
                        f"MaxParallelTrainingJobs={parallel})")
    return max_jobs, min(parallel, max_jobs)


RunTrial = Callable[[Trial, dict[str, Any], dict[str, str]], tuple[int, str, str]]
"""(trial, CreateTrainingJob-shaped args, extra env) -> (exit code, log text, model uri)."""


def run(args: dict[str, Any], tuning_job: str, run_trial: RunTrial,
        progress: Callable[[str], None] = lambda msg: None, cpus: int | None = None) -> list[Trial]:
    """Run every trial of the tuning request; returns the trials in start order."""
    import optuna  # noqa: PLC0415

    config = args.get("HyperParameterTuningJobConfig") or {}
    definition = args.get("TrainingJobDefinition") or {}
    objective = (config.get("HyperParameterTuningJobObjective") or {})
    metric, maximize = objective.get("MetricName"), objective.get("Type", "Maximize") == "Maximize"
    definitions = (definition.get("AlgorithmSpecification") or {}).get("MetricDefinitions") or []
    if not metric or metric not in {d["Name"] for d in definitions}:
        raise DataError(f"tuning objective {metric!r} has no MetricDefinitions regex to read it with")
    max_jobs, parallel = _limits(config)
    seed = config.get("RandomSeed")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize" if maximize else "minimize",
                                sampler=_sampler(str(config.get("Strategy", "Bayesian")),
                                                 int(seed) if seed is not None else None, max_jobs))
    share = {"SM_NUM_CPUS": str(max(1, (cpus or os.cpu_count() or 1) // parallel))}
    trials: list[Trial] = []  # the study is asked and told here only: workers just run trials

    def one(opt_trial, trial: Trial) -> Trial:
        trial.start = _now()
        rc, log_text, model_uri = run_trial(trial, trial_request(definition, trial.tuned), share)
        trial.end, trial.metrics = _now(), read_metrics(log_text, definitions)
        trial.objective = trial.metrics.get(metric)
        if rc != 0:
            trial.status, trial.failure = "Failed", f"exit code {rc}: {_last_line(log_text)}"
        elif trial.objective is None:
            trial.status, trial.failure = "Failed", f"the objective {metric} was not found in the log"
        else:
            trial.status, trial.model_uri = "Completed", model_uri
        return trial

    running: dict[Future, Any] = {}
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        while len(trials) < max_jobs or running:
            while len(trials) < max_jobs and len(running) < parallel:
                opt_trial = study.ask()
                tuned = suggest(opt_trial, config.get("ParameterRanges") or {})
                trial = Trial(len(trials) + 1, trial_name(tuning_job, len(trials) + 1, tuned), tuned)
                trials.append(trial)
                running[pool.submit(one, opt_trial, trial)] = opt_trial
                progress(f"trial {trial.number}/{max_jobs} started ({trial.name})")
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                opt_trial = running.pop(fut)
                trial = fut.result()
                if trial.status == "Completed":
                    study.tell(opt_trial, trial.objective)
                else:
                    study.tell(opt_trial, state=optuna.trial.TrialState.FAIL)
                best = best_trial(trials, maximize)
                progress(f"trial {trial.number}/{max_jobs} {trial.status.lower()}: "
                         + (f"{metric}={trial.objective:.4f}" if trial.objective is not None else trial.failure)
                         + (f" (best {best.objective:.4f}, trial {best.number})" if best else ""))
    return trials


def _ranked(trials: list[Trial], maximize: bool) -> list[Trial]:
    """Completed trials, best first; ties go to the earlier trial (deterministic)."""
    done = [t for t in trials if t.status == "Completed"]
    return sorted(done, key=lambda t: ((-t.objective if maximize else t.objective), t.number))


def best_trial(trials: list[Trial], maximize: bool = True) -> Trial | None:
    ranked = _ranked(trials, maximize)
    return ranked[0] if ranked else None


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1][-300:] if lines else "no output"


def describe(args: dict[str, Any], tuning_job: str, trials: list[Trial], arn: str) -> dict[str, Any]:
    """DescribeHyperParameterTuningJob + ListTrainingJobsForHyperParameterTuningJob (best first),
    each summary with the trial's HyperParameters and ModelArtifacts (DescribeTrainingJob)."""
    config = args.get("HyperParameterTuningJobConfig") or {}
    definition = args.get("TrainingJobDefinition") or {}
    objective = config.get("HyperParameterTuningJobObjective") or {}
    maximize = objective.get("Type", "Maximize") == "Maximize"
    done = _ranked(trials, maximize)
    best = done[0] if done else None
    ranked = done + [t for t in trials if t.status != "Completed"]
    account_region = arn.split(":hyper-parameter-tuning-job/")[0]
    summaries = [_summary(t, objective.get("MetricName", ""), definition, account_region) for t in ranked]
    failed = sum(t.status == "Failed" for t in trials)
    return {"HyperParameterTuningJobName": tuning_job, "HyperParameterTuningJobArn": arn,
            "HyperParameterTuningJobStatus": "Completed" if best else "Failed",
            "HyperParameterTuningJobConfig": config, "TrainingJobDefinition": definition,
            "TrainingJobStatusCounters": {"Completed": len(trials) - failed, "InProgress": 0,
                                          "RetryableError": 0, "NonRetryableError": failed, "Stopped": 0},
            "ObjectiveStatusCounters": {"Succeeded": len(trials) - failed, "Pending": 0, "Failed": failed},
            **({"BestTrainingJob": summaries[0]} if best else
               {"FailureReason": "every training job of the tuning job failed"}),
            "TrainingJobSummaries": summaries}


def _summary(t: Trial, metric: str, definition: dict[str, Any], account_region: str) -> dict[str, Any]:
    s: dict[str, Any] = {"TrainingJobName": t.name,
                         "TrainingJobArn": f"{account_region}:training-job/{t.name}".lower(),
                         "TrainingJobStatus": t.status, "TunedHyperParameters": dict(t.tuned),
                         "TrainingStartTime": t.start, "TrainingEndTime": t.end,
                         "HyperParameters": trial_request(definition, t.tuned)["HyperParameters"]}
    if t.objective is not None:
        s["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": metric, "Value": t.objective}
    if t.failure:
        s["FailureReason"] = t.failure
    if t.model_uri:
        s["ModelArtifacts"] = {"S3ModelArtifacts": t.model_uri}
    return s


def trial_table(record: dict[str, Any]) -> list[str]:
    """The trials as text lines (the step log, the demo output): best first."""
    metric = (record["HyperParameterTuningJobConfig"].get("HyperParameterTuningJobObjective") or {}).get("MetricName")
    lines = [f"{'trial':<38} {'status':<9} {metric:>22}  tuned hyperparameters"]
    for s in record["TrainingJobSummaries"]:
        value = (s.get("FinalHyperParameterTuningJobObjectiveMetric") or {}).get("Value")
        tuned = " ".join(f"{k}={v}" for k, v in sorted(s["TunedHyperParameters"].items()))
        lines.append(f"{s['TrainingJobName']:<38} {s['TrainingJobStatus']:<9} "
                     f"{(f'{value:.4f}' if value is not None else '-'):>22}  {tuned}")
    return lines
