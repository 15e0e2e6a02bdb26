"""The export pipeline: the chosen CCSS model of each backbone to ONNX (on demand, not in the default run)."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
