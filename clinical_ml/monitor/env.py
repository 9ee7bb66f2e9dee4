"""Container paths for argparse defaults, honouring the local runner's mapping.

Inside SageMaker a processing job sees ``/opt/ml/processing/...``; the local runner rewrites
paths on the command line and sets ``CLINICAL_ML_PROCESSING_DIR`` to the step's folder, so a
default that is not on the command line must be mapped here to land in the same place.
"""
from __future__ import annotations

import os

PROCESSING = "/opt/ml/processing"


def processing_path(sub: str) -> str:
    """``/opt/ml/processing/<sub>``, or ``$CLINICAL_ML_PROCESSING_DIR/<sub>`` under the local runner."""
    root = os.environ.get("CLINICAL_ML_PROCESSING_DIR") or PROCESSING
    return os.path.join(root, sub)
