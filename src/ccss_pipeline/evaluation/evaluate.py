"""Every trained model on the test split: accuracy and monotonicity (spec §6), as one typed result.

:func:`evaluate_models` scores each model in float32 and measures it (:mod:`.accuracy`,
:mod:`.raw_grid`, :mod:`.monotonicity`); it returns an :class:`~.results.EvaluationResult`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
import torch

from ccss_pipeline.config import EvaluationConfig, Variant
from ccss_pipeline.evaluation.accuracy import (
    CLASSIFICATION_METRICS,
    accuracy_metrics,
    calibration_data,
    probability_scores,
    roc_curve_data,
)
from ccss_pipeline.evaluation.monotonicity import MonotonicityResult, monotonicity_report, true_direction_agreement
from ccss_pipeline.evaluation.presentation import gauc_note, has_user_column, one_bucket_features
from ccss_pipeline.evaluation.raw_grid import RawGridResult, raw_grid_report
from ccss_pipeline.evaluation.results import GRID_METRICS, SEED_KEYS, SEED_METRICS, EvaluationResult, ModelEvaluation
from ccss_pipeline.model.device import resolve_device
from ccss_pipeline.model.persistence import TrainedModel, first_seed_models
from ccss_pipeline.model.scoring import score_fn
from ccss_pipeline.spec import GROUP_COLUMN, FeatureSpec, ModelInputs


def evaluate_models(
    test_frame: pd.DataFrame,
    spec: FeatureSpec,
    trained_models: Mapping[str, TrainedModel],
    source_truth: Mapping[str, Any],
    evaluation: EvaluationConfig,
) -> EvaluationResult:
    """Accuracy and monotonicity (spec §6) of every trained model on the test split, scored in float32.

    Headline monotonicity is the raw-grid sweep (:mod:`ccss_pipeline.evaluation.raw_grid`), which does not
    mirror the training move; the bucket-centre neighbour rate is kept as a secondary figure. Curves, ROC
    and calibration are kept for the first seed of each backbone and variant (the plots show those).

    Every figure is the served model's: its probability after the monotone recalibration it was
    trained with (``TrainedModel.recalibration``; a strictly increasing map of the logit, so AUC, GAUC
    and the direction of every raw-grid step are the raw model's). LogLoss and Brier are also reported before
    it (``logloss_uncalibrated``, ``brier_uncalibrated``, from the same model rebuilt without it), with
    the fitted T and shift; the calibration table has both curves in the same bins.

    Accuracy, precision, recall and F1 count a row as positive when its probability is at least
    ``evaluation.threshold``. GAUC is NaN (and ``gauc_note`` says why: :func:`.presentation.gauc_note`)
    when the schema declares no user column or every test row has the same group: it would only repeat
    the AUC. Directed features with a single bucket are left out of the agreement with the true
    directions (nothing to measure)."""
    if GROUP_COLUMN not in test_frame.columns:  # no user column: one group, hence no GAUC
        test_frame = test_frame.assign(**{GROUP_COLUMN: 0})
    test = ModelInputs.from_frame(test_frame, spec)
    device = resolve_device(evaluation.device)
    one_bucket = set(one_bucket_features(spec))
    directions = {k: int(v) for k, v in source_truth.get("directions", {}).items() if k not in one_bucket}
    run = _Run(spec, test, device, evaluation, directions)
    first_seed = set(first_seed_models(trained_models).values())
    tables = _Tables()
    models = {}
    for name, trained in sorted(trained_models.items()):
        models[name] = run.model(name, trained, tables, first_seed=name in first_seed)
    return tables.result(models)


@dataclass
class _Tables:
    """The tables of :class:`EvaluationResult` as the models add their rows."""

    per_feature: list[pd.DataFrame] = field(default_factory=list)
    grid_features: list[pd.DataFrame] = field(default_factory=list)
    curves: list[pd.DataFrame] = field(default_factory=list)
    grid_curves: list[pd.DataFrame] = field(default_factory=list)
    roc: list[pd.DataFrame] = field(default_factory=list)
    calibration: list[pd.DataFrame] = field(default_factory=list)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def result(self, models: dict[str, ModelEvaluation]) -> EvaluationResult:
        return EvaluationResult(
            models=models,
            monotonicity_per_feature=pd.concat(self.per_feature, ignore_index=True),
            raw_grid_per_feature=pd.concat(self.grid_features, ignore_index=True),
            partial_dependence=pd.concat(self.curves, ignore_index=True),
            raw_grid_curves=pd.concat(self.grid_curves, ignore_index=True),
            roc_curves=pd.concat(self.roc, ignore_index=True),
            calibration_curves=pd.concat(self.calibration, ignore_index=True),
            seed_metrics=pd.DataFrame(self.rows, columns=[*SEED_KEYS, *SEED_METRICS]),
        )


@dataclass(frozen=True)
class _Run:
    """What every model is evaluated on: the test split, the device, the settings, the true directions."""

    spec: FeatureSpec
    test: ModelInputs
    device: torch.device
    evaluation: EvaluationConfig
    true_directions: dict[str, int]

    def model(self, name: str, trained: TrainedModel, tables: _Tables, first_seed: bool) -> ModelEvaluation:
        """One model's :class:`ModelEvaluation`; its rows go to ``tables`` (its curves for its first seed)."""
        test, ev = self.test, self.evaluation
        scorer = score_fn(trained.rebuild(self.spec), self.device)
        prob = scorer(test.cat, test.dense, test.bucket)
        raw_prob = (
            prob
            if trained.recalibration.is_identity
            else score_fn(trained.rebuild(self.spec, recalibrated=False), self.device)(
                test.cat, test.dense, test.bucket
            )
        )
        uncalibrated = probability_scores(test.label, raw_prob)
        accuracy = accuracy_metrics(test.label, prob, test.group, test.oracle, threshold=ev.threshold)
        note = gauc_note(has_user_column(self.spec), [accuracy])
        if note:
            accuracy.update(gauc=math.nan, gauc_note=note)
        grid = raw_grid_report(
            scorer, test, self.spec, levels=ev.grid_levels, rows=ev.grid_rows, seed=ev.seed, eps=ev.eps
        )
        mono = monotonicity_report(scorer, test, self.spec, eps=ev.eps, max_rows=ev.max_rows, seed=ev.seed)
        result = ModelEvaluation(
            backbone=trained.backbone_name,
            variant=Variant.of(trained.variant),
            seed=trained.seed,
            move=trained.move,
            accuracy=accuracy,
            uncalibrated=uncalibrated,
            recalibration=trained.recalibration.to_dict(),
            raw_grid=grid.pooled,
            pooled=mono.pooled,
            direction_agreement=self._agreement(mono),
            contrastive=trained.contrastive.model_dump() if trained.contrastive is not None else {},
        )
        tag: dict[str, Any] = {
            "model": name,
            "backbone": result.backbone,
            "variant": result.variant,
            "seed": result.seed,
        }
        tables.per_feature.append(mono.per_feature.assign(**tag))
        tables.grid_features.append(grid.per_feature.assign(**tag))
        if first_seed:
            self._curves(tables, tag, (mono, grid), (prob, raw_prob))
        tables.rows.append(_seed_row(tag, result, trained))
        return result

    def _agreement(self, mono: MonotonicityResult) -> float | None:
        """Share of the directed features whose bucket-centre curve follows the true direction."""
        if not self.true_directions:
            return None
        agree = true_direction_agreement(mono.curves, self.true_directions)
        return float(agree["agrees"].mean()) if len(agree) else None

    def _curves(
        self,
        tables: _Tables,
        tag: dict[str, Any],
        reports: tuple[MonotonicityResult, RawGridResult],
        probs: tuple[Any, Any],
    ) -> None:
        """The first seed's curves: bucket-centre PD, raw-grid ICE, ROC and calibration (both curves)."""
        (mono, grid), (prob, raw_prob), label = reports, probs, self.test.label
        tables.curves.append(mono.curves.assign(**tag))
        tables.grid_curves.append(grid.curves.assign(**tag))
        tables.roc.append(roc_curve_data(label, prob).assign(**tag))
        bins = self.evaluation.calibration_bins
        tables.calibration.append(calibration_data(label, prob, n_bins=bins, prob_uncalibrated=raw_prob).assign(**tag))


def _seed_row(tag: Mapping[str, Any], result: ModelEvaluation, trained: TrainedModel) -> dict[str, Any]:
    """The model's row of ``seed_metrics`` (its columns are :data:`SEED_KEYS` and :data:`SEED_METRICS`)."""
    accuracy, recalibration = result.accuracy, trained.recalibration
    return {
        **tag,
        **{k: accuracy.get(k) for k in ("auc", "gauc", "logloss", *CLASSIFICATION_METRICS, "oracle_auc")},
        "recalibration": recalibration.kind,
        "logloss_uncalibrated": result.uncalibrated["logloss"],
        "brier_uncalibrated": result.uncalibrated["brier"],
        "recalibration_temperature": recalibration.temperature,
        "recalibration_shift": recalibration.shift,
        "best_epoch": trained.best_epoch,
        "max_epochs": trained.optimizer.max_epochs if trained.optimizer is not None else None,
        **{k: result.raw_grid[k] for k in GRID_METRICS},
        "neighbour_violation_rate": result.pooled["violation_rate"],
        "ice_monotone_share": result.pooled["ice_monotone_share"],
        "true_direction_agreement": result.direction_agreement,
    }
