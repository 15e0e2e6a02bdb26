"""Evaluation nodes: the catalog's side of :mod:`ccss_pipeline.evaluation`.

Each node reads its datasets, calls the library and hands the result back in the catalog's shape:
:func:`evaluate_models` unpacks the typed :class:`~ccss_pipeline.evaluation.results.EvaluationResult`
into its eight tracked outputs; :func:`plot_evaluation` gives the plot files and the figure set both
documents embed; :func:`collect_findings` (the library's, wired as a node) gives what both documents
read; :func:`write_report` and :func:`write_model_card` render them; :func:`aggregate_over_seeds` unpacks
the library's :class:`~ccss_pipeline.evaluation.aggregate.SeedAggregate` into its three outputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from ccss_pipeline.config import EvaluationConfig, FeatureConfig
from ccss_pipeline.evaluation import aggregate, evaluate
from ccss_pipeline.evaluation.documents import card_context, report_context
from ccss_pipeline.evaluation.figures import FigureSet, draw_evaluation_figures
from ccss_pipeline.evaluation.findings import EvaluationFindings
from ccss_pipeline.evaluation.findings import collect_findings as collect_findings  # a node as it is
from ccss_pipeline.evaluation.model_card import render_model_card
from ccss_pipeline.evaluation.presentation import OPTUNA_DIR
from ccss_pipeline.evaluation.report import render_report
from ccss_pipeline.model.persistence import TrainedModel
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import FeatureSpec


def aggregate_over_seeds(seed_metrics: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """``seed_summary``, ``paired_differences`` and ``metrics`` (:func:`.aggregate.aggregate_over_seeds`)."""
    return aggregate.aggregate_over_seeds(seed_metrics).outputs()


def evaluate_models(
    test_model_input: pd.DataFrame,
    spec: FeatureSpec,
    trained_models: Mapping[str, TrainedModel],
    source_truth: dict[str, Any],
    evaluation: EvaluationConfig,
) -> tuple[Any, ...]:
    """:func:`ccss_pipeline.evaluation.evaluate.evaluate_models` on the test split, its result handed to
    the catalog as :meth:`~ccss_pipeline.evaluation.results.EvaluationResult.outputs`: the per-model
    results (``evaluation_results.json``), bucket-centre and raw-grid per-feature tables, bucket-centre
    PD curves, raw-grid curves, ROC and calibration data, and ``seed_metrics`` (one row per model)."""
    return evaluate.evaluate_models(test_model_input, spec, trained_models, source_truth, evaluation).outputs()


def plot_evaluation(
    raw_grid_curves: pd.DataFrame,
    partial_dependence: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    roc_curves: pd.DataFrame,
    calibration_curves: pd.DataFrame,
    spec: FeatureSpec,
) -> tuple[dict[str, Figure], dict[str, Figure], Figure, Figure, Figure, FigureSet]:
    """The evaluation's figures (:func:`ccss_pipeline.evaluation.figures.draw_evaluation_figures`), drawn
    once: the plot files the catalog writes (raw-grid ICE and bucket-centre PD per backbone and directed
    feature, the wrong-step share bars, ROC, calibration), then their PNG bytes as the
    :class:`~ccss_pipeline.evaluation.figures.FigureSet` that the report and the model card embed."""
    figures = draw_evaluation_figures(
        raw_grid_curves, partial_dependence, raw_grid_per_feature, roc_curves, calibration_curves, spec
    )
    return (*figures.outputs(), figures.figure_set())


def write_report(
    findings: EvaluationFindings,
    figures: FigureSet,
    optuna_plot_images: dict[str, bytes] | None,
    evaluation: EvaluationConfig,
    feature_engineering: FeatureConfig,
) -> tuple[str, str]:
    """The readable report (Markdown and HTML; :mod:`ccss_pipeline.evaluation.report`): headline accuracy
    and raw-grid figures over seeds per backbone, the paired CCSS − baseline differences, per-feature
    raw-grid table, chosen parameters, method notes and the plots.

    The Markdown links the plots by relative path. The HTML is self-contained: it embeds the evaluation
    figures (``figures``) and the Optuna plots of the model-training stage (``optuna_plot_images``, the
    PNG files as bytes) as PNG data URIs; an image that is not available is named, never linked. How the
    rows were split is worded from ``feature_engineering.split``, never assumed to be by time."""
    embedded = figures.with_images(optuna_plot_images, OPTUNA_DIR)
    return render_report(report_context(findings, embedded, evaluation, feature_engineering.split))


def write_model_card(
    findings: EvaluationFindings,
    figures: FigureSet,
    train_model_input: ParquetTable | pd.DataFrame,
    validation_model_input: ParquetTable | pd.DataFrame,
    test_model_input: pd.DataFrame,
    project_lineage: dict[str, Any],
    parameters: dict[str, Any],
    evaluation: EvaluationConfig,
) -> tuple[str, str]:
    """The model card (Markdown and HTML; :mod:`ccss_pipeline.evaluation.model_card`): per backbone, the
    chosen CCSS model's intended use and limits, training data, features and directions, accuracy and
    monotonicity over seeds against its baseline with the paired ΔAUC and the raw-grid ICE figures
    (embedded in the HTML from ``figures``), the chosen hyper-parameters, and the lineage.

    Pure: git and ``dvc.lock`` come from the read-only ``project_lineage`` dataset; ``parameters`` (all
    parameters) is hashed. The model-ready tables give each split's time range (their ``event_ts``) when
    the schema declares a timestamp."""
    splits = {"train": train_model_input, "validation": validation_model_input, "test": test_model_input}
    return render_model_card(card_context(findings, figures, splits, project_lineage, parameters, evaluation))
