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
from sagemaker.mlops.workflow.steps import CacheConfig, ProcessingStep, TrainingStep, TuningStep
from sagemaker.train import ModelTrainer
from sagemaker.train.tuner import HyperparameterTuner

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


def script_entrypoint(script: str, distributed: bool = False) -> list[str]:
    """``processing/build_tasks.py`` -> ``["python3", "/opt/ml/code/processing/build_tasks.py"]``;
    ``distributed``: through ``clinical_ml.distributed``, which starts torchrun with one process
    per GPU and the instances of resourceconfig.json as nodes (the script alone on one CPU/GPU).
    The SDK's ``Torchrun`` config would do the same with driver scripts it uploads to S3 while
    the definition is built, which this definition never does."""
    if distributed:
        return [PYTHON, "-m", "clinical_ml.distributed", f"{CODE_DIR}/{script}"]
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

    def _trainer(self, name: str, image: Any, instance_type: Any, volume_kms: bool, max_runtime: int,
                 output_path: Any, environment: dict, hyperparameters: dict | None = None,
                 instance_count: Any = 1) -> ModelTrainer:
        p = self.params
        return ModelTrainer(
            training_image=image, role=self.role, sagemaker_session=self.session,
            base_job_name=f"clinical-ml-{name.lower()}",
            compute=Compute(instance_type=instance_type, instance_count=instance_count, volume_size_in_gb=50,
                            volume_kms_key_id=p.kms_key_id if volume_kms else None),
            networking=Networking(enable_network_isolation=True,
                                  enable_inter_container_traffic_encryption=True,
                                  subnets=list(self.subnets) or None,
                                  security_group_ids=list(self.security_group_ids) or None),
            stopping_condition=StoppingCondition(max_runtime_in_seconds=max_runtime),
            output_data_config=OutputDataConfig(s3_output_path=output_path, kms_key_id=p.kms_key_id,
                                                compression_type="GZIP"),
            environment=environment, hyperparameters=hyperparameters)

    def tuning(self, name: str, script: str, *, display_name: str, description: str,
               channels: dict[str, Any], image: Any, instance_type: Any, objective: str,
               metric_definitions: list[dict], ranges: dict, static: dict, strategy: Any,
               max_jobs: Any, max_parallel_jobs: Any, max_runtime: int = 8 * 3600) -> "ScriptTuningStep":
        """A TuningStep whose trials run ``script`` with the SageMaker training contract.

        A tuning job's trials have no ContainerEntrypoint: the image runs ``train``
        (pipelines/images/train), which starts ``SAGEMAKER_PROGRAM`` with the trial's
        hyperparameters as ``--name value``. Trial outputs go to a per-pipeline prefix
        (``get_top_model_s3_uri`` needs a static one); trial job names are unique anyway.
        """
        trainer = self._trainer(name, image, instance_type, True, max_runtime, self.tuning_output(name),
                                {**TRAINING_ENV, "SAGEMAKER_PROGRAM": script}, dict(static))
        # ResourceLimits are pydantic ints in the SDK: built with placeholders, then replaced by
        # the pipeline parameters in ScriptTuningStep.arguments
        tuner = HyperparameterTuner(
            model_trainer=trainer, objective_metric_name=objective, hyperparameter_ranges=ranges,
            metric_definitions=metric_definitions, strategy="Bayesian", objective_type="Maximize",
            max_jobs=1, max_parallel_jobs=1, base_tuning_job_name=f"clinical-ml-{name.lower()}"[:32],
            random_seed=7)
        step_args = tuner.tune(inputs=[InputData(channel_name=channel, data_source=uri)
                                       for channel, uri in channels.items()])
        return ScriptTuningStep(
            name=name, step_args=step_args, display_name=display_name, description=description,
            cache_config=CACHE, retry_policies=[JOB_RETRY, SERVICE_RETRY],
            limits={"MaxNumberOfTrainingJobs": max_jobs, "MaxParallelTrainingJobs": max_parallel_jobs},
            strategy=strategy, kms_key_id=self.params.kms_key_id, vpc=self._vpc())

    def tuning_output(self, name: str) -> str:
        """``s3://<bucket>/<pipeline>/<step>``: where a tuning step's trials write their models."""
        return f"s3://{self.bucket}/{self.tuning_prefix(name)}"

    def tuning_prefix(self, name: str) -> str:
        return f"{self.pipeline_name}/{name}"

    def _vpc(self) -> dict | None:
        if not self.subnets:
            return None
        return {"Subnets": list(self.subnets), "SecurityGroupIds": list(self.security_group_ids)}

    def training(self, name: str, script: str, *, display_name: str, description: str,
                 channels: dict[str, Any], image: Any, instance_type: Any, arguments: list | None = None,
                 volume_kms: bool = True, max_runtime: int = 8 * 3600, instance_count: Any = 1,
                 distributed: bool = False) -> "ScriptTrainingStep":
        """A TrainingStep running ``script`` with the SageMaker training contract.

        ``volume_kms=False`` for instance types with local NVMe storage (g5, p4d, ...): SageMaker
        rejects a volume KMS key there; their instance store is encrypted by the hardware.
        """
        trainer = self._trainer(name, image, instance_type, volume_kms, max_runtime, self.s3(name),
                                dict(TRAINING_ENV), instance_count=instance_count)
        step_args = trainer.train(input_data_config=[
            InputData(channel_name=channel, data_source=uri) for channel, uri in channels.items()])
        return ScriptTrainingStep(
            name=name, step_args=step_args, display_name=display_name, description=description,
            cache_config=CACHE, retry_policies=[JOB_RETRY, SERVICE_RETRY],
            entrypoint=script_entrypoint(script, distributed), arguments=arguments or [])


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


class ScriptTuningStep(TuningStep):
    """A TuningStep with what the SDK's tuner leaves out of the trial definition.

    ``HyperparameterTuner`` drops the trainer's network isolation, inter-container encryption
    and volume KMS key, and only takes integers for the resource limits and the strategy; the
    request here puts them back (pipeline parameters where the service accepts them).
    """

    def __init__(self, *args, limits: dict, strategy: Any, kms_key_id: Any, vpc: dict | None, **kwargs):
        super().__init__(*args, **kwargs)
        self._limits, self._strategy, self._kms, self._vpc = dict(limits), strategy, kms_key_id, vpc

    @property
    def arguments(self) -> dict:
        request = super().arguments
        config = request["HyperParameterTuningJobConfig"]
        config["ResourceLimits"].update(self._limits)
        config["Strategy"] = self._strategy
        job = request["TrainingJobDefinition"]
        job["EnableNetworkIsolation"] = True
        job["EnableInterContainerTrafficEncryption"] = True
        job["ResourceConfig"]["VolumeKmsKeyId"] = self._kms
        job["OutputDataConfig"]["KmsKeyId"] = self._kms
        if self._vpc:
            job["VpcConfig"] = dict(self._vpc)
        return request
