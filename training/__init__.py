"""Step scripts: training."""
