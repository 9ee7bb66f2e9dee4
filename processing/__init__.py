"""Step scripts: processing."""
