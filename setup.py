"""clinical-ml: a SageMaker Pipeline that turns MIMIC-III into deployed, monitored,
self-retraining clinical models. Exact pins live in requirements.txt (installed by
`make install`); the ranges here are what the code needs."""
from setuptools import find_packages, setup

setup(
    name="clinical-ml",
    version="0.1.0",
    description="MIMIC-III -> benchmark tasks + clinical notes -> XGBoost/LoRA models -> "
    "SageMaker Pipeline with registry, A/B endpoint, drift monitoring and retraining",
    python_requires=">=3.11",
    packages=find_packages(include=["clinical_ml*", "pipelines*", "processing*", "training*",
                                    "inference*", "monitoring*"]),
    package_data={"": ["*.json", "*.yaml", "*.csv", "*.html", "*.txt", "*.j2"]},
    include_package_data=True,
    install_requires=[
        "torch==2.13.0",
        "sagemaker>=3.27,<4",
        "boto3>=1.40",
        "awswrangler>=3.17",
        "pandas>=2.2",
        "pyarrow>=20",
        "duckdb>=1.3",
        "numpy>=2.0",
        "scikit-learn>=1.6",
        "xgboost-cpu>=3.0",
        "transformers>=5.0",
        "peft>=0.17",
        "accelerate>=1.10",
        "gguf>=0.17",
        "seqeval>=1.2",
        "jsonschema>=4.20",
        "matplotlib>=3.9",
        "orjson>=3.10",
        "uvicorn[standard]>=0.30",
        "starlette>=0.40",
        "pyyaml>=6",
        "psutil>=5.9",
    ],
    extras_require={"test": ["pytest", "pytest-xdist", "hypothesis", "schemathesis",
                             "moto[server]>=5.2", "cfn-lint", "httpx"]},
    entry_points={"console_scripts": ["clinical-ml=clinical_ml.cli:main"]},
)
