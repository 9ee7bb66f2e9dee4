"""clinical-ml: MIMIC-III -> benchmark tasks and note datasets -> outcome models and LoRA
extractors -> SageMaker Pipeline (registry, endpoint, drift monitor, retraining).

Domain code shared by every step script lives in this package; step scripts live in
processing/, training/, inference/ and monitoring/; the pipeline DAG in pipelines/.
"""
__version__ = "0.1.0"
