"""Small builders that turn "run this step script in that image" into SageMaker pipeline steps.

Every step runs one of our step scripts from the image (our images copy this repository to
``CODE_DIR`` and install it): the script path is the container entrypoint, visible in the
definition and in Studio, and the local runner maps ``CODE_DIR`` back to the repository root.
Nothing is uploaded while the definition is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from sagemaker.core.network import NetworkConfig
from sagemaker.core.processing import Processor
from sagemaker.core.shapes import ProcessingInput, ProcessingOutput, ProcessingS3Input, ProcessingS3Output
from sagemaker.core.training.configs import Compute, InputData, Networking, OutputDataConfig, StoppingCondition
from sagemaker.core.workflow.execution_variables import ExecutionVariables
from sagemaker.core.workflow.functions import Join
from sagemaker.mlops.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)
from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep
from sagemaker.train import ModelTrainer

CODE_DIR = "/opt/ml/code"  # where every image holds this repository
PYTHON = "python3"
PROCESSING_ROOT = "/opt/ml/processing"

# Transient failures worth retrying: capacity/internal errors of the job, throttling and
# service faults of the pipeline service itself. Bad data or code is not retried.
JOB_RETRY = SageMakerJobStepRetryPolicy(
    exception_types=[SageMakerJobExceptionTypeEnum.CAPACITY_ERROR,
                     SageMakerJobExceptionTypeEnum.INTERNAL_ERROR,
                     SageMakerJobExceptionTypeEnum.RESOURCE_LIMIT],
    interval_seconds=60, backoff_rate=2.0, max_attempts=3)
SERVICE_RETRY = StepRetryPolicy(
    exception_types=[StepExceptionTypeEnum.SERVICE_FAULT, StepExceptionTypeEnum.THROTTLING],
    interval_seconds=10, backoff_rate=2.0, max_attempts=5)
CACHE = CacheConfig(enable_caching=True, expire_after="P30D")

# The SageMaker training contract our scripts read (the sagemaker-training toolkit sets these;
# with an explicit entrypoint we set them ourselves).
TRAINING_ENV = {
    "SM_MODEL_DIR": "/opt/ml/model",
    "SM_OUTPUT_DATA_DIR": "/opt/ml/output/data",
    "SM_CHANNEL_TRAIN": "/opt/ml/input/data/train",
    "SM_CHANNEL_VALIDATION": "/opt/ml/input/data/validation",
    "PYTHONUNBUFFERED": "1",
}


def script_entrypoint(script: str) -> list[str]:
    """``processing/build_tasks.py`` -> ``["python3", "/opt/ml/code/processing/build_tasks.py"]``."""
    return [PYTHON, f"{CODE_DIR}/{script}"]


def s3_input(name: str, uri: Any, local: str, distribution: Any = "FullyReplicated") -> ProcessingInput:
    return ProcessingInput(input_name=name, s3_input=ProcessingS3Input(
        s3_uri=uri, local_path=f"{PROCESSING_ROOT}/input/{local}", s3_data_type="S3Prefix",
        s3_input_mode="File", s3_data_distribution_type=distribution))


def s3_output(name: str, uri: Any, local: str) -> ProcessingOutput:
    return ProcessingOutput(output_name=name, s3_output=ProcessingS3Output(
        s3_uri=uri, local_path=f"{PROCESSING_ROOT}/output/{local}", s3_upload_mode="EndOfJob"))


@dataclass
class StepFactory:
    """What every step shares: session, role, bucket, parameters and security settings."""

    session: Any
    role: str
    bucket: str
    pipeline_name: str
    params: Any
    subnets: Sequence[str] = ()
    security_group_ids: Sequence[str] = ()

    def s3(self, step: str, *parts: str) -> Join:
        """``s3://<bucket>/<pipeline>/<execution id>/<step>/<parts>``: one prefix per execution."""
        return Join(on="/", values=["s3:/", self.bucket, self.pipeline_name,
                                    ExecutionVariables.PIPELINE_EXECUTION_ID, step, *parts])

    def _network(self, isolated: bool) -> NetworkConfig:
        return NetworkConfig(
            enable_network_isolation=isolated, encrypt_inter_container_traffic=True,
            subnets=list(self.subnets) or None, security_group_ids=list(self.security_group_ids) or None)

    def processing(self, name: str, script: str, *, display_name: str, description: str,
                   inputs: list[ProcessingInput] = (), outputs: list[ProcessingOutput] = (),
                   arguments: list | None = None, image: Any = None, instance_type: Any = None,
                   instance_count: Any = 1, isolated: bool = True, cache: bool = True,
                   property_files: list | None = None, depends_on: list | None = None,
                   max_runtime: int = 4 * 3600, env: dict | None = None) -> ProcessingStep:
        """A ProcessingStep running ``script`` (a path relative to the repository root).

        ``isolated=False`` for steps that call AWS APIs (guard, deploy, schedule).
        """
        p = self.params
        processor = Processor(
            role=self.role, image_uri=image or p.processing_image_uri,
            instance_type=instance_type or p.processing_instance_type, instance_count=instance_count,
            entrypoint=script_entrypoint(script), volume_size_in_gb=30,
            volume_kms_key=p.kms_key_id, output_kms_key=p.kms_key_id,
            max_runtime_in_seconds=max_runtime, base_job_name=f"clinical-ml-{name.lower()}",
            sagemaker_session=self.session, network_config=self._network(isolated),
            env={"PYTHONUNBUFFERED": "1", **(env or {})})
        step_args = processor.run(inputs=list(inputs), outputs=list(outputs), arguments=arguments)
        return ProcessingStep(
            name=name, step_args=step_args, display_name=display_name, description=description,
            property_files=property_files, cache_config=CACHE if cache else None,
            depends_on=depends_on, retry_policies=[JOB_RETRY, SERVICE_RETRY])

    def training(self, name: str, script: str, *, display_name: str, description: str,
                 channels: dict[str, Any], image: Any, instance_type: Any, arguments: list | None = None,
                 volume_kms: bool = True, max_runtime: int = 8 * 3600) -> "ScriptTrainingStep":
        """A TrainingStep running ``script`` with the SageMaker training contract.

        ``volume_kms=False`` for instance types with local NVMe storage (g5, p4d, ...): SageMaker
        rejects a volume KMS key there; their instance store is encrypted by the hardware.
        """
        p = self.params
        trainer = ModelTrainer(
            training_image=image, role=self.role, sagemaker_session=self.session,
            base_job_name=f"clinical-ml-{name.lower()}",
            compute=Compute(instance_type=instance_type, instance_count=1, volume_size_in_gb=50,
                            volume_kms_key_id=p.kms_key_id if volume_kms else None),
            networking=Networking(enable_network_isolation=True,
                                  enable_inter_container_traffic_encryption=True,
                                  subnets=list(self.subnets) or None,
                                  security_group_ids=list(self.security_group_ids) or None),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=max_runtime),
            output_data_config=OutputDataConfig(s3_output_path=self.s3(name), kms_key_id=p.kms_key_id,
                                                compression_type="GZIP"),
            environment=dict(TRAINING_ENV))
        step_args = trainer.train(input_data_config=[
            InputData(channel_name=channel, data_source=uri) for channel, uri in channels.items()])
        return ScriptTrainingStep(
            name=name, step_args=step_args, display_name=display_name, description=description,
            cache_config=CACHE, retry_policies=[JOB_RETRY, SERVICE_RETRY],
            entrypoint=script_entrypoint(script), arguments=arguments or [])


class ScriptTrainingStep(TrainingStep):
    """A TrainingStep whose container runs ``entrypoint + arguments`` (CreateTrainingJob's
    ``AlgorithmSpecification.ContainerEntrypoint/ContainerArguments``).

    ``ModelTrainer`` only sets an entrypoint when it uploads source code (its driver scripts go
    to S3 at build time); our code is in the image, so we set the entrypoint here instead.
    """

    def __init__(self, *args, entrypoint: list[str], arguments: list, **kwargs):
        super().__init__(*args, **kwargs)
        self._entrypoint = list(entrypoint)
        self._container_arguments = list(arguments)

    @property
    def arguments(self) -> dict:
        request = super().arguments
        spec = request["AlgorithmSpecification"]
        spec["ContainerEntrypoint"] = list(self._entrypoint)
        if self._container_arguments:
            spec["ContainerArguments"] = list(self._container_arguments)
        return request
