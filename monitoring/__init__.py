"""Step scripts: monitoring."""
