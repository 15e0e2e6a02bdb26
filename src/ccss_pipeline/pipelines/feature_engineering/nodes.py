"""Feature engineering nodes: thin wrappers over :mod:`ccss_pipeline.data` (pure functions)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.log_features import add_log_features
from ccss_pipeline.data.splitting import check_split_config, split_rows
from ccss_pipeline.data.transformer import fit_feature_spec, to_model_input
from ccss_pipeline.pipelines.data_validation.nodes import gate
from ccss_pipeline.spec import SPLIT_COLUMN, FeatureSpec


def engineer_log_features(interactions: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """Leak-free prior counts and click-through of users and videos (see data.log_features)."""
    return add_log_features(interactions, schema.log_features)


def split_interactions(
    interactions: pd.DataFrame, features: FeatureConfig, schema: SchemaConfig | None = None
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Train / validation / test split as ``feature_engineering.split.mode`` says (data.splitting).

    With the schema, contradicting settings (``mode: column`` without ``schema.split_column``, ``mode:
    time`` without a timestamp, ...) fail first, naming the keys; without it a time-stamped table is assumed.
    """
    if schema is not None:
        check_split_config(schema, features)
    return split_rows(
        interactions,
        features.split,
        has_timestamp=schema.timestamp is not None if schema is not None else True,
        split_column=(schema.split_column if schema is not None else None) or SPLIT_COLUMN,
    )


def fit_features(train: pd.DataFrame, split_report: dict[str, Any], schema: SchemaConfig, features: FeatureConfig) -> dict[str, Any]:
    """Fit buckets, scaling and vocabularies on train only; the spec is the persisted transformer.

    Gated on the split validation report: a bad split stops the run before any feature is written.
    """
    gate(split_report)
    return fit_feature_spec(train, schema, features).to_dict()


def make_model_input(split: pd.DataFrame, feature_spec: dict[str, Any]) -> pd.DataFrame:
    """Encode one split with the fitted spec into the model-ready table."""
    return to_model_input(split, FeatureSpec.from_dict(feature_spec))
