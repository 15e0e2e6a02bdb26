"""Comparison node: every monotonicity method under one protocol (``ccss_pipeline.tuning.comparison``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ccss_pipeline.config import CompareConfig, EvaluationConfig, TrainingConfig
from ccss_pipeline.model.importance import FeatureImportance
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import GROUP_COLUMN, FeatureSpec, ModelInputs
from ccss_pipeline.tuning.comparison import CCSS, CompareData, compare_methods


def _split(frame: pd.DataFrame, spec: FeatureSpec) -> ModelInputs:
    """A split in memory (every row of the comparison is fitted on it); one group without a user column."""
    if GROUP_COLUMN not in frame.columns:
        frame = frame.assign(**{GROUP_COLUMN: 0})
    return ModelInputs.from_frame(frame, spec)


def comparison_data(
    train_model_input: ParquetTable,
    validation_model_input: ParquetTable,
    test_model_input: pd.DataFrame,
    spec: FeatureSpec,
    counterfactual_pairs: ParquetTable,
    feature_importance: FeatureImportance,
    compare: CompareConfig,
) -> CompareData:
    """The three splits in memory (the catalog hands train and validation lazily, test as a frame), and
    CCSS's pair table only when the comparison has a ``ccss`` row.

    Every input was built for ``spec``: :class:`~ccss_pipeline.hooks.SpecCheckHooks` checks each one
    before this node runs (it reads ``feature_spec``), so nothing is checked again here."""
    pairs = PairTable.from_frame(counterfactual_pairs.frame()) if CCSS in compare.methods else None
    return CompareData(
        spec=spec,
        train=_split(train_model_input.frame(), spec),
        valid=_split(validation_model_input.frame(), spec),
        test=_split(test_model_input, spec),
        pairs=pairs,
        shapley_p=feature_importance.draw_probabilities(spec),
        move=pairs.move if pairs is not None else "centre",
    )


def compare_monotonicity_methods(
    compare_data: CompareData,
    search_storage: str | None,
    project_folder: Path,
    model_training: TrainingConfig,
    evaluation: EvaluationConfig,
    compare: CompareConfig,
) -> tuple[pd.DataFrame, pd.DataFrame, str]:
    """``compare.methods`` tuned with the same trial budget on validation, fitted over ``compare.n_seeds``
    seeds and measured on test as the evaluation measures a model. Returns the summary (one row per
    method), the per-seed figures and the "Methods compared" Markdown section. The studies resume from
    ``compare.storage_path`` under ``project_folder`` (or the shared ``search_storage`` database)."""
    result = compare_methods(compare_data, model_training, evaluation, compare, project_folder, search_storage)
    return result.summary, result.seeds, result.markdown()
