"""Drift monitor in SageMaker Model Monitor's file formats (docs/monitoring.md).

AWS closed Model Monitor to new customers, so the project brings its own: the same
``statistics.json`` / ``constraints.json`` / ``constraint_violations.json`` files and
``feature_baseline_drift_<feature>`` metrics, so existing tooling and habits still apply.

Modules: ``formats`` (the three files: build, validate, parse), ``stats`` (dataset ->
statistics + constraints, KLL-shaped sketch), ``distance`` (L-infinity between CDFs, categorical
L-infinity / chi-square, sample-size-aware thresholds), ``capture`` (SageMaker capture JSONL
reader/writer), ``check`` (baseline vs window -> violations, drift score), ``metrics``
(CloudWatch datapoints, local metrics JSONL), ``quality`` (AUROC/Brier vs registered metrics),
``alarms`` (alarm definitions shared by AWS and the local loop), ``guard`` (storm guard),
``loop`` (local alarm -> retraining trigger), ``scenarios`` (drifted traffic generator).
"""
