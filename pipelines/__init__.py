"""Pipeline definition (SageMaker SDK v3), make-target entry points, local runner."""
