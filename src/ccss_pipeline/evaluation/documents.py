"""The contexts of the two evaluation documents, built from what the evaluation stage found and drew.

:func:`report_context` and :func:`card_context` read one :class:`~.findings.EvaluationFindings` and one
:class:`~.figures.FigureSet` (the figures drawn once, embedded by both documents) and give the
:class:`~.report.ReportContext` and :class:`~.model_card.ModelCardContext` their modules render.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from ccss_pipeline.config import EvaluationConfig, FeatureConfig, SplitConfig
from ccss_pipeline.data.splitting import split_sentence
from ccss_pipeline.evaluation.card_lineage import Lineage, plain, split_time_ranges
from ccss_pipeline.evaluation.figures import FigureSet
from ccss_pipeline.evaluation.findings import EvaluationFindings
from ccss_pipeline.evaluation.model_card import ModelCardContext
from ccss_pipeline.evaluation.presentation import (
    CCSS,
    PlotRef,
    card_plots,
    label_name,
    one_bucket_features,
    report_plots,
)
from ccss_pipeline.evaluation.report import ReportContext
from ccss_pipeline.fingerprint import content_hash
from ccss_pipeline.parquet_table import ParquetTable
from ccss_pipeline.spec import TIME_COLUMN


def _with_pngs(plots: list[PlotRef], figures: FigureSet) -> list[PlotRef]:
    return [replace(p, png=figures.png(p.path)) for p in plots]


def _with_neighbour_rate(findings: EvaluationFindings) -> pd.DataFrame:
    """The raw-grid per-feature table with the bucket-centre ``neighbour_violation_rate`` beside it."""
    keys = ["backbone", "variant", "seed", "feature"]
    per_feature, neighbour = findings.raw_grid_per_feature, findings.monotonicity_per_feature
    if not {*keys, "violation_rate"} <= set(neighbour.columns):
        return per_feature
    rate = neighbour[[*keys, "violation_rate"]].rename(columns={"violation_rate": "neighbour_violation_rate"})
    return per_feature.merge(rate, on=keys, how="left")


def report_context(
    findings: EvaluationFindings, figures: FigureSet, evaluation: EvaluationConfig, split: SplitConfig
) -> ReportContext:
    """The report's context: the findings, the method's settings and the figures (with their PNG bytes
    where ``figures`` has them). How the rows were split is worded from ``split``
    (:func:`~ccss_pipeline.data.splitting.split_sentence`, the model card's sentence too)."""
    spec, backbones = findings.spec, findings.backbones
    moves = sorted({str(m.move) for m in findings.models.values() if m.move and str(m.variant).lower() == CCSS})
    return ReportContext(
        title=f"CCSS evaluation — {spec.source or 'data'}",
        source=spec.source or "unknown",
        rows_per_split=findings.rows_per_split,
        directed_features={f.name: f.direction for f in spec.directed},
        backbones=backbones,
        results=findings.results,
        paired=findings.paired,
        per_feature=_with_neighbour_rate(findings),
        chosen_params=findings.chosen_params,
        method={
            "grid_levels": evaluation.grid_levels,
            "grid_rows": evaluation.grid_rows,
            "eps": evaluation.eps,
            "max_rows": evaluation.max_rows,
            "move": ", ".join(moves) or None,
            "threshold": evaluation.threshold,
        },
        plots=_with_pngs(report_plots(backbones, spec), figures),
        split_note=split_sentence(split),
        label_name=label_name(spec),
        gauc_note=findings.gauc_note,
        unconstrained=one_bucket_features(spec),
    )


def card_context(
    findings: EvaluationFindings,
    figures: FigureSet,
    splits: Mapping[str, ParquetTable | pd.DataFrame],
    project_lineage: Mapping[str, Any],
    parameters: Mapping[str, Any],
    evaluation: EvaluationConfig,
) -> ModelCardContext:
    """The card's context: the findings, each backbone's raw-grid ICE figures, and the lineage.

    ``splits``: the model-ready tables by split; they give each split's time range (their ``event_ts``,
    one column read) when the schema declares a timestamp, and its rows when the split report has none.
    ``parameters`` (all parameters, typed ones dumped to plain values) is hashed with
    :func:`ccss_pipeline.fingerprint.content_hash`; git and ``dvc.lock`` come from ``project_lineage``."""
    parameters = plain(parameters)
    split = FeatureConfig.model_validate(parameters.get("feature_engineering") or {}).split
    time_ranges = {}
    if (parameters.get("schema") or {}).get("timestamp"):
        time_ranges = split_time_ranges(
            {k: f[TIME_COLUMN] for k, f in splits.items() if TIME_COLUMN in f.columns}
        )  # one column of a lazy table
    return ModelCardContext(
        spec=findings.spec,
        backbones=findings.backbones,
        results=findings.results,
        paired=findings.paired,
        per_feature=findings.raw_grid_per_feature,
        chosen_params=findings.chosen_params,
        split=split,
        time_ranges=time_ranges,
        rows_per_split=findings.rows_per_split or {k: len(f) for k, f in splits.items()},
        method={
            "grid_levels": evaluation.grid_levels,
            "grid_rows": evaluation.grid_rows,
            "eps": evaluation.eps,
            "threshold": evaluation.threshold,
        },
        plots=_with_pngs(card_plots(findings.backbones, findings.spec), figures),
        lineage=Lineage.from_loaded(project_lineage, params_hash=content_hash(parameters)),
        gauc_note=findings.gauc_note,
    )
