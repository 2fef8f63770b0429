"""LLM post-training: models, tasks, fine-tuning, merging and data selection."""
