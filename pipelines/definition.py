"""The clinical-ml SageMaker Pipeline: MIMIC-III -> tasks + notes -> outcome models and an
extractor -> evaluation gate -> registry -> A/B endpoint -> drift monitor.

Reads like the SageMaker "modelbuild" project template: parameters first, then one short
block per step. ``get_pipeline`` returns the one Pipeline object that ``make definition``,
``make upsert-pipeline`` and the local runner (``clinical-ml run-local``) all use.

DAG (steps inside a condition run only on its branch)::

    DriftGuard -> CheckGuard --skip--> (end: another drift retraining in flight / cooldown)
                     | run
      BuildTasks -> BuildNotes -> TrainExtractor -> ExtractNotes -> NoteFeatures
          |                           `-> EvaluateExtractor -------------------------+-> TrackRuns (MLflow)
          `--------------(+ NoteFeatures)--> TuneOutcomes --> EvaluateOutcomes ------+-> CheckMetrics --no--> Gate*/Fail*
          `--> TrainBaselines (LR, GRU) ------------------------^ `-> CompareModels  | yes
      RegisterExtractor (+ MLflow run id), CheckPromotion --keep--> KeepChampion (Fail: the reason)
                                                 | promote
      DriftBaseline -> RegisterOutcomes (+ MLflow run id) -> CheckApproval --approved--> Deploy -> ScheduleMonitor
"""
from __future__ import annotations

import json
import logging
import os

from pipelines.parameters import account_from_role, make_parameters
from pipelines.session import pipeline_session, prepare_environment, shared_boto_session

prepare_environment()  # before the SDK is imported: telemetry opt-out, no role validation

from sagemaker.core.drift_check_baselines import DriftCheckBaselines  # noqa: E402
from sagemaker.core.model_metrics import MetricsSource, ModelMetrics  # noqa: E402
from sagemaker.core.parameter import ContinuousParameter, IntegerParameter  # noqa: E402
from sagemaker.core.workflow.conditions import ConditionEquals, ConditionGreaterThanOrEqualTo  # noqa: E402
from sagemaker.core.workflow.execution_variables import ExecutionVariables  # noqa: E402
from sagemaker.core.workflow.functions import Join, JsonGet  # noqa: E402
from sagemaker.core.workflow.properties import PropertyFile  # noqa: E402
from sagemaker.mlops.workflow.condition_step import ConditionStep  # noqa: E402
from sagemaker.mlops.workflow.fail_step import FailStep  # noqa: E402
from sagemaker.mlops.workflow.model_step import ModelStep  # noqa: E402
from sagemaker.mlops.workflow.pipeline import Pipeline  # noqa: E402
from sagemaker.serve.model_builder import ModelBuilder  # noqa: E402

from pipelines.steps import PROCESSING_ROOT as PROC  # noqa: E402
from pipelines.steps import SERVICE_RETRY, StepFactory, s3_input, s3_output  # noqa: E402
from clinical_ml.outcomes.objective import OBJECTIVE, metric_definitions  # noqa: E402

DEFAULT_PIPELINE_NAME = "clinical-ml"
DEFAULT_ROLE = "arn:aws:iam::000000000000:role/clinical-ml-sagemaker-execution"


def default_bucket_name(role: str, region: str) -> str:
    """The bucket pipelines/infra/template.yaml creates: ``clinical-ml-<account>-<region>``."""
    return f"clinical-ml-{account_from_role(role)}-{region}"


def xgboost_ranges() -> dict:
    """The XGBoost ranges that matter (names are train_outcomes.py hyperparameters).

    Rounds are tuned as the early-stopping ceiling: a trial stops when validation loss has not
    improved for 20 rounds, so a high ``max_rounds`` only costs time where it helps.
    """
    return {"learning_rate": ContinuousParameter(0.01, 0.3, scaling_type="Logarithmic"),
            "max_depth": IntegerParameter(2, 8),
            "min_child_weight": ContinuousParameter(1.0, 20.0, scaling_type="Logarithmic"),
            "subsample": ContinuousParameter(0.5, 1.0),
            "colsample_bytree": ContinuousParameter(0.4, 1.0),
            "reg_lambda": ContinuousParameter(0.01, 10.0, scaling_type="Logarithmic"),
            "reg_alpha": ContinuousParameter(0.001, 1.0, scaling_type="Logarithmic"),
            "max_rounds": IntegerParameter(50, 1000, scaling_type="Logarithmic")}


