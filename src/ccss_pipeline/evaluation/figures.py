"""The evaluation's figures, drawn once from its tables, for the plot files and for both documents.

:func:`draw_evaluation_figures` builds every figure (:class:`EvaluationFigures`: the plot files the
catalog writes) and :meth:`EvaluationFigures.figure_set` gives their PNG bytes by the path the report
and the model card link (:class:`FigureSet`), so the documents embed exactly the figures of the plot
files without drawing them again.

A matplotlib figure with constrained layout is not guaranteed to render to the same pixels twice (the
second render starts from the layout the first one left; the calibration figure shows it), so the
figure set renders a copy of each figure taken before any render, and the catalog renders the figure
itself: both are a first render, byte for byte the same PNG.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import pandas as pd
from matplotlib.figure import Figure

from ccss_pipeline.evaluation.plots import (
    not_constrained_figure,
    plot_calibration,
    plot_partial_dependence,
    plot_raw_grid_ice,
    plot_roc,
    plot_violation_bars,
)
from ccss_pipeline.evaluation.presentation import (
    PD_DIR,
    RAW_GRID_DIR,
    ice_name,
    label_name,
    one_bucket_features,
    pd_name,
    plot_path,
    variant_display,
    variant_rank,
)
from ccss_pipeline.evaluation.seeds import summarize_over_seeds
from ccss_pipeline.spec import FeatureSpec

#: Resolution of the PNGs: the catalog saves the plot files at this dpi, the documents embed the same.
PLOT_DPI = 110


def figure_png(fig: Figure, dpi: int = PLOT_DPI) -> bytes:
    """The PNG bytes of ``fig`` as the catalog writes it (``savefig`` at ``dpi``), without touching a file."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


@dataclass(frozen=True)
class FigureSet:
    """PNG bytes by the path a document links (relative to its folder, e.g. ``plots/roc.png``)."""

    pngs: Mapping[str, bytes] = field(default_factory=dict)

    def png(self, path: str) -> bytes | None:
        return self.pngs.get(path)

    def with_images(self, images: Mapping[str, bytes] | None, folder: str) -> FigureSet:
        """This set and ``images`` (file name → PNG bytes, e.g. the Optuna plots) under ``folder``."""
        return FigureSet({**self.pngs, **{f"{folder}/{name}": png for name, png in (images or {}).items()}})


@dataclass(frozen=True)
class EvaluationFigures:
    """The figures of the evaluation, as the catalog writes them: ``raw_grid`` (``ice_<backbone>_<feature>.png``),
    ``partial_dependence`` (``pd_<backbone>_<feature>.png``), and one ``violation_rate``, ``roc`` and
    ``calibration`` figure."""

    raw_grid: dict[str, Figure]
    partial_dependence: dict[str, Figure]
    violation_rate: Figure
    roc: Figure
    calibration: Figure

    def outputs(self) -> tuple[dict[str, Figure], dict[str, Figure], Figure, Figure, Figure]:
        """The plot datasets of the catalog, in the order of the fields."""
        return self.raw_grid, self.partial_dependence, self.violation_rate, self.roc, self.calibration

    def by_path(self) -> dict[str, Figure]:
        """Every figure by the path the documents link (:mod:`.presentation`'s paths)."""
        figures = {f"{RAW_GRID_DIR}/{name}": fig for name, fig in self.raw_grid.items()}
        figures |= {f"{PD_DIR}/{name}": fig for name, fig in self.partial_dependence.items()}
        return figures | {plot_path(name): getattr(self, name) for name in ("violation_rate", "roc", "calibration")}

    def figure_set(self) -> FigureSet:
        """The PNG bytes of every figure, each rendered from a copy so that the figure itself is still
        unrendered when the catalog writes it (see the module's note)."""
        return FigureSet({path: figure_png(copy.deepcopy(fig)) for path, fig in self.by_path().items()})


