"""Pipeline parameters: everything a user may change per execution, with sensible defaults.

Defaults that depend on the account (image URIs in our own ECR repositories, the input
bucket) are computed from the role ARN, region and bucket given to ``get_pipeline``; every
value can still be overridden per run (``make run-pipeline PARAMS="--param Name=Value"``)
or by the drift rule (``Trigger=drift``).
"""
from __future__ import annotations

from dataclasses import dataclass, fields

from sagemaker.core.workflow.parameters import ParameterFloat, ParameterInteger, ParameterString

from clinical_ml.extraction.precision import PRECISIONS

# Our image families (pipelines/images/<family>/Dockerfile) and their ECR repository names.
IMAGE_REPOSITORIES = {
    "processing": "clinical-ml-processing",
    "training-cpu": "clinical-ml-training-cpu",
    "training-gpu": "clinical-ml-training-gpu",
    "inference": "clinical-ml-inference",
}

TRIGGERS = ("manual", "schedule", "drift")
APPROVAL_STATUSES = ("Approved", "PendingManualApproval", "Rejected")


def account_from_role(role_arn: str) -> str:
    """``arn:aws:iam::123456789012:role/x`` -> ``123456789012`` (placeholder when not an ARN)."""
    parts = role_arn.split(":")
    return parts[4] if len(parts) > 5 and parts[4].isdigit() else "000000000000"


def image_uri(family: str, account: str, region: str, tag: str = "latest") -> str:
    suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
    return f"{account}.dkr.ecr.{region}.{suffix}/{IMAGE_REPOSITORIES[family]}:{tag}"


@dataclass(frozen=True)
class Parameters:
    """The pipeline's parameters, in the order Studio shows them."""

    trigger: ParameterString
    data_window_start: ParameterString
    data_window_end: ParameterString
    input_data_uri: ParameterString
    annotated_corpora_uri: ParameterString
    processing_instance_type: ParameterString
    processing_instance_count: ParameterInteger
    training_instance_type: ParameterString
    tuning_strategy: ParameterString
    tuning_max_jobs: ParameterInteger
    tuning_max_parallel_jobs: ParameterInteger
    extractor_instance_type: ParameterString
    extractor_instance_count: ParameterInteger
    extractor_kind: ParameterString
    extractor_base_model: ParameterString
    extractor_max_train_docs: ParameterInteger
    extractor_max_synthetic_docs: ParameterInteger
    extractor_oversample: ParameterString
    extractor_train_seconds: ParameterInteger
    note_categories: ParameterString
    extract_instance_type: ParameterString
    extract_instance_count: ParameterInteger
    extract_image_uri: ParameterString
    extract_precision: ParameterString
    endpoint_instance_type: ParameterString
    min_ihm_auroc: ParameterFloat
    min_extraction_f1: ParameterFloat
    promotion_auroc_margin: ParameterFloat
    promotion_ece_margin: ParameterFloat
    model_approval_status: ParameterString
    endpoint_name: ParameterString
    promotion_traffic: ParameterString
    challenger_weight: ParameterFloat
    drift_threshold: ParameterFloat
    mlflow_tracking_uri: ParameterString
    kms_key_id: ParameterString
    processing_image_uri: ParameterString
    training_image_uri: ParameterString
    training_gpu_image_uri: ParameterString
    inference_image_uri: ParameterString

    def as_list(self) -> list:
        return [getattr(self, f.name) for f in fields(self)]


