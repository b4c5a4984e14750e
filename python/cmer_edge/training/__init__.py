"""Offline learning: text-encoder fine-tuning, head training, metrics."""
