"""Project pipelines: each stage on its own, ``train`` (data → models) and ``__default__`` (everything).

Every pipeline is built at every start-up (``kedro run``, ``kedro registry list``, ``kedro viz``), and
that is cheap: a pipeline module names its nodes' functions without importing them
(:mod:`ccss_pipeline.pipelines.node_functions`), so building all of them imports no PyTorch, Optuna,
scikit-learn or matplotlib; a run imports the nodes modules of the nodes it runs. The pipelines are
named here rather than discovered by Kedro's ``find_pipelines``, which knows neither the composites
(``train``, ``__default__``) nor the search alone (``search``, a part of ``model_training``).
"""

from __future__ import annotations

from kedro.pipeline import Pipeline

from ccss_pipeline.pipelines import (
    compare,
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

#: the stages of ``train``; ``__default__`` adds the evaluation
TRAIN = ("data_validation", "feature_engineering", "counterfactual_pairs", "model_training")


def register_pipelines() -> dict[str, Pipeline]:
    """``{name: pipeline}``: the five stages of a run, the pipelines run after one, and the composites."""
    stages = {
        "data_validation": data_validation.create_pipeline(),
        "feature_engineering": feature_engineering.create_pipeline(),
        "counterfactual_pairs": counterfactual_pairs.create_pipeline(),
        "model_training": model_training.create_pipeline(),
        "evaluation": evaluation.create_pipeline(),
    }
    train = sum((stages[name] for name in TRAIN), Pipeline([]))
    return {
        **stages,
        # after a run, not part of the default one
        "what_if": what_if.create_pipeline(),  # what-if curves of chosen test rows
        "score": score.create_pipeline(),  # new raw rows → scores of the chosen model per backbone
        "export": export.create_pipeline(),  # the chosen CCSS model per backbone to ONNX (data/06_models/onnx)
        "compare": compare.create_pipeline(),  # every monotonicity method under one protocol: one table
        SEARCH_PIPELINE: model_training.create_search_pipeline(),  # the Optuna search alone: N workers, one database
        "train": train,  # data → models
        "__default__": train + stages["evaluation"],
    }
