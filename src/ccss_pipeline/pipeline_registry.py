"""Project pipelines: each stage on its own, ``train`` (data → model) and ``__default__`` (everything)."""

from __future__ import annotations

from kedro.framework.project import find_pipelines
from kedro.pipeline import Pipeline

STAGES = ("data_validation", "feature_engineering", "counterfactual_pairs", "model_training", "evaluation")


def register_pipelines() -> dict[str, Pipeline]:
    pipelines = find_pipelines(raise_errors=True)
    train_stages = [s for s in STAGES[:4] if s in pipelines]
    pipelines["train"] = sum((pipelines[s] for s in train_stages), Pipeline([]))
    pipelines["__default__"] = sum((pipelines[s] for s in STAGES if s in pipelines), Pipeline([]))
    return pipelines
