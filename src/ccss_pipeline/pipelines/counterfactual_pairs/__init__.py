"""The counterfactual_pairs pipeline."""

from .pipeline import create_pipeline

__all__ = ["create_pipeline"]