def model_package_groups(pipeline_name: str) -> dict[str, str]:
    """Registry groups this pipeline registers into (created by ``make upsert-pipeline``)."""
    return {"outcomes": f"{pipeline_name}-outcomes", "extractor": f"{pipeline_name}-extractor"}


def get_pipeline(region: str | None = None, role: str | None = None, default_bucket: str | None = None,
                 pipeline_name: str = DEFAULT_PIPELINE_NAME, *, kms_key_id: str = "alias/clinical-ml",
                 subnets: list[str] | None = None, security_group_ids: list[str] | None = None,
                 endpoint_name: str = "clinical-ml", scheduler_role_arn: str | None = None,
                 sagemaker_session=None) -> Pipeline:
    """Build the pipeline (offline: no network, no credentials).

    ``subnets``/``security_group_ids`` put every processing and training job in your VPC; that
    is fixed when the pipeline is upserted (the service takes a list of subnet ids there, which a
    pipeline parameter cannot expand into). ``scheduler_role_arn``: the role EventBridge
    Scheduler assumes to start the hourly drift job (default: ``role``, which must then trust
    scheduler.amazonaws.com).
    """
    region = prepare_environment(region)
    role = role or DEFAULT_ROLE
    bucket = default_bucket or default_bucket_name(role, region)
    session = sagemaker_session or pipeline_session(region, bucket)
    with shared_boto_session(session.boto_session):
        return _build(session, region, role, bucket, pipeline_name, kms_key_id, list(subnets or []),
                      list(security_group_ids or []), endpoint_name, scheduler_role_arn)


