"""Feature engineering nodes: thin wrappers over :mod:`ccss_pipeline.data` (pure functions)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.log_features import add_log_features
from ccss_pipeline.data.splitting import split_by_time
from ccss_pipeline.data.transformer import fit_feature_spec, to_model_input
from ccss_pipeline.pipelines.data_validation.nodes import gate
from ccss_pipeline.spec import FeatureSpec


def engineer_log_features(interactions: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """Leak-free prior counts and click-through of users and videos (see data.log_features)."""
    return add_log_features(interactions, schema.log_features)


def split_interactions(
    interactions: pd.DataFrame, features: FeatureConfig
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Time-ordered train / validation / test split."""
    return split_by_time(interactions, features.split)


def fit_features(train: pd.DataFrame, split_report: dict[str, Any], schema: SchemaConfig, features: FeatureConfig) -> dict[str, Any]:
    """Fit buckets, scaling and vocabularies on train only; the spec is the persisted transformer.

    Gated on the split validation report: a bad split stops the run before any feature is written.
    """
    gate(split_report)
    return fit_feature_spec(train, schema, features).to_dict()


def make_model_input(split: pd.DataFrame, feature_spec: dict[str, Any]) -> pd.DataFrame:
    """Encode one split with the fitted spec into the model-ready table."""
    return to_model_input(split, FeatureSpec.from_dict(feature_spec))
