"""What both evaluation documents read: the models over seeds and the sentences the report and card share.

:func:`collect_findings` turns the evaluation stage's tables (the per-model results, the summary over
seeds, the paired differences, the per-feature tables) with the spec, the chosen parameters and the
split report into one :class:`EvaluationFindings`: the backbones in display order, one
:class:`ModelResult` per (backbone, variant), the one GAUC note (:func:`.presentation.gauc_note`), the
rows per split. :mod:`.report` and :mod:`.model_card` build their contexts from it.

The sentences both documents say come from here too: which recalibration the probabilities went
through (:func:`recalibration_sentence`), which fits are likely undertrained
(:func:`epoch_limit_warnings`) and where CCSS misses the edge target (:func:`edge_warnings`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.data.validation.report import ValidationReport
from ccss_pipeline.evaluation.presentation import (
    CCSS,
    SHARE_METRICS,
    as_float,
    display_order,
    fmt_mean_std,
    fmt_value,
    gauc_note,
    has_user_column,
    is_missing,
    variant_display,
    variant_rank,
)
from ccss_pipeline.evaluation.results import ModelEvaluation
from ccss_pipeline.model.chosen_params import ChosenParams
from ccss_pipeline.spec import FeatureSpec

logger = logging.getLogger(__name__)

#: Rows that only mean something for a recalibrated model (hidden for a backbone without one).
RECALIBRATION_ROWS = ("logloss_uncalibrated", "brier_uncalibrated", "recalibration_temperature", "recalibration_shift")
#: What each recalibration kind does, as the report and the model card say it.
RECALIBRATION_TEXT = {
    "temperature": "temperature scaling of the logit (z / T)",
    "platt": "Platt scaling of the logit (σ(a·z + b), a > 0)",
}
#: the edge-test target when the search recorded none (``search.max_edge_violation``'s default)
EDGE_TARGET = 0.01
#: fewer training rows than this in a bucket beside an edge: too few to learn that bucket's embedding
THIN_BUCKET_ROWS = 50


@dataclass
class ModelResult:
    """One (backbone, variant) over its training seeds: ``mean[m]`` and ``std[m]`` per metric
    (std NaN with one seed)."""

    backbone: str
    variant: str
    n_seeds: int
    mean: dict[str, float] = field(default_factory=dict)
    std: dict[str, float] = field(default_factory=dict)
    recalibration: str = "none"  # the kind of monotone recalibration its probabilities went through
    epoch_limit_seeds: list[int] = field(default_factory=list)  # seeds whose best epoch was the last allowed
    max_epochs: int | None = None  # their epoch budget (optimizer.max_epochs)

    @classmethod
    def from_summary(cls, summary: pd.DataFrame) -> list[ModelResult]:
        """From a ``summarize_over_seeds`` table (columns backbone, variant, n_seeds, ``<m>_mean``,
        ``<m>_std``, optionally ``recalibration``: the kind; a summary without it had none; optionally
        ``epoch_limit_seeds`` (a JSON list) and ``max_epochs``)."""
        metrics = [c[: -len("_mean")] for c in summary.columns if c.endswith("_mean")]
        return [
            cls(
                str(row["backbone"]),
                str(row["variant"]),
                int(row["n_seeds"]),
                {m: as_float(row[f"{m}_mean"]) for m in metrics},
                {m: as_float(row.get(f"{m}_std")) for m in metrics},
                _kind(row.get("recalibration")),
                _seed_list(row.get("epoch_limit_seeds")),
                None if is_missing(row.get("max_epochs")) else int(as_float(row["max_epochs"])),
            )  # fmt: skip
            for row in summary.to_dict("records")
        ]

    @property
    def recalibrated(self) -> bool:
        return self.recalibration != "none"

    @property
    def display(self) -> str:
        return variant_display(self.variant)

    def cell(self, metric: str) -> str:
        return fmt_mean_std(self.mean.get(metric), self.std.get(metric), metric in SHARE_METRICS)


def _seed_list(value: Any) -> list[int]:
    """Seeds from a summary cell: a JSON list (``"[1, 2]"``), empty for a missing cell (older tables)."""
    if not isinstance(value, str) or not value.strip():
        return []
    try:
        seeds = json.loads(value)
    except ValueError:
        return []
    return [int(s) for s in seeds] if isinstance(seeds, list) else []


def _kind(value: Any) -> str:
    """A recalibration kind from a summary cell ("none" for a missing one, e.g. an older run's table)."""
    return value.strip() if isinstance(value, str) and value.strip() else "none"


def seeds_header(r: ModelResult) -> str:
    """A results table's column head: the model and its number of seeds."""
    return f"{r.display} ({r.n_seeds} seed{'s' if r.n_seeds != 1 else ''})"


def by_variant(results: Sequence[ModelResult]) -> list[ModelResult]:
    """Baseline first, CCSS second, any other method after them."""
    return sorted(results, key=lambda r: (variant_rank(r.variant), r.variant))


def epoch_limit_warnings(results: Sequence[ModelResult], backbones: Sequence[str]) -> list[str]:
    """One sentence per model of ``backbones`` with a seed whose best epoch was the last one allowed:
    likely undertrained (the report and the model card say it; the training log said it per fit)."""
    out = []
    shown = [r for r in results if r.backbone in backbones and r.epoch_limit_seeds]
    for r in sorted(by_variant(shown), key=lambda r: list(backbones).index(r.backbone)):
        seeds = ", ".join(str(s) for s in r.epoch_limit_seeds)
        plural = "s" if len(r.epoch_limit_seeds) != 1 else ""
        budget = "?" if r.max_epochs is None else str(r.max_epochs)
        out.append(
            f"Likely undertrained: {r.backbone} {r.display}, seed{plural} {seeds} (of {r.n_seeds}) — the best "
            f"validation epoch was the last one allowed (model_training.optimizer.max_epochs = {budget}), so "
            "validation was still improving when training stopped; raise max_epochs and retrain."
        )
    return out


def hidden_recalibration_rows(models: Sequence[ModelResult]) -> set[str]:
    """The recalibration rows a table of ``models`` leaves out: all of them when none was recalibrated
    (they would repeat LogLoss and Brier), the shift when none was Platt-scaled (it is 0)."""
    if not any(r.recalibrated for r in models):
        return set(RECALIBRATION_ROWS)
    return set() if any("platt" in r.recalibration for r in models) else {"recalibration_shift"}


def _map_text(r: ModelResult) -> str:
    """The fitted map of one model, mean over seeds: ``T = 1.23`` (and ``b = -0.04`` for Platt)."""
    t = as_float(r.mean.get("recalibration_temperature"))
    if "platt" in r.recalibration:
        return f"T = 1/a = {t:.3g}, b = {as_float(r.mean.get('recalibration_shift')):+.3g}"
    return f"T = {t:.3g}"


def recalibration_sentence(results: Sequence[ModelResult], backbones: Sequence[str]) -> str:
    """One sentence: which recalibration the probabilities went through and what it changed — test
    LogLoss before → after per backbone and model, means over seeds, with the fitted map."""
    shown = [r for r in results if r.backbone in backbones]
    applied = [r for r in shown if r.recalibrated]
    if not applied:
        return ("Recalibration: none — every probability is the model's own logit through the sigmoid "
                "(model_training.recalibration: none).")  # fmt: skip
    kinds = sorted({k for r in applied for k in r.recalibration.split("/") if k != "none"})
    what = " / ".join(RECALIBRATION_TEXT.get(k, k) for k in kinds)
    parts = []
    for bb in backbones:
        items = [
            f"{r.display} {fmt_value(r.mean.get('logloss_uncalibrated'), False)} → "
            f"{fmt_value(r.mean.get('logloss'), False)} ({_map_text(r)})"
            if r.recalibrated
            else f"{r.display} {fmt_value(r.mean.get('logloss'), False)} (not recalibrated)"
            for r in by_variant([r for r in shown if r.backbone == bb])
        ]
        if items:
            parts.append(f"{bb}: {', '.join(items)}")
    return (
        f"Recalibration: {what}, fitted on the validation split for every model (CCSS and baselines alike) and "
        f"applied to every probability shown here, changed the test LogLoss (before → after, mean over seeds) "
        f"{'; '.join(parts)} — a strictly increasing map of the logit, it leaves AUC, GAUC and the direction of "
        "every step unchanged."
    )


def edge_warnings(
    per_feature: pd.DataFrame,
    chosen_params: Mapping[str, Mapping[str, Any]],
    skip: set[str] | frozenset[str] = frozenset(),
    log: bool = True,
) -> list[str]:
    """One sentence per (backbone, directed feature) whose CCSS edge test, mean over seeds, misses the
    target: how far, its worst edge (the seed where it was worst) and the training rows beside it — so a
    model that still jumps the wrong way across an edge is never reported silently. Tables of older runs
    (no ``worst_edge``) give none."""
    needed = {"backbone", "variant", "feature", "edge_wrong_share", "worst_edge", "worst_edge_wrong_share"}
    if per_feature is None or per_feature.empty or not needed <= set(per_feature.columns):
        return []
    ccss = per_feature[per_feature["variant"].astype(str).str.lower() == CCSS]
    out = []
    for (backbone, feature), part in ccss.groupby(["backbone", "feature"], sort=False):
        recorded = chosen_params.get(str(backbone), {}).get("max_edge_violation")
        target = EDGE_TARGET if recorded is None or is_missing(recorded) else float(recorded)
        share = float(part["edge_wrong_share"].mean())
        if str(feature) in skip or not share > target:
            continue
        worst = part.iloc[int(np.nanargmax(part["worst_edge_wrong_share"].to_numpy(np.float64)))]
        out.append(
            f"Edge target missed: {backbone} CCSS moves the wrong way across an edge of {feature} on "
            f"{fmt_value(share, True)} of rows (target ≤ {fmt_value(target, True)}); worst edge {worst['worst_edge']}, "
            f"{fmt_value(float(worst['worst_edge_wrong_share']), True)} of rows{_thin_bucket(worst)}."
        )
    for line in out if log else ():  # the report logs them; the model card repeats them silently
        logger.warning(line)
    return out


def _thin_bucket(worst: pd.Series) -> str:
    """The training rows beside the worst edge, and what to do when they are too few to learn the bucket."""
    rows = int(worst.get("worst_edge_train_rows", -1))
    if 0 <= rows < THIN_BUCKET_ROWS:
        return (f"; only {rows} training rows sit in the thinner bucket beside it, too few to learn that bucket "
                "(more data, fewer buckets via feature_engineering.n_buckets, or a larger counterfactual_pairs."
                "anchor_share)")  # fmt: skip
    return f" ({rows} training rows beside it)" if rows >= 0 else ""


@dataclass(frozen=True)
class EvaluationFindings:
    """What the report and the model card read (:func:`collect_findings` builds it).

    - ``spec``: the fitted feature spec; ``backbones``: the evaluated ones, those of ``best_params``
      first in its order; ``models``: model name → its :class:`~.results.ModelEvaluation`;
    - ``results``: one :class:`ModelResult` per (backbone, variant), from ``seed_summary``;
    - ``paired``: CCSS − baseline per backbone and metric (``paired_differences``);
    - ``raw_grid_per_feature`` and ``monotonicity_per_feature``: the per-feature tables, every seed;
    - ``chosen_params``: backbone → its ``best_params`` entry (dumped), for the shown backbones;
    - ``rows_per_split``: from the split report (empty without it);
    - ``gauc_note``: shown instead of GAUC when no model has one (:func:`.presentation.gauc_note`)."""

    spec: FeatureSpec
    backbones: list[str]
    models: dict[str, ModelEvaluation]
    results: list[ModelResult]
    paired: pd.DataFrame
    raw_grid_per_feature: pd.DataFrame
    monotonicity_per_feature: pd.DataFrame
    chosen_params: dict[str, dict[str, Any]]
    rows_per_split: dict[str, int]
    gauc_note: str

    @property
    def unconstrained(self) -> list[str]:
        """Directed features with one bucket: CCSS cannot constrain them."""
        return [f.name for f in self.spec.directed if f.n_buckets < 2]


def collect_findings(
    evaluation_results: Mapping[str, Mapping[str, Any]],
    seed_summary: pd.DataFrame,
    paired_differences: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    monotonicity_per_feature: pd.DataFrame,
    spec: FeatureSpec,
    best_params: Mapping[str, ChosenParams],
    split_validation_report: ValidationReport,
) -> EvaluationFindings:
    """The evaluation stage's outputs as both documents read them (``evaluation_results`` as the JSON
    holds them: model name → :meth:`~.results.ModelEvaluation.record`)."""
    models = {name: ModelEvaluation.from_record(r) for name, r in evaluation_results.items()}
    backbones = display_order(best_params, (str(m.backbone) for m in models.values()))
    return EvaluationFindings(
        spec=spec,
        backbones=backbones,
        models=models,
        results=ModelResult.from_summary(seed_summary),
        paired=paired_differences,
        raw_grid_per_feature=raw_grid_per_feature,
        monotonicity_per_feature=monotonicity_per_feature,
        chosen_params={b: best_params[b].model_dump() for b in backbones if b in best_params},
        rows_per_split={name: t.rows for name, t in split_validation_report.tables.items()},
        gauc_note=gauc_note(has_user_column(spec), [m.accuracy for m in models.values()]),
    )
