"""Scoring nodes: new raw rows through the same gate, the training log's history and the persisted
transformer, then the chosen model of every backbone (its CCSS fit with the first seed).

A source read in chunks (``TableSourceDataset(chunk_rows=...)``) is validated and scored one chunk at
a time: the gate's verdict covers every chunk before the first score is computed, and the scores are
written chunk by chunk to a temporary file that replaces ``scores.parquet`` only when complete.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

import ibis
import pandas as pd

from ccss_pipeline.config import SchemaConfig, TrainingConfig, ValidationConfig
from ccss_pipeline.data.history import require_history
from ccss_pipeline.data.interactions import ROW_COLUMN, build_interactions
from ccss_pipeline.data.relational.encoding import ROW, to_model_input
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.data.scoring import conform_ids, integer_coded_columns, with_history_log_features
from ccss_pipeline.data.sources import ChunkedSource, source_bundles, tables_in_memory
from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.data.validation.report import raise_if_failed as gate
from ccss_pipeline.model.backbones import CTRModel
from ccss_pipeline.model.persistence import TrainedModel, chosen_models
from ccss_pipeline.model.scoring import predict_proba
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN, FeatureSpec, ModelInputs

Source = dict[str, pd.DataFrame] | ChunkedSource


def validate_rows_to_score(
    score_source: Source, schema: SchemaConfig, data_validation: ValidationConfig
) -> ValidationReport:
    """The raw gate's suites on the rows to score (every chunk); the label rules apply only when the
    label is there."""
    from ccss_pipeline.data.validation import combine_reports  # GX: ~8 s to import
    from ccss_pipeline.data.validation.stages import validate_raw_source

    title = "Scoring data validation"
    reports = (
        validate_raw_source(bundle, schema, data_validation, label_required=False, title=title)
        for bundle in source_bundles(score_source)
    )
    return combine_reports(reports, title, data_validation.max_offending_values)


def score_frame(rows: pd.DataFrame, spec: FeatureSpec, models: dict[str, CTRModel]) -> pd.DataFrame:
    """``row``, the ids and time, the label when given, and ``p_<backbone>`` per model, in ``row`` order."""
    labelled = LABEL_COLUMN in rows.columns
    frame = rows if labelled else rows.assign(**{LABEL_COLUMN: 0})  # the encoding needs a label column
    encoded = to_model_input(in_memory(frame, positions=ROW), spec).to_pandas()  # in the rows' order
    inputs = ModelInputs.from_frame(encoded, spec)
    keys = [c for c in (ROW_COLUMN, "user", "item", TIME_COLUMN) if c in rows.columns]
    out = rows[keys].copy()
    if labelled:
        out[spec.label_name] = rows[LABEL_COLUMN].to_numpy()
    for backbone, model in models.items():
        out[f"p_{backbone}"] = predict_proba(model, inputs)
    return out.reset_index(drop=True)


def _check_ids_in_memory(score_source: Source, coded: dict[str, bool]) -> None:
    """Conform the ids of what is already in memory (the whole bundle, or a chunked source's side tables),
    so a column the engine cannot join fails the node with its name, not as a failure to save the first
    chunk. A chunked log is checked chunk by chunk as it is read (no extra pass over a large file)."""
    conform_ids(tables_in_memory(score_source), coded)


def score_rows(
    score_source: Source,
    score_validation_report: ValidationReport,
    interactions: ibis.Table,
    spec: FeatureSpec,
    trained_models: Mapping[str, TrainedModel],
    schema: SchemaConfig,
    model_training: TrainingConfig,
) -> Iterator[pd.DataFrame]:
    """Gate, then per chunk: join (no row dropped; ``row`` = the position in the input), the log
    features from the training log (``interactions``) strictly before each row — never from the other
    rows to score, so chunks are independent — and the scores. Lazy: the catalog writes each chunk.

    Refused before any chunk is scored: a training log (``interactions``) other than the one the spec
    was fitted beside (:func:`require_history`), and ids the training log cannot be joined on
    (:func:`conform_ids`: what is in memory here, each chunk of a chunked log before the engine reads it)."""
    gate(score_validation_report)
    if schema.log_features:  # the history is read only for the log features
        require_history(spec, interactions)
    models = {
        backbone: model
        for backbone, (_, model) in chosen_models(
            spec, trained_models, model_training.backbones, model_training.optimizer.seed
        ).items()
    }
    coded = integer_coded_columns(schema, spec, interactions)
    _check_ids_in_memory(score_source, coded)

    def chunks() -> Iterator[pd.DataFrame]:
        offset = 0
        for raw in source_bundles(score_source):
            bundle = conform_ids(raw, coded)
            rows = build_interactions(bundle, schema, for_scoring=True)
            rows[ROW_COLUMN] += offset
            offset += len(bundle["log"])
            yield score_frame(with_history_log_features(rows, interactions, schema), spec, models)

    return chunks()
