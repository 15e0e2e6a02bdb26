"""Project pipelines: each stage on its own, ``train`` (data → models) and ``__default__`` (everything).

The stages are named here rather than discovered: Kedro ≥ 1.7's ``find_pipelines`` only imports the
folders named on the command line, which would hide composites such as ``train``. Like it, the registry
builds only what the command asked for (``kedro run --pipeline feature_engineering`` imports the data
stages' modules, not PyTorch, scikit-learn and Optuna: ~5 s less start-up for every data-stage run);
``kedro run`` without a name, ``kedro viz`` and ``kedro registry list`` get every pipeline.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable

from kedro.pipeline import Pipeline

from ccss_pipeline.run_lock import SEARCH_PIPELINE

#: pipeline name → (module under ``ccss_pipeline.pipelines``, its factory)
_FACTORIES: dict[str, tuple[str, str]] = {
    "data_validation": ("data_validation", "create_pipeline"),
    "feature_engineering": ("feature_engineering", "create_pipeline"),
    "counterfactual_pairs": ("counterfactual_pairs", "create_pipeline"),
    "model_training": ("model_training", "create_pipeline"),
    "evaluation": ("evaluation", "create_pipeline"),
    # after a run, not part of the default one
    "what_if": ("what_if", "create_pipeline"),  # what-if curves of chosen test rows
    "score": ("score", "create_pipeline"),  # new raw rows → scores of the chosen model per backbone
    "export": ("export", "create_pipeline"),  # the chosen CCSS model per backbone to ONNX (data/06_models/onnx)
    "compare": ("compare", "create_pipeline"),  # every monotonicity method under one protocol: one table
    SEARCH_PIPELINE: ("model_training", "create_search_pipeline"),  # the Optuna search alone: N workers, one database
}
_TRAIN = ("data_validation", "feature_engineering", "counterfactual_pairs", "model_training")
#: composite pipeline name → the pipelines it adds up
_COMPOSITES: dict[str, tuple[str, ...]] = {"train": _TRAIN, "__default__": (*_TRAIN, "evaluation")}
PIPELINE_NAMES: tuple[str, ...] = (*_FACTORIES, *_COMPOSITES)


def build_pipeline(name: str) -> Pipeline:
    """The pipeline registered as ``name`` (importing only the modules it needs)."""
    if name in _COMPOSITES:
        return sum((build_pipeline(part) for part in _COMPOSITES[name]), Pipeline([]))
    module, factory = _FACTORIES[name]
    return getattr(importlib.import_module(f"ccss_pipeline.pipelines.{module}"), factory)()


def register_pipelines(names: Iterable[str] | None = None) -> dict[str, Pipeline]:
    """``{name: pipeline}`` for ``names`` (default: the names the Kedro command asked for, or all).

    An unknown requested name is left out: Kedro then reloads every pipeline to suggest close names."""
    if names is not None:
        wanted = set(names)
    else:
        wanted = (_requested_by_kedro() if _called_by_kedro() else None) or set(PIPELINE_NAMES)
    return {name: build_pipeline(name) for name in PIPELINE_NAMES if name in wanted}


def _called_by_kedro() -> bool:
    """Whether ``register_pipelines`` was called by Kedro's lazy loader (``pipelines[...]``), not
    directly. Kedro keeps a command's filter after it (and after a run that failed before loading), so
    its state alone cannot tell a later direct call (a test, a notebook) from Kedro loading."""
    caller = sys._getframe(2)  # this function → register_pipelines → its caller
    return caller.f_code.co_name == "_load_data" and caller.f_globals.get("__name__") == "kedro.framework.project"


def _requested_by_kedro() -> set[str] | None:
    """The pipeline names of the Kedro command being loaded (what Kedro's own ``find_pipelines`` filters
    on), or ``None``: every pipeline (also from a Kedro without the filter)."""
    from kedro.framework.project import pipelines

    requested = getattr(pipelines, "_requested_pipelines", None)
    return set(requested) if requested else None
