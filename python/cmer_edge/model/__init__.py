"""The CM-RoBERTa head: configuration (torch-free) and the PyTorch reference module."""

from cmer_edge.model.config import EMOTIONS, HeadConfig

__all__ = ["EMOTIONS", "HeadConfig"]
