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
    export,
    feature_engineering,
    model_training,
    score,
    what_if,
)
from ccss_pipeline.run_lock import SEARCH_PIPELINE


def register_pipelines() -> dict[str, Pipeline]:
    stages: dict[str, Pipeline] = {
        "data_validation": data_validation.create_pipeline(),
        "feature_engineering": feature_engineering.create_pipeline(),
        "counterfactual_pairs": counterfactual_pairs.create_pipeline(),
        "model_training": model_training.create_pipeline(),
    }
    train = sum(stages.values(), Pipeline([]))
    stages["evaluation"] = evaluation.create_pipeline()
    default = sum(stages.values(), Pipeline([]))
    on_demand = {  # after a run, not part of the default one
        "what_if": what_if.create_pipeline(),  # what-if curves of chosen test rows
        "score": score.create_pipeline(),  # new raw rows → scores of the chosen model per backbone
        "export": export.create_pipeline(),  # the chosen CCSS model per backbone to ONNX (data/06_models/onnx)
        SEARCH_PIPELINE: model_training.create_search_pipeline(),  # the Optuna search alone: N workers, one database
    }
    return {**stages, "train": train, "__default__": default, **on_demand}
