"""Comparison node: every monotonicity method under one protocol (``ccss_pipeline.tuning.comparison``)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ccss_pipeline.config import CompareConfig, EvaluationConfig, TrainingConfig
from ccss_pipeline.lineage import require_spec
from ccss_pipeline.model.importance import FeatureImportance
from ccss_pipeline.model.synthesis import PairTable
from ccss_pipeline.parquet_table import ParquetTable, as_frame
from ccss_pipeline.spec import GROUP_COLUMN, FeatureSpec, ModelInputs
from ccss_pipeline.tuning.comparison import CCSS, CompareData, compare_methods

Table = ParquetTable | pd.DataFrame  # the catalog hands a lazy table (train, validation) or a frame (test)


def _split(table: Table, spec: FeatureSpec) -> ModelInputs:
    """A split in memory (every row of the comparison is fitted on it); one group without a user column."""
    frame = as_frame(table)
    if GROUP_COLUMN not in frame.columns:
        frame = frame.assign(**{GROUP_COLUMN: 0})
    return ModelInputs.from_frame(frame, spec)


def comparison_data(
    train_model_input: Table,
    validation_model_input: Table,
    test_model_input: Table,
    spec: FeatureSpec,
    counterfactual_pairs: Table,
    feature_importance: FeatureImportance,
    compare: CompareConfig,
) -> CompareData:
    """The three splits in memory, each checked to be built for ``spec``; CCSS's pair table only when
    the comparison has a ``ccss`` row."""
    for name, artifact, rebuild in (
        ("train_model_input", train_model_input, "feature_engineering"),
        ("validation_model_input", validation_model_input, "feature_engineering"),
        ("test_model_input", test_model_input, "feature_engineering"),
        ("counterfactual_pairs", counterfactual_pairs, "counterfactual_pairs"),
        ("feature_importance", feature_importance, "counterfactual_pairs"),
    ):
        require_spec(name, artifact, spec, rebuild)
    pairs = PairTable.from_frame(as_frame(counterfactual_pairs)) if CCSS in compare.methods else None
    return CompareData(
        spec=spec,
        train=_split(train_model_input, spec),
        valid=_split(validation_model_input, spec),
        test=_split(test_model_input, spec),
        pairs=pairs,
        shapley_p=feature_importance.draw_probabilities(spec),
        move=pairs.move if pairs is not None else "centre",
    )


def compare_monotonicity_methods(
    train_model_input: Table,
    validation_model_input: Table,
    test_model_input: Table,
    spec: FeatureSpec,
    counterfactual_pairs: Table,
    feature_importance: FeatureImportance,
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
    data = comparison_data(
        train_model_input,
        validation_model_input,
        test_model_input,
        spec,
        counterfactual_pairs,
        feature_importance,
        compare,
    )
    result = compare_methods(data, model_training, evaluation, compare, project_folder, search_storage)
    return result.summary, result.seeds, result.markdown()