def _first_seed_by_model(frame: pd.DataFrame, backbone: str | None = None) -> dict[str, pd.DataFrame]:
    """``"<backbone> <variant>"`` → that model's rows of its first (lowest) seed, baseline before CCSS.
    The evaluation already keeps curves for the first seed only; this makes sure of it."""
    part = frame if backbone is None else frame[frame["backbone"] == backbone]
    out = {}
    for (b, v), group in sorted(part.groupby(["backbone", "variant"]), key=lambda kv: (kv[0][0], _order(kv[0][1]))):
        if "seed" in group.columns:
            group = group[group["seed"] == group["seed"].min()]
        out[f"{b} {variant_display(v)}"] = group.drop(columns=["model", "backbone", "variant", "seed"], errors="ignore")
    return out


def _order(variant: object) -> tuple[int, str]:
    return variant_rank(variant), str(variant).lower()


def _seed_means_by_model(per_feature: pd.DataFrame, metric: str) -> dict[str, pd.DataFrame]:
    """``"<backbone> <variant>"`` → feature, ``metric`` (mean over seeds) and ``<metric>_std``."""
    summary = summarize_over_seeds(per_feature, ["backbone", "variant", "feature"], [metric])
    summary = summary.rename(columns={f"{metric}_mean": metric})
    out = {}
    for (b, v), group in sorted(summary.groupby(["backbone", "variant"]), key=lambda kv: (kv[0][0], _order(kv[0][1]))):
        out[f"{b} {variant_display(v)}"] = group[["feature", metric, f"{metric}_std", "n_seeds"]]
    return out


def draw_evaluation_figures(
    raw_grid_curves: pd.DataFrame,
    partial_dependence: pd.DataFrame,
    raw_grid_per_feature: pd.DataFrame,
    roc_curves: pd.DataFrame,
    calibration_curves: pd.DataFrame,
    spec: FeatureSpec,
) -> EvaluationFigures:
    """Per backbone and directed feature, baseline vs CCSS on one figure: the raw-grid ICE band with the
    bucket edges (``ice_<backbone>_<feature>.png``) and the bucket-centre PD band
    (``pd_<backbone>_<feature>.png``); the raw-grid wrong-step share per feature and model (mean ± std
    over seeds); ROC and calibration of the first seed of every model.

    Axes and titles name the spec's label (``FeatureSpec.label_name``). A directed feature with one
    bucket gets a figure saying it is not constrained (instead of a one-point curve) and a hatched
    "not measurable" span instead of bars."""
    label, one_bucket = label_name(spec), set(one_bucket_features(spec))
    grid_plots, pd_plots = {}, {}
    for backbone in sorted(set(raw_grid_curves["backbone"]) | set(partial_dependence["backbone"])):
        grid_models = _first_seed_by_model(raw_grid_curves, backbone)
        pd_models = _first_seed_by_model(partial_dependence, backbone)
        for feat in spec.directed:
            ice, pdp = ice_name(backbone, feat.name), pd_name(backbone, feat.name)
            if feat.name in one_bucket:
                grid_plots[ice] = not_constrained_figure(feat.name, feat.direction, label)
                pd_plots[pdp] = not_constrained_figure(feat.name, feat.direction, label)
                continue
            grid_plots[ice] = plot_raw_grid_ice(
                grid_models, feat.name, feat.direction, feat.boundaries, label_name=label
            )
            pd_plots[pdp] = plot_partial_dependence(pd_models, feat.name, feat.direction, label_name=label)
    bars = _seed_means_by_model(raw_grid_per_feature, "wrong_step_share")
    seeds = sorted({int(t["n_seeds"].max()) for t in bars.values()}) or [0]
    n_seeds = str(seeds[0]) if len(seeds) == 1 else f"{seeds[0]}–{seeds[-1]}"
    violation = plot_violation_bars(
        bars,
        "wrong_step_share",
        features=[f.name for f in spec.directed],
        unmeasurable=sorted(one_bucket),
        title=f"Raw-grid wrong-step share of P({label}) per feature (mean ± std over {n_seeds} seeds)",
    )
    return EvaluationFigures(
        grid_plots,
        pd_plots,
        violation,
        plot_roc(_first_seed_by_model(roc_curves), label_name=label),
        plot_calibration(_first_seed_by_model(calibration_curves), label_name=label),
    )
