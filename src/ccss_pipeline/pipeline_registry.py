"""Project pipelines: each stage on its own, ``train`` (data → models) and ``__default__`` (everything).

The stages are imported explicitly rather than discovered: Kedro ≥ 1.7's ``find_pipelines`` only
imports the folders named on the command line, which would hide composites such as ``train``.
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from ccss_pipeline.pipelines import (
    counterfactual_pairs,
    data_validation,
    evaluation,
    feature_engineering,
    model_training,
)


def register_pipelines() -> dict[str, Pipeline]:
    stages: dict[str, Pipeline] = {
        "data_validation": data_validation.create_pipeline(),
        "feature_engineering": feature_engineering.create_pipeline(),
        "counterfactual_pairs": counterfactual_pairs.create_pipeline(),
        "model_training": model_training.create_pipeline(),
    }
    train = sum(stages.values(), Pipeline([]))
    stages["evaluation"] = evaluation.create_pipeline()
    return {**stages, "train": train, "__default__": sum(stages.values(), Pipeline([]))}
