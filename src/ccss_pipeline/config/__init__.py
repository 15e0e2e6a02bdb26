"""Typed parameters of every pipeline (pydantic models).

Node functions annotate their ``params:`` inputs with these models, so Kedro (>= 1.3) validates the
whole configuration before any node runs and a bad value fails with the key and the allowed values.
The same models are used directly by the plain library and its tests, without Kedro.

One module per block of parameters (``schema``, ``feature_engineering``, ``model_training`` and its
search, ``evaluation`` and ``compare``) over the shared rules of :mod:`ccss_pipeline.config.base`; every
model is re-exported here, so ``from ccss_pipeline.config import X`` is the one way to import them.
"""

from __future__ import annotations

from ccss_pipeline.config.base import SQLITE_SUFFIXES, SearchRange, Seed, StrictConfig, inside_data_folder
from ccss_pipeline.config.evaluation import (
    COMPARED_METHODS,
    CompareConfig,
    ComparedMethod,
    EvaluationConfig,
    WhatIfConfig,
)
from ccss_pipeline.config.features import FeatureConfig, SplitConfig, SplitLabels
from ccss_pipeline.config.schema import (
    RESERVED_COLUMNS,
    FeatureName,
    LogFeature,
    NumericalColumn,
    SchemaConfig,
    SideTable,
    ValidationConfig,
)
from ccss_pipeline.config.search import PrunerConfig, SearchConfig
from ccss_pipeline.config.training import (
    BackboneConfig,
    ContrastiveConfig,
    DistributedConfig,
    HintsConfig,
    MethodName,
    MoveName,
    OptimizerConfig,
    PairsConfig,
    PwlConfig,
    ShapleyConfig,
    StreamingConfig,
    TrainingConfig,
    Variant,
)

__all__ = [
    "COMPARED_METHODS",
    "RESERVED_COLUMNS",
    "SQLITE_SUFFIXES",
    "BackboneConfig",
    "CompareConfig",
    "ComparedMethod",
    "ContrastiveConfig",
    "DistributedConfig",
    "EvaluationConfig",
    "FeatureConfig",
    "FeatureName",
    "HintsConfig",
    "LogFeature",
    "MethodName",
    "MoveName",
    "NumericalColumn",
    "OptimizerConfig",
    "PairsConfig",
    "PrunerConfig",
    "PwlConfig",
    "SchemaConfig",
    "SearchConfig",
    "SearchRange",
    "Seed",
    "ShapleyConfig",
    "SideTable",
    "SplitConfig",
    "SplitLabels",
    "StreamingConfig",
    "StrictConfig",
    "TrainingConfig",
    "ValidationConfig",
    "Variant",
    "WhatIfConfig",
    "inside_data_folder",
]
