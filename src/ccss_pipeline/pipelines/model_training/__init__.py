"""Model training pipeline: the Optuna search per backbone, then the final CCSS and baseline fits."""

from .pipeline import create_pipeline, create_search_pipeline

__all__ = ["create_pipeline", "create_search_pipeline"]