def _build(session, region: str, role: str, bucket: str, pipeline_name: str, kms_key_id: str,
           subnets: list[str], security_group_ids: list[str], endpoint_name: str,
           scheduler_role_arn: str | None) -> Pipeline:
    """The DAG itself (``get_pipeline`` prepares the session and settings)."""
    p = make_parameters(region, role, bucket, kms_key_id=kms_key_id, endpoint_name=endpoint_name)
    f = StepFactory(session=session, role=role, bucket=bucket, pipeline_name=pipeline_name, params=p,
                    subnets=subnets, security_group_ids=security_group_ids)
    groups = model_package_groups(pipeline_name)
    capture_uri = f"s3://{bucket}/{pipeline_name}/capture"
    execution = ExecutionVariables

    # --- DriftGuard: storm guard for alarm-triggered retraining (in-flight + cooldown) -------
    guard_report = PropertyFile(name="GuardDecision", output_name="guard", path="guard.json")
    step_guard = f.processing(
        "DriftGuard", "monitoring/guard.py",
        display_name="Retraining storm guard",
        description="Skips a drift-triggered execution when another one is in flight or the "
                    "cooldown has not passed (list_pipeline_executions), and finds the data window: "
                    "DataWindowStart/End, else for a drift trigger the admissions newer than the "
                    "production model's window (docs/retraining.md).",
        outputs=[s3_output("guard", f.s3("DriftGuard", "guard"), "guard")],
        arguments=["--pipeline-name", execution.PIPELINE_NAME,
                   "--execution-arn", execution.PIPELINE_EXECUTION_ARN,
                   "--trigger", p.trigger,
                   "--data-window-start", p.data_window_start, "--data-window-end", p.data_window_end,
                   "--champion-group", groups["outcomes"],
                   "--output", f"{PROC}/output/guard"],
        instance_type="ml.t3.medium", isolated=False, cache=False, property_files=[guard_report])
    # the window every data step uses: the guard's, since a drift trigger cannot pass one
    window_start = JsonGet(step_name=step_guard.name, property_file=guard_report, json_path="data_window.start")
    window_end = JsonGet(step_name=step_guard.name, property_file=guard_report, json_path="data_window.end")

    # --- BuildTasks: MIMIC-III -> benchmark task Parquet (shardable over instances) ----------
    step_tasks = f.processing(
        "BuildTasks", "processing/build_tasks.py",
        display_name="Build benchmark tasks",
        description="MIMIC-III -> in-hospital mortality, decompensation, LOS, phenotyping and "
                    "readmission task splits (Parquet); with N instances each one builds the "
                    "subjects of its hash shard and writes its own part files.",
        # FullyReplicated: the tables are single files; the script shards by SUBJECT_ID hash
        # using its position among the job's hosts (/opt/ml/config/resourceconfig.json).
        inputs=[s3_input("mimic", p.input_data_uri, "mimic")],
        outputs=[s3_output(split, f.s3("BuildTasks", split), split)
                 for split in ("train", "val", "test")],
        arguments=["--mimic", f"{PROC}/input/mimic", "--out", f"{PROC}/output",
                   "--data-window-start", window_start, "--data-window-end", window_end],
        instance_count=p.processing_instance_count)
    tasks = {split: step_tasks.properties.ProcessingOutputConfig.Outputs[split].S3Output.S3Uri
             for split in ("train", "val", "test")}

    # --- BuildNotes: NOTEEVENTS + gold annotations (+ real corpora) -> note datasets (JSONL) --
    # AnnotatedCorporaUri is optional ("" = none), which a ProcessingInput cannot be: the script
    # takes it as an argument and reads the folder / s3:// prefix itself.
    step_notes = f.processing(
        "BuildNotes", "processing/build_notes.py",
        display_name="Build note datasets",
        description="Clinical notes with gold entities, relations and records, plus the real "
                    "annotated corpora of AnnotatedCorporaUri (their own splits) -> JSONL splits; "
                    "the NoteCategories notes of the task cohort -> note shards to extract from.",
        inputs=[s3_input("mimic", p.input_data_uri, "mimic"),
                *[s3_input(f"tasks-{split}", tasks[split], f"tasks/{split}") for split in ("train", "val", "test")]],
        outputs=[s3_output("notes", f.s3("BuildNotes", "notes"), "notes")],
        arguments=["--input", f"{PROC}/input/mimic", "--output", f"{PROC}/output",
                   "--corpora", p.annotated_corpora_uri, "--categories", p.note_categories,
                   "--admissions", f"{PROC}/input/tasks"])
    notes = step_notes.properties.ProcessingOutputConfig.Outputs["notes"].S3Output.S3Uri

    def notes_split(split: str) -> Join:
        return Join(on="/", values=[notes, f"{split}.jsonl"])

    note_shards = Join(on="/", values=[notes, "extract"])  # the notes to extract from (no gold needed)

    # --- TrainExtractor: fine-tuning on a GPU instance ----------------------------------------
    step_train_extractor = f.training(
        "TrainExtractor", "training/train_extractor.py",
        display_name="Train clinical extractor",
        description="Fine-tuning of a small language model (the encoder fully, SmolLM2 with "
                    "LoRA) for entities, relations and the structured record (GPU instance type parameter); torchrun DDP over the "
                    "GPUs and instances (ExtractorTrainingInstanceCount).",
        channels={"train": notes_split("train"), "validation": notes_split("val")},
        image=p.training_gpu_image_uri, instance_type=p.extractor_instance_type,
        instance_count=p.extractor_instance_count, distributed=True,
        arguments=["--kind", p.extractor_kind, "--base-model", p.extractor_base_model,
                   "--max-train-docs", p.extractor_max_train_docs.to_string(),
                   "--max-synthetic-docs", p.extractor_max_synthetic_docs.to_string(),
                   "--oversample", p.extractor_oversample,
                   "--time-budget-s", p.extractor_train_seconds.to_string()],
        volume_kms=False)
    extractor_model = step_train_extractor.properties.ModelArtifacts.S3ModelArtifacts

    # --- ExtractNotes: this run's extractor over the cohort's notes (shardable over instances)
    step_extract = f.processing(
        "ExtractNotes", "processing/extract_notes.py",
        display_name="Extract from notes",
        description="Batch inference of this run's extractor over the note shards of BuildNotes: "
                    "entities, relations and records per note (JSONL); with N instances each one "
                    "extracts the notes of its hash shard; a killed job resumes without duplicates.",
        inputs=[s3_input("model", extractor_model, "model"), s3_input("notes", note_shards, "notes")],
        outputs=[s3_output("extracted", f.s3("ExtractNotes", "extracted"), "extracted")],
        arguments=["--model", f"{PROC}/input/model", "--notes", f"{PROC}/input/notes",
                   "--output", f"{PROC}/output", "--stage", "extract", "--precision", p.extract_precision],
        image=p.extract_image_uri, instance_type=p.extract_instance_type, instance_count=p.extract_instance_count,
        max_runtime=24 * 3600)
    extracted = step_extract.properties.ProcessingOutputConfig.Outputs["extracted"].S3Output.S3Uri

    # --- NoteFeatures: per-admission note features for the outcome models ------------------
    step_note_features = f.processing(
        "NoteFeatures", "processing/extract_notes.py",
        display_name="Note features",
        description="Per-admission counts and concept indicators from every shard's extractions; "
                    "ihm only from notes charted by the 48 h prediction time, readmit from every "
                    "note; vocabulary fitted on the training split.",
        inputs=[s3_input("notes", note_shards, "notes"),
                s3_input("extracted", extracted, "extracted"), s3_input("mimic", p.input_data_uri, "mimic"),
                s3_input("tasks-train", tasks["train"], "tasks/train")],
        outputs=[s3_output("features", f.s3("NoteFeatures", "features"), "features")],
        arguments=["--model", "rules", "--notes", f"{PROC}/input/notes", "--extracted", f"{PROC}/input/extracted",
                   "--output", f"{PROC}/output", "--stage", "features", "--feature-sets", "ihm:48,readmit:all",
                   "--fit-vocabulary", "--train-admissions", f"{PROC}/input/tasks", "--mimic", f"{PROC}/input/mimic"])
    note_features = step_note_features.properties.ProcessingOutputConfig.Outputs["features"].S3Output.S3Uri

    # --- TrainBaselines: LR + GRU once (they do not depend on the XGBoost hyperparameters) ---
    step_baselines = f.training(
        "TrainBaselines", "training/train_outcomes.py",
        display_name="Train baseline models",
        description="Logistic regression and GRU baselines of every task, trained once on the same "
                    "splits as the tuning trials; EvaluateOutcomes scores them beside XGBoost.",
        channels={"train": tasks["train"], "validation": tasks["val"]},
        image=p.training_image_uri, instance_type=p.training_instance_type,
        # one thread: the GRU's small batches run 2-3x slower on two threads of a busy host
        arguments=["--models", "lr,gru", "--seed", "0", "--nthread", "1"])
    baselines_model = step_baselines.properties.ModelArtifacts.S3ModelArtifacts

    # --- TuneOutcomes: XGBoost hyperparameter tuning (+ with-notes variants) ------------------
    step_tune_outcomes = f.tuning(
        "TuneOutcomes", "training/train_outcomes.py",
        display_name="Tune outcome models",
        description="Hyperparameter tuning of the XGBoost outcome models (objective: validation "
                    "AUROC of in-hospital mortality); with note features each trial also fits the "
                    "with-notes XGBoost variants.",
        channels={"train": tasks["train"], "validation": tasks["val"], "note_features": note_features},
        image=p.training_image_uri, instance_type=p.training_instance_type,
        objective=OBJECTIVE, metric_definitions=metric_definitions(), ranges=xgboost_ranges(),
        static={"seed": "0", "early_stopping_rounds": "20", "models": "xgboost"}, strategy=p.tuning_strategy,
        max_jobs=p.tuning_max_jobs, max_parallel_jobs=p.tuning_max_parallel_jobs)
    outcomes_model = step_tune_outcomes.get_top_model_s3_uri(top_k=0, s3_bucket=bucket,
                                                             prefix=f.tuning_prefix("TuneOutcomes"))

    # --- EvaluateOutcomes: bootstrap CIs, subgroups; the gate values -> EvaluationReport ----
    evaluation_report = PropertyFile(name="EvaluationReport", output_name="evaluation", path="evaluation.json")
    step_eval_outcomes = f.processing(
        "EvaluateOutcomes", "processing/evaluate_outcomes.py",
        display_name="Evaluate outcome models",
        description="Test-set metrics with bootstrap confidence intervals and subgroups; "
                    "writes evaluation.json (gate), model_metrics.json and report.html.",
        inputs=[s3_input("model", outcomes_model, "model"), s3_input("test", tasks["test"], "test"),
                s3_input("baselines", baselines_model, "baselines"),
                s3_input("note_features", note_features, "note_features")],
        outputs=[s3_output("evaluation", f.s3("EvaluateOutcomes", "evaluation"), "evaluation")],
        arguments=["--model", f"{PROC}/input/model", "--test", f"{PROC}/input/test",
                   "--baselines", f"{PROC}/input/baselines", "--note-features", f"{PROC}/input/note_features",
                   "--output", f"{PROC}/output/evaluation"],
        property_files=[evaluation_report])
    outcomes_eval = step_eval_outcomes.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri

    # --- CompareModels: the tuned model vs the production one, same test rows -> ModelComparison
    # The champion is looked up when the step runs (the newest Approved version of the outcomes
    # group): EventBridge starts drift retrainings with static parameters, and the registry can
    # change between definition and run. Hence no cache, and network access for the registry.
    comparison = PropertyFile(name="ModelComparison", output_name="comparison", path="comparison.json")
    step_compare = f.processing(
        "CompareModels", "processing/compare_models.py",
        display_name="Champion vs challenger",
        description="The tuned model (challenger) and the newest Approved outcomes version "
                    "(champion) on the same test rows: AUROC, Brier, ECE with paired bootstrap CIs "
                    "of the differences; decision.promote when the challenger is not worse "
                    "(PromotionAurocMargin, PromotionEceMargin); no Approved version = promote.",
        inputs=[s3_input("challenger", outcomes_model, "challenger"), s3_input("test", tasks["test"], "test")],
        outputs=[s3_output("comparison", f.s3("CompareModels", "comparison"), "comparison")],
        arguments=["--champion-group", groups["outcomes"],
                   "--challenger", f"{PROC}/input/challenger", "--test", f"{PROC}/input/test",
                   "--output", f"{PROC}/output/comparison", "--tasks", "ihm",
                   "--auroc-margin", p.promotion_auroc_margin.to_string(),
                   "--ece-margin", p.promotion_ece_margin.to_string()],
        isolated=False, cache=False, property_files=[comparison], depends_on=[step_eval_outcomes])

    # --- EvaluateExtractor: entity/relation F1, JSON validity -> ExtractionReport -------------
    extraction_report = PropertyFile(name="ExtractionReport", output_name="evaluation",
                                     path="extraction_evaluation.json")
    step_eval_extractor = f.processing(
        "EvaluateExtractor", "processing/evaluate_extractor.py",
        display_name="Evaluate clinical extractor",
        description="Per corpus, fine-tuned vs rules (gazetteer from that corpus's training notes): "
                    "strict/lenient entity F1, relation F1, JSON validity, record F1 on the labels "
                    "the corpus annotates; gate = mean lenient entity F1 over the real corpora "
                    "(synthetic strict F1 without one) in extraction_evaluation.json.",
        inputs=[s3_input("model", extractor_model, "model"), s3_input("test", notes_split("test"), "test"),
                s3_input("train", notes_split("train"), "train")],
        outputs=[s3_output("evaluation", f.s3("EvaluateExtractor", "evaluation"), "evaluation")],
        arguments=["--model", f"{PROC}/input/model", "--test", f"{PROC}/input/test",
                   "--train", f"{PROC}/input/train", "--output", f"{PROC}/output"],
        property_files=[extraction_report])
    extractor_eval = step_eval_extractor.properties.ProcessingOutputConfig.Outputs["evaluation"].S3Output.S3Uri

    # --- TrackRuns: the execution, its tuning trials and the extractor -> MLflow --------------
    tracked_runs = PropertyFile(name="TrackedRuns", output_name="tracking", path="mlflow_runs.json")
    step_track = f.processing(
        "TrackRuns", "processing/track_runs.py",
        display_name="Track runs in MLflow",
        description="MLflow: a parent run per execution with the evaluation metrics, a child run per "
                    "tuning trial (hyperparameters, objective, per-round curves, model) and one for "
                    "the extractor; MlflowTrackingUri \"\" = off. Registered versions record the run ids.",
        inputs=[s3_input("outcomes_evaluation", outcomes_eval, "outcomes_evaluation"),
                s3_input("extractor_evaluation", extractor_eval, "extractor_evaluation"),
                s3_input("extractor_model", extractor_model, "extractor_model")],
        outputs=[s3_output("tracking", f.s3("TrackRuns", "tracking"), "tracking")],
        arguments=["--tracking-uri", p.mlflow_tracking_uri,
                   "--tuning-job-name", step_tune_outcomes.properties.HyperParameterTuningJobName,
                   "--execution-arn", execution.PIPELINE_EXECUTION_ARN,
                   "--pipeline-name", execution.PIPELINE_NAME, "--trigger", p.trigger,
                   "--data-window-start", window_start, "--data-window-end", window_end,
                   "--extractor-job-name", step_train_extractor.properties.TrainingJobName,
                   "--outcomes-evaluation", f"{PROC}/input/outcomes_evaluation",
                   "--extractor-evaluation", f"{PROC}/input/extractor_evaluation",
                   "--extractor-model", f"{PROC}/input/extractor_model",
                   "--output", f"{PROC}/output/tracking"],
        instance_type="ml.t3.medium", isolated=False, cache=False, property_files=[tracked_runs])

    def mlflow_run(key: str) -> JsonGet:
        return JsonGet(step_name=step_track.name, property_file=tracked_runs, json_path=key)

    # --- DriftBaseline: Model Monitor statistics/constraints of the training features ---------
    step_baseline = f.processing(
        "DriftBaseline", "monitoring/baseline.py",
        display_name="Drift baseline",
        description="statistics.json and constraints.json (Model Monitor format) from the "
                    "training features; the drift monitor compares live traffic with them.",
        inputs=[s3_input("train", tasks["train"], "train")],
        outputs=[s3_output("baseline", f.s3("DriftBaseline", "baseline"), "baseline")],
        arguments=["--train", f"{PROC}/input/train", "--output", f"{PROC}/output/baseline",
                   "--comparison-threshold", p.drift_threshold.to_string()])
    baseline = step_baseline.properties.ProcessingOutputConfig.Outputs["baseline"].S3Output.S3Uri

    # --- RegisterOutcomes / RegisterExtractor: model registry with metrics ------------------
    lineage = {"trigger": p.trigger, "data_window_start": window_start, "data_window_end": window_end,
               "pipeline_execution_arn": execution.PIPELINE_EXECUTION_ARN}

    def register(name: str, display: str, model_data, group: str, metrics_uri, content_types: list[str],
                 instances: list[str], run_id: JsonGet, drift_baselines: DriftCheckBaselines | None = None) -> ModelStep:
        builder = ModelBuilder(s3_model_data_url=model_data, image_uri=p.inference_image_uri,
                               role_arn=role, sagemaker_session=session, log_level=logging.WARNING)
        # Our inference image serves /opt/ml/model itself: no script-mode code upload and no
        # SAGEMAKER_PROGRAM/SUBMIT_DIRECTORY variables (the deprecated ``dependencies`` default
        # would otherwise switch script mode on).
        builder.dependencies = None
        step_args = builder.register(
            model_package_group_name=group, content_types=content_types,
            response_types=["application/json"], inference_instances=instances,
            transform_instances=instances, approval_status=p.model_approval_status,
            model_metrics=ModelMetrics(model_statistics=MetricsSource(
                content_type="application/json", s3_uri=Join(on="/", values=[metrics_uri, "model_metrics.json"]))),
            drift_check_baselines=drift_baselines,
            customer_metadata_properties={**lineage, "mlflow_run_id": run_id})
        return ModelStep(name=name, step_args=step_args, display_name=display,
                         description=f"Register a new version in the {group} model package group "
                                     "with its evaluation metrics (approval status parameter).",
                         retry_policies=[SERVICE_RETRY])

    step_register_outcomes = register(
        "RegisterOutcomes", "Register outcome models", outcomes_model, groups["outcomes"], outcomes_eval,
        ["application/json", "text/csv", "application/jsonlines"], ["ml.m5.large", "ml.m5.xlarge"],
        mlflow_run("outcomes_run_id"), DriftCheckBaselines(
            model_data_statistics=MetricsSource(content_type="application/json",
                                                s3_uri=Join(on="/", values=[baseline, "statistics.json"])),
            model_data_constraints=MetricsSource(content_type="application/json",
                                                 s3_uri=Join(on="/", values=[baseline, "constraints.json"]))))
    step_register_extractor = register(
        "RegisterExtractor", "Register clinical extractor", extractor_model, groups["extractor"],
        extractor_eval, ["application/json", "application/jsonlines"],
        ["ml.g5.xlarge", "ml.m5.xlarge"], mlflow_run("extractor_run_id"))

    # --- Deploy: the promoted model takes the endpoint's traffic (PromotionTraffic) ----------
    step_deploy = f.processing(
        "Deploy", "inference/deploy.py",
        display_name="Deploy promoted model",
        description="Shifts the endpoint's traffic to the promoted model: PromotionTraffic=all makes "
                    "it the champion variant at weight 1.0 (the previous Approved model kept at 0 for "
                    "rollback), canary gives it ChallengerWeight; KMS-encrypted data capture; creates "
                    "the endpoint or updates it in place (weights only when the models are unchanged).",
        outputs=[s3_output("deploy", f.s3("Deploy", "deploy"), "deploy")],
        arguments=["--model-package-arn", step_register_outcomes.properties.ModelPackageArn,
                   "--model-package-group", groups["outcomes"],
                   "--endpoint-name", p.endpoint_name,
                   "--instance-type", p.endpoint_instance_type,
                   "--traffic", p.promotion_traffic,
                   "--challenger-weight", p.challenger_weight.to_string(),
                   "--capture-uri", capture_uri,
                   "--kms-key-id", p.kms_key_id,
                   "--role-arn", role,
                   "--require-approval", "true",
                   "--output-dir", f"{PROC}/output/deploy"],
        instance_type="ml.t3.medium", isolated=False, cache=False, max_runtime=3600)

    # --- ScheduleMonitor: hourly drift job over the captured traffic -----------------------
    step_schedule = f.processing(
        "ScheduleMonitor", "monitoring/schedule.py",
        display_name="Schedule drift monitor",
        description="Hourly drift job (EventBridge Scheduler -> processing job) comparing captured "
                    "traffic with the baseline; its CloudWatch metrics drive the retrain alarm.",
        inputs=[s3_input("deploy", step_deploy.properties.ProcessingOutputConfig.Outputs["deploy"].S3Output.S3Uri,
                         "deploy")],
        outputs=[s3_output("schedule", f.s3("ScheduleMonitor", "schedule"), "schedule")],
        arguments=["--endpoint-name", p.endpoint_name,
                   "--schedule-name", Join(on="", values=[p.endpoint_name, "-drift"]),
                   "--baseline-uri", baseline,
                   "--capture-uri", capture_uri,
                   "--output-uri", f"s3://{bucket}/{pipeline_name}/drift",
                   "--image-uri", p.processing_image_uri,
                   "--role-arn", role,
                   "--scheduler-role-arn", scheduler_role_arn or role,
                   "--deploy-info", f"{PROC}/input/deploy",
                   "--output", f"{PROC}/output/schedule"],
        instance_type="ml.t3.medium", isolated=False, cache=False, max_runtime=1800)

    # --- CheckApproval: deploy only approved models; otherwise end after registration -------
    step_check_approval = ConditionStep(
        name="CheckApproval", display_name="Approved?",
        description="Deploys when ModelApprovalStatus is Approved; with PendingManualApproval the "
                    "execution ends after registration, awaiting a reviewer in the registry.",
        conditions=[ConditionEquals(left=p.model_approval_status, right="Approved")],
        depends_on=[step_register_outcomes, step_register_extractor],
        if_steps=[step_deploy, step_schedule], else_steps=[])

    # --- CheckMetrics: quality gate; on a miss, Fail naming the metric(s) ------------------
    ihm_auroc = JsonGet(step_name=step_eval_outcomes.name, property_file=evaluation_report,
                        json_path="gate.ihm_auroc")
    entity_f1 = JsonGet(step_name=step_eval_extractor.name, property_file=extraction_report,
                        json_path="gate.entity_f1")
    ihm_ok = ConditionGreaterThanOrEqualTo(left=ihm_auroc, right=p.min_ihm_auroc)
    f1_ok = ConditionGreaterThanOrEqualTo(left=entity_f1, right=p.min_extraction_f1)
    ihm_text = ["ihm_auroc=", ihm_auroc, " (MinIhmAuroc=", p.min_ihm_auroc, ")"]
    # which figure the extraction gate is (real corpora or synthetic notes), named in the message
    f1_metric = JsonGet(step_name=step_eval_extractor.name, property_file=extraction_report,
                        json_path="gate.metric")
    f1_text = ["entity_f1=", entity_f1, " [", f1_metric, "] (MinExtractionF1=", p.min_extraction_f1, ")"]

    def fail(name: str, missed: list, passed: list) -> FailStep:
        values = ["Quality gate failed, below minimum: ", *missed]
        if passed:
            values += ["; passed: ", *passed]
        return FailStep(name=name, display_name=name, error_message=Join(on="", values=values),
                        description="Stops the execution: no model is registered or deployed.")

    step_gate_f1 = ConditionStep(
        name="GateExtractionF1", display_name="Which metric missed (extraction)", conditions=[f1_ok],
        description="Gate failed and ihm_auroc missed: did entity_f1 miss too?",
        if_steps=[fail("FailIhmAuroc", ihm_text, f1_text)],
        else_steps=[fail("FailIhmAurocAndExtractionF1", [*ihm_text, ", ", *f1_text], [])])
    step_gate_ihm = ConditionStep(
        name="GateIhmAuroc", display_name="Which metric missed (outcomes)", conditions=[ihm_ok],
        description="Gate failed: did ihm_auroc pass (then entity_f1 missed)?",
        if_steps=[fail("FailExtractionF1", f1_text, ihm_text)], else_steps=[step_gate_f1])

    # --- CheckPromotion: register and deploy the outcome model only when it is not worse than
    # the production one; otherwise KeepChampion ends the execution (Failed, like the quality
    # gate) with CompareModels' reason. The extractor is registered either way (before it).
    promote = JsonGet(step_name=step_compare.name, property_file=comparison, json_path="decision.promote")
    promote_reason = JsonGet(step_name=step_compare.name, property_file=comparison, json_path="decision.reason")
    step_keep_champion = FailStep(
        name="KeepChampion", display_name="Champion kept",
        error_message=Join(on="", values=["Champion kept, the new outcome model is not promoted: ", promote_reason]),
        description="Ends the execution: the production outcome model stays; nothing registered or deployed "
                    "for outcomes (the extractor was registered).",
        depends_on=[step_register_extractor])
    step_check_promotion = ConditionStep(
        name="CheckPromotion", display_name="Challenger not worse than champion?",
        description="decision.promote of CompareModels (comparison.json): register and deploy the new "
                    "outcome model, or keep the production one and say why.",
        conditions=[ConditionEquals(left=promote, right=True)],
        if_steps=[step_baseline, step_register_outcomes, step_check_approval],
        else_steps=[step_keep_champion])

    step_check = ConditionStep(
        name="CheckMetrics", display_name="Quality gate",
        description="ihm_auroc >= MinIhmAuroc and entity_f1 >= MinExtractionF1.",
        conditions=[ihm_ok, f1_ok],
        if_steps=[step_register_extractor, step_check_promotion],
        else_steps=[step_gate_ihm])

    # --- CheckGuard: end early (success, nothing run) when the guard says skip --------------
    step_check_guard = ConditionStep(
        name="CheckGuard", display_name="Proceed?",
        description="Runs the pipeline unless the storm guard decided to skip this execution.",
        conditions=[ConditionEquals(left=JsonGet(step_name=step_guard.name, property_file=guard_report,
                                                 json_path="proceed"), right=True)],
        if_steps=[step_tasks, step_notes, step_train_extractor, step_extract, step_note_features,
                  step_baselines, step_tune_outcomes, step_eval_outcomes, step_compare, step_eval_extractor, step_track,
                  step_check],
        else_steps=[])

    return Pipeline(name=pipeline_name, parameters=p.as_list(), steps=[step_guard, step_check_guard],
                    sagemaker_session=session)


