"""What the evaluation of the trained models gives: typed, frozen, with the tables as named fields.

:class:`EvaluationResult` is what :func:`ccss_pipeline.evaluation.evaluate.evaluate_models` returns:
one :class:`ModelEvaluation` per trained model and the per-feature, curve and per-seed tables. The
evaluation node hands its fields to the catalog in :data:`OUTPUTS` order (``evaluation_results.json``
holds :meth:`EvaluationResult.records`, the CSVs the tables), so the tracked files are what they were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import pandas as pd

from ccss_pipeline.config import Variant
from ccss_pipeline.evaluation.accuracy import CLASSIFICATION_METRICS
from ccss_pipeline.evaluation.outputs import OUTPUTS as OUTPUTS  # the catalog entries of the fields, in order

#: The raw-grid figures of one model that ``seed_metrics`` keeps (pooled over its directed features).
GRID_METRICS = (
    "wrong_step_share",
    "wrong_step_share_inside",
    "wrong_step_share_crossing",
    "max_feature_wrong_step_share",
    "edge_wrong_share",
    "monotone_row_share",
    "mean_wrong_mass",
)
#: Per-model figures kept in ``seed_metrics`` (one row per trained model) and aggregated over seeds.
#: ``logloss`` and ``brier`` (and every other figure) are those of the served, recalibrated probability;
#: ``*_uncalibrated`` the same model's before its recalibration; ``recalibration_temperature`` (T = 1/a)
#: and ``recalibration_shift`` (b) the fitted map (1 and 0 without one).
SEED_METRICS = [
    "auc", "gauc", "logloss", *CLASSIFICATION_METRICS, "logloss_uncalibrated", "brier_uncalibrated",
    "recalibration_temperature", "recalibration_shift", "oracle_auc", *GRID_METRICS,
    "neighbour_violation_rate", "ice_monotone_share", "true_direction_agreement",
]  # fmt: skip
#: The per-model columns of ``seed_metrics`` before the figures: ``recalibration`` is the map's kind;
#: ``best_epoch`` and ``max_epochs`` (its budget) tell a fit stopped by its epoch limit (likely undertrained).
SEED_KEYS = ["model", "backbone", "variant", "seed", "recalibration", "best_epoch", "max_epochs"]


@dataclass(frozen=True)
class ModelEvaluation:
    """One trained model on the test split (one entry of ``evaluation_results.json``).

    ``accuracy``: :func:`.accuracy.accuracy_metrics` of the served probability (``gauc`` NaN and
    ``gauc_note`` why, when GAUC cannot be measured); ``uncalibrated``: LogLoss and Brier before the
    recalibration, whose map is ``recalibration``; ``raw_grid``: the pooled raw-grid figures (wrong-step
    shares, edge test, rows monotone); ``pooled``: the bucket-centre neighbour figures;
    ``direction_agreement``: share of directed features whose curve follows the generator's true
    direction (None without one); ``contrastive``: the CCSS loss settings it was trained with."""

    backbone: str
    variant: Variant | str  # a Variant for the two the training fits (Variant.of)
    seed: int
    move: str | None = None
    accuracy: dict[str, Any] = field(default_factory=dict)
    uncalibrated: dict[str, float] = field(default_factory=dict)
    recalibration: dict[str, Any] = field(default_factory=dict)
    raw_grid: dict[str, Any] = field(default_factory=dict)
    pooled: dict[str, Any] = field(default_factory=dict)
    direction_agreement: float | None = None
    contrastive: dict[str, Any] = field(default_factory=dict)

    def record(self) -> dict[str, Any]:
        """The JSON entry, keys in field order."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> ModelEvaluation:
        """From a JSON entry; keys it lacks (an older or hand-made record) take their defaults."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        if "variant" in values:
            values["variant"] = Variant.of(values["variant"])
        return cls(**values)


@dataclass(frozen=True)
class EvaluationResult:
    """Every trained model on the test split.

    - ``models``: model name → :class:`ModelEvaluation`;
    - ``monotonicity_per_feature`` and ``raw_grid_per_feature``: bucket-centre and raw-grid figures per
      (model, directed feature), every seed;
    - ``partial_dependence`` and ``raw_grid_curves``: bucket-centre PD and raw-grid ICE curves, and
      ``roc_curves``, ``calibration_curves``: of the first seed of each backbone and variant;
    - ``seed_metrics``: one row per model (:data:`SEED_KEYS`, :data:`SEED_METRICS`).

    Every table carries the model's ``model``, ``backbone``, ``variant`` and ``seed``."""

    models: dict[str, ModelEvaluation]
    monotonicity_per_feature: pd.DataFrame
    raw_grid_per_feature: pd.DataFrame
    partial_dependence: pd.DataFrame
    raw_grid_curves: pd.DataFrame
    roc_curves: pd.DataFrame
    calibration_curves: pd.DataFrame
    seed_metrics: pd.DataFrame

    def records(self) -> dict[str, dict[str, Any]]:
        """``evaluation_results.json``: model name → its :meth:`ModelEvaluation.record`."""
        return {name: m.record() for name, m in self.models.items()}

    def outputs(self) -> tuple[Any, ...]:
        """The catalog's datasets in :data:`OUTPUTS` order (the JSON records, then the tables)."""
        return (self.records(), *(getattr(self, f.name) for f in fields(self)[1:]))
