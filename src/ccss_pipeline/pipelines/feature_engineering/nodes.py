"""Feature engineering nodes: thin wrappers over :mod:`ccss_pipeline.data.relational`, engine tables in
and engine tables out (the catalog's EngineTableDataset runs them into parquet). A caller holding frames
(a notebook, a test) turns them into in-memory tables first (:mod:`ccss_pipeline.data.relational.in_memory`)."""

from __future__ import annotations

from dataclasses import replace

import ibis

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.history import history_fingerprint
from ccss_pipeline.data.relational import encoding, log_features, transformer
from ccss_pipeline.data.relational.splitting import split_table
from ccss_pipeline.data.splitting import check_split_config
from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.data.validation.report import raise_if_failed as gate
from ccss_pipeline.data.validation.stages import validate_split as validate_split  # a node as it is
from ccss_pipeline.lineage import StampedTable, stamp_table
from ccss_pipeline.spec import SPLIT_COLUMN, FeatureSpec


def engineer_log_features(interactions: ibis.Table, schema: SchemaConfig) -> ibis.Table:
    """Leak-free prior counts and click-through of users and videos (see data.relational.log_features)."""
    return log_features.add_log_features(interactions, schema.log_features)


def split_interactions(
    interactions: ibis.Table, features: FeatureConfig, schema: SchemaConfig | None = None
) -> tuple[ibis.Table, ibis.Table, ibis.Table]:
    """Train / validation / test split as ``feature_engineering.split.mode`` says (data.relational.splitting).

    With the schema, contradicting settings (``mode: column`` without ``schema.split_column``, ``mode:
    time`` without a timestamp, ...) fail first, naming the keys; without it a time-stamped table is assumed.
    """
    if schema is not None:
        check_split_config(schema, features)
    return split_table(
        interactions,
        features.split,
        has_timestamp=schema.timestamp is not None if schema is not None else True,
        split_column=(schema.split_column if schema is not None else None) or SPLIT_COLUMN,
    )


def fit_features(
    train: ibis.Table,
    split_report: ValidationReport,
    schema: SchemaConfig,
    features: FeatureConfig,
    interactions: ibis.Table | None = None,
) -> FeatureSpec:
    """Fit buckets, scaling and vocabularies on train only; the spec is the persisted transformer,
    stamped with the fingerprint of the training log (``interactions``) that scoring reads its history
    from, so a later ``score`` beside another log is refused (:mod:`ccss_pipeline.data.history`).

    Gated on the split validation report: a bad split stops the run before any feature is written.
    """
    gate(split_report)
    spec = transformer.fit_feature_spec(train, schema, features)
    return spec if interactions is None else replace(spec, history=history_fingerprint(interactions))


def make_model_input(split: ibis.Table, spec: FeatureSpec) -> StampedTable:
    """Encode one split with the fitted spec into the model-ready table (stamped with the spec)."""
    return stamp_table(encoding.to_model_input(split, spec), spec)