def definition_json(pipeline: Pipeline | None = None, **kwargs) -> dict:
    """The definition as a dict: exactly what ``make upsert-pipeline`` uploads."""
    pipeline = pipeline or get_pipeline(**kwargs)
    return json.loads(pipeline.definition())


def settings_from_env(env: os._Environ | dict = os.environ) -> dict:
    """``get_pipeline`` keyword arguments from AWS_REGION, ROLE_ARN, BUCKET, PIPELINE_NAME, ..."""
    split = lambda v: [s for s in (v or "").split(",") if s]  # noqa: E731
    out = {"region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or None,
           "role": env.get("ROLE_ARN") or None, "default_bucket": env.get("BUCKET") or None,
           "pipeline_name": env.get("PIPELINE_NAME") or DEFAULT_PIPELINE_NAME,
           "subnets": split(env.get("SUBNET_IDS")), "security_group_ids": split(env.get("SECURITY_GROUP_IDS"))}
    if env.get("KMS_KEY_ID"):
        out["kms_key_id"] = env["KMS_KEY_ID"]
    if env.get("SCHEDULER_ROLE_ARN"):
        out["scheduler_role_arn"] = env["SCHEDULER_ROLE_ARN"]
    if env.get("ENDPOINT_NAME"):
        out["endpoint_name"] = env["ENDPOINT_NAME"]
    return out