def make_parameters(region: str, role: str, default_bucket: str, *, kms_key_id: str = "alias/clinical-ml",
                    endpoint_name: str = "clinical-ml") -> Parameters:
    account = account_from_role(role)
    img = lambda family: image_uri(family, account, region)  # noqa: E731
    return Parameters(
        trigger=ParameterString("Trigger", default_value="manual", enum_values=list(TRIGGERS)),
        # recorded on the registered model versions; "none" unless a drift trigger sets them
        data_window_start=ParameterString("DataWindowStart", default_value="none"),
        data_window_end=ParameterString("DataWindowEnd", default_value="none"),
        input_data_uri=ParameterString("InputDataUri", default_value=f"s3://{default_bucket}/mimic-iii/"),
        # real annotated corpora (brat / PubTator / JSONL folders) merged into the note splits
        # and scored per corpus; "" = none (synthetic notes only). An argument, not a
        # processing input: a ProcessingInput cannot be optional (an empty S3Uri is invalid)
        annotated_corpora_uri=ParameterString("AnnotatedCorporaUri", default_value=""),
        processing_instance_type=ParameterString("ProcessingInstanceType", default_value="ml.m5.xlarge"),
        processing_instance_count=ParameterInteger("ProcessingInstanceCount", default_value=1),
        training_instance_type=ParameterString("TrainingInstanceType", default_value="ml.m5.2xlarge"),
        # TuneOutcomes: XGBoost trials (Bayesian: SageMaker's; locally Optuna's TPE), objective
        # validation:ihm_auroc; the best trial's model is evaluated and registered
        tuning_strategy=ParameterString("TuningStrategy", default_value="Bayesian",
                                        enum_values=["Bayesian", "Random"]),
        tuning_max_jobs=ParameterInteger("TuningMaxJobs", default_value=12),
        tuning_max_parallel_jobs=ParameterInteger("TuningMaxParallelJobs", default_value=3),
        extractor_instance_type=ParameterString("ExtractorTrainingInstanceType", default_value="ml.g5.2xlarge"),
        # > 1: DDP over the instances (torchrun, one process per GPU; clinical_ml.distributed)
        extractor_instance_count=ParameterInteger("ExtractorTrainingInstanceCount", default_value=1),
        extractor_kind=ParameterString("ExtractorKind", default_value="encoder",
                                       enum_values=["encoder", "generative", "rules"]),
        # "" = the kind's default base (minilm for encoder, smollm2 for generative), baked in the image
        extractor_base_model=ParameterString("ExtractorBaseModel", default_value=""),
        extractor_max_train_docs=ParameterInteger("ExtractorMaxTrainDocs", default_value=600),
        # the synthetic gold notes are templates: beside real corpora, half as many of them left
        # the budget to real text (demo, validation split: mean real-corpus F1 0.739 -> 0.796)
        extractor_max_synthetic_docs=ParameterInteger("ExtractorMaxSyntheticDocs", default_value=300),
        # MACCROBAT, the one corpus of clinical narrative (case reports), twice: demo recipe,
        # validation splits, mean real-corpus lenient F1 0.829 -> 0.835 (x3: 0.825), MACCROBAT
        # MEDICATION 0.758 -> 0.776; a corpus that is not there is skipped (logged)
        extractor_oversample=ParameterString("ExtractorOversample", default_value="maccrobat2020=2"),
        # 0 = train the configured epochs; > 0 stops (and decays the learning rate) by then
        extractor_train_seconds=ParameterInteger("ExtractorTrainSeconds", default_value=0),
        # NOTEEVENTS categories the extractor runs over (discharge summaries first); the 48 h
        # in-hospital-mortality features come from the notes charted by then (nursing, physician)
        note_categories=ParameterString("NoteCategories",
                                        default_value="Discharge summary,Nursing,Nursing/other,Physician"),
        # ExtractNotes: N instances extract the notes of their hash shard; a GPU instance type
        # (ml.g5.xlarge) wants the training-gpu image in ExtractNotesImageUri
        extract_instance_type=ParameterString("ExtractNotesInstanceType", default_value="ml.m5.4xlarge"),
        extract_instance_count=ParameterInteger("ExtractNotesInstanceCount", default_value=1),
        extract_image_uri=ParameterString("ExtractNotesImageUri", default_value=img("processing")),
        # the encoder's CPU arithmetic: "bf16" (CPUs with AVX512-BF16/AMX) and "int8" are faster
        # at an F1 cost and with batch-dependent output (docs/extraction.md "Throughput")
        extract_precision=ParameterString("ExtractNotesPrecision", default_value="fp32",
                                          enum_values=list(PRECISIONS)),
        endpoint_instance_type=ParameterString("EndpointInstanceType", default_value="ml.m5.large"),
        min_ihm_auroc=ParameterFloat("MinIhmAuroc", default_value=0.70),
        min_extraction_f1=ParameterFloat("MinExtractionF1", default_value=0.70),
        # CompareModels' promotion rule (docs/retraining.md): promote the new outcome model when the
        # 95% CI lower bound of AUROC(new) - AUROC(production) > -margin and its ECE is not worse
        # by more than the ECE margin
        promotion_auroc_margin=ParameterFloat("PromotionAurocMargin", default_value=0.02),
        promotion_ece_margin=ParameterFloat("PromotionEceMargin", default_value=0.03),
        model_approval_status=ParameterString(
            "ModelApprovalStatus", default_value="PendingManualApproval", enum_values=list(APPROVAL_STATUSES)),
        endpoint_name=ParameterString("EndpointName", default_value=endpoint_name),
        # what Deploy does with the promoted model (inference/deploy.py): "all" = it serves all
        # traffic as the champion, the old model kept at weight 0 for rollback; "canary" = it
        # gets ChallengerWeight beside the old champion
        promotion_traffic=ParameterString("PromotionTraffic", default_value="all", enum_values=["all", "canary"]),
        challenger_weight=ParameterFloat("ChallengerWeight", default_value=0.1),
        # per-feature baseline drift distance above which a feature violates (constraints.json)
        drift_threshold=ParameterFloat("DriftThreshold", default_value=0.1),
        # TrackRuns logs the execution, its tuning trials and the extractor to MLflow: a SageMaker
        # managed MLflow tracking-server ARN (sagemaker-mlflow), any MLflow URI, or "" = off
        mlflow_tracking_uri=ParameterString("MlflowTrackingUri", default_value=""),
        kms_key_id=ParameterString("KmsKeyId", default_value=kms_key_id),
        processing_image_uri=ParameterString("ProcessingImageUri", default_value=img("processing")),
        training_image_uri=ParameterString("TrainingImageUri", default_value=img("training-cpu")),
        training_gpu_image_uri=ParameterString("TrainingGpuImageUri", default_value=img("training-gpu")),
        inference_image_uri=ParameterString("InferenceImageUri", default_value=img("inference")),
    )
