"""Shared machinery that knows no domain: config, runs, checkpoints, registry."""
