"""Step scripts: inference."""
