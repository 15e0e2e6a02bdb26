"""Scoring nodes: new raw rows through the same gate, the training log's history and the persisted
transformer, then the chosen model of every backbone (its CCSS fit with the first seed)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from ccss_pipeline.config import SchemaConfig, TrainingConfig, ValidationConfig
from ccss_pipeline.data.interactions import ROW_COLUMN, build_interactions
from ccss_pipeline.data.scoring import with_history_log_features
from ccss_pipeline.data.sources import origin_of
from ccss_pipeline.data.transformer import to_model_input
from ccss_pipeline.lineage import StaleArtifactError
from ccss_pipeline.model.persistence import rebuild_model
from ccss_pipeline.model.trainer import predict_proba
from ccss_pipeline.pipelines.data_validation.nodes import _report_outputs, gate
from ccss_pipeline.pipelines.model_training.nodes import CCSS, model_key
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN, FeatureSpec, ModelInputs


def validate_rows_to_score(score_source: dict[str, pd.DataFrame], schema: SchemaConfig,
                           data_validation: ValidationConfig) -> tuple[dict[str, Any], str]:
    """The raw gate's suites on the rows to score; the label rules apply only when the label is there."""
    from ccss_pipeline.data.expectations import validate_source  # GX takes ~8 s to import: only when used

    origins = {name: origin_of(frame, name) for name, frame in score_source.items()}
    report = validate_source(score_source, origins, schema, data_validation, label_required=False,
                             title="Scoring data validation")
    return _report_outputs(report)


def prepare_rows_to_score(score_source: dict[str, pd.DataFrame], score_validation_report: dict[str, Any],
                          interactions: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """Gate, join (no row dropped; ``row`` = the input position) and the log features from the training
    log (``interactions``) strictly before each row, never from the other rows to score."""
    gate(score_validation_report)
    rows = build_interactions(score_source, schema, for_scoring=True)
    return with_history_log_features(rows, interactions, schema)


def score_rows(rows_to_score: pd.DataFrame, feature_spec: dict[str, Any], trained_models: dict[str, dict[str, Any]],
               model_training: TrainingConfig) -> pd.DataFrame:
    """``row``, the ids and time, the label when given, and ``p_<backbone>`` per configured backbone."""
    spec = FeatureSpec.from_dict(feature_spec)
    labelled = LABEL_COLUMN in rows_to_score.columns
    frame = rows_to_score if labelled else rows_to_score.assign(**{LABEL_COLUMN: 0})  # encoding needs a column
    inputs = ModelInputs.from_frame(to_model_input(frame, spec), spec)
    keys = [c for c in (ROW_COLUMN, "user", "item", TIME_COLUMN) if c in rows_to_score.columns]
    out = rows_to_score[keys].copy()
    if labelled:
        out[spec.label_name] = rows_to_score[LABEL_COLUMN].to_numpy()
    for backbone in model_training.backbones:
        name = model_key(backbone, CCSS, model_training.optimizer.seed)
        if name not in trained_models:
            raise StaleArtifactError(f"'trained_models' has no {name!r} (it has {sorted(trained_models)}): "
                                     "rebuild it with `kedro run --pipelines=model_training`")
        out[f"p_{backbone}"] = predict_proba(rebuild_model(spec, name, trained_models[name]), inputs)
    return out.reset_index(drop=True)
