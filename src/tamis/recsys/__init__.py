"""Recommendation: data, models, training, evaluation, methods and analysis."""
