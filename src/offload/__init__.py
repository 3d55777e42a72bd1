"""offload: durable background jobs."""
