"""Evaluation figures (matplotlib, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure` built directly (not through
``pyplot``), so nothing accumulates in a global figure registry and nothing needs closing; save with
``fig.savefig(path)`` (each figure carries its own Agg canvas; the global backend is untouched) or :func:`save_figure`. The inputs are the tables of
:mod:`.accuracy` and :mod:`.monotonicity`, keyed by a model label (e.g. ``"baseline"``, ``"CCSS"``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

_FIGSIZE = (6.4, 4.2)


def _new_figure(figsize: tuple[float, float] = _FIGSIZE) -> tuple[Figure, object]:
    fig = Figure(figsize=figsize, dpi=100, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    return fig, ax


def _colour(i: int) -> str:
    return f"C{i % 10}"


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def _direction_label(direction: int) -> str:
    return f"{int(direction):+d}" if direction else "0"


def plot_partial_dependence(
    curves_by_model: Mapping[str, pd.DataFrame],
    feature: str,
    direction: int,
    xscale: str | None = None,
) -> Figure:
    """PD curves (mean prediction per bucket centre) of one feature, one line per model, with the
    ICE q10–q90 band shaded. ``curves_by_model[label]`` is a ``MonotonicityResult.curves`` table;
    x is the raw bucket centre. ``xscale``: None picks "log" (or "symlog" when a centre is 0) when
    the non-negative centres span more than two decades, else "linear"."""
    fig, ax = _new_figure()
    all_x = []
    for i, (label, curves) in enumerate(curves_by_model.items()):
        sub = curves[curves["feature"] == feature].sort_values("bucket")
        if sub.empty:
            continue
        x = sub["centre"].to_numpy(np.float64)
        all_x.append(x)
        colour = _colour(i)
        ax.plot(x, sub["mean"].to_numpy(), marker="o", ms=3, color=colour, label=f"{label} (PD)")
        if {"q10", "q90"} <= set(sub.columns):
            ax.fill_between(x, sub["q10"].to_numpy(), sub["q90"].to_numpy(), color=colour, alpha=0.18,
                            label=f"{label} ICE 10–90%")
    if xscale is None:
        xs = np.concatenate(all_x) if all_x else np.array([1.0])
        pos = xs[xs > 0]
        skewed = xs.min() >= 0 and pos.size > 0 and pos.max() / pos.min() > 100
        xscale = ("log" if xs.min() > 0 else "symlog") if skewed else "linear"
    if xscale == "symlog":
        xs = np.concatenate(all_x)
        ax.set_xscale("symlog", linthresh=float(xs[xs > 0].min()))
    else:
        ax.set_xscale(xscale)
    arrow = "increasing" if direction > 0 else "decreasing" if direction < 0 else "no direction"
    ax.set_title(f"{feature} ({_direction_label(direction)}, expected {arrow})")
    ax.set_xlabel(f"{feature} (bucket centre, raw units)")
    ax.set_ylabel("predicted click probability")
    ax.grid(alpha=0.3)
    if all_x:
        ax.legend(fontsize=8)
    return fig


def plot_violation_bars(
    per_feature_by_model: Mapping[str, pd.DataFrame],
    metric: str = "violation_rate",
) -> Figure:
    """Grouped bars: ``metric`` (a ``MonotonicityResult.per_feature`` column) per directed feature,
    one bar per model."""
    features: list[str] = []
    for table in per_feature_by_model.values():
        for f in table["feature"]:
            if f not in features:
                features.append(f)
    n_models = max(1, len(per_feature_by_model))
    fig, ax = _new_figure((max(6.4, 0.9 * len(features) + 2.5), 4.2))
    x = np.arange(len(features))
    width = 0.8 / n_models
    for i, (label, table) in enumerate(per_feature_by_model.items()):
        values = table.set_index("feature")[metric].reindex(features).to_numpy(np.float64)
        ax.bar(x + (i - (n_models - 1) / 2) * width, np.nan_to_num(values), width, label=label, color=_colour(i))
    ax.set_xticks(x)
    ax.set_xticklabels(features, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric.replace("_", " "))
    ax.set_title(f"{metric.replace('_', ' ')} per directed feature")
    ax.grid(axis="y", alpha=0.3)
    if per_feature_by_model:
        ax.legend(fontsize=8)
    return fig


def plot_roc(curves_by_model: Mapping[str, pd.DataFrame]) -> Figure:
    """ROC curves (tables of :func:`.accuracy.roc_curve_data`), AUC by trapezoid in the legend."""
    fig, ax = _new_figure((5.0, 4.6))
    for i, (label, roc) in enumerate(curves_by_model.items()):
        fpr, tpr = roc["fpr"].to_numpy(np.float64), roc["tpr"].to_numpy(np.float64)
        auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)) if len(fpr) > 1 else float("nan")
        ax.plot(fpr, tpr, color=_colour(i), label=f"{label} (AUC {auc:.4f})")
    ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=0.8)
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("false positive rate")
    ax.set_ylabel("true positive rate")
    ax.set_title("ROC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


def plot_calibration(curves_by_model: Mapping[str, pd.DataFrame]) -> Figure:
    """Reliability diagram (tables of :func:`.accuracy.calibration_data`) with the diagonal."""
    fig, ax = _new_figure((5.0, 4.6))
    hi = 0.0
    for i, (label, cal) in enumerate(curves_by_model.items()):
        ax.plot(cal["prob_pred"], cal["prob_true"], marker="o", ms=3, color=_colour(i), label=label)
        hi = max(hi, float(np.nanmax(cal[["prob_pred", "prob_true"]].to_numpy())) if len(cal) else 0.0)
    hi = min(1.0, hi * 1.05) if hi > 0 else 1.0
    ax.plot([0, hi], [0, hi], ls="--", color="grey", lw=0.8, label="perfectly calibrated")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed click rate")
    ax.set_title("Calibration")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left")
    return fig
