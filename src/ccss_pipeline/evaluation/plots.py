"""Evaluation figures (matplotlib, no pyplot state).

Every function returns a :class:`matplotlib.figure.Figure` built directly (not through ``pyplot``), so
nothing accumulates in a global figure registry and nothing needs closing; save with
``fig.savefig(path)`` (each figure carries its own Agg canvas; the global backend is untouched) or
:func:`save_figure`. The inputs are the tables of :mod:`.accuracy`, :mod:`.monotonicity` and
:mod:`.raw_grid`, keyed by a model label (e.g. ``"dnn baseline"``, ``"dnn CCSS"``).

Nothing here assumes what the label means: axes and titles name it through ``label_name`` (the
schema's label column, ``FeatureSpec.label_name``), e.g. "predicted P(is_click)".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

_FIGSIZE = (6.4, 4.2)
#: ``gid`` of the thin vertical lines :func:`plot_raw_grid_ice` draws at the bucket edges.
EDGE_GID = "bucket-edge"
#: ``gid`` of the hatched span :func:`plot_violation_bars` draws for a feature it cannot measure.
UNMEASURABLE_GID = "not-measurable"
#: Why a directed feature with a single bucket has no monotonicity figure.
ONE_BUCKET_NOTE = "not constrained: one bucket — see feature_engineering.n_buckets / the warning in the log"


def message_figure(text: str, figsize: tuple[float, float] = (7, 4.5)) -> Figure:
    """A figure that says why a plot could not be drawn (e.g. too few finished trials)."""
    fig = Figure(figsize=figsize)
    ax = fig.add_subplot()
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True)
    ax.set_axis_off()
    return fig


def figure_of(ax: Axes) -> Figure:
    """The top-level figure an Axes is drawn on (Optuna's plots return Axes)."""
    fig = ax.get_figure(root=True)
    if fig is None:
        raise ValueError("the axes are not on a figure")
    return fig


def _new_figure(figsize: tuple[float, float] = _FIGSIZE) -> tuple[Figure, Axes]:
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


def prob_label(label_name: str = "label") -> str:
    """The axis label of a predicted probability: ``"predicted P(<label_name>)"``."""
    return f"predicted P({label_name})"


def _title(feature: str, direction: int, what: str = "", label_name: str = "label") -> str:
    arrow = "increasing" if direction > 0 else "decreasing" if direction < 0 else "no direction"
    expected = f"P({label_name}) expected {arrow}" if direction else "no direction"
    return f"{feature} ({_direction_label(direction)}, {expected}){what}"


def not_constrained_figure(feature: str, direction: int, label_name: str = "label") -> Figure:
    """What the ICE / PD figure of a directed feature with a single bucket shows instead of a one-point
    curve: that CCSS cannot constrain it and its monotonicity is not measurable."""
    fig = message_figure(
        f"{feature}: {ONE_BUCKET_NOTE}.\nNo curve of {prob_label(label_name)} to draw (a single training value).",
        figsize=(7.0, 4.4),
    )
    FigureCanvasAgg(fig)
    fig.axes[0].set_title(_title(feature, direction, " — not measurable", label_name))
    return fig


def _auto_xscale(xs: np.ndarray) -> str:
    """ "log" when the values are positive and span more than two decades, "symlog" when they also
    include 0 (non-negative), else "linear"."""
    xs = xs[np.isfinite(xs)]
    pos = xs[xs > 0]
    if xs.size == 0 or pos.size == 0 or xs.min() < 0 or pos.max() / pos.min() <= 100:
        return "linear"
    return "log" if xs.min() > 0 else "symlog"


def _set_xscale(ax, xscale: str, xs: np.ndarray) -> None:
    if xscale == "symlog":
        pos = xs[xs > 0]
        ax.set_xscale("symlog", linthresh=float(pos.min()) if pos.size else 1.0)
    else:
        ax.set_xscale(xscale)


def _curves_with_band(ax, curves_by_model: Mapping[str, pd.DataFrame], feature: str, x_col: str, sort_col: str):
    """One mean line per model with its q10–q90 band shaded; returns the x values drawn."""
    all_x = []
    for i, (label, curves) in enumerate(curves_by_model.items()):
        sub = curves[curves["feature"] == feature].sort_values(sort_col)
        if sub.empty:
            continue
        x = sub[x_col].to_numpy(np.float64)
        all_x.append(x)
        colour = _colour(i)
        ax.plot(
            x, sub["mean"].to_numpy(), marker="o" if len(x) <= 30 else None, ms=3, color=colour, label=f"{label} (mean)"
        )
        if {"q10", "q90"} <= set(sub.columns):
            ax.fill_between(
                x, sub["q10"].to_numpy(), sub["q90"].to_numpy(), color=colour, alpha=0.18, label=f"{label} ICE 10–90%"
            )
    return np.concatenate(all_x) if all_x else np.array([], dtype=np.float64)


def plot_partial_dependence(
    curves_by_model: Mapping[str, pd.DataFrame],
    feature: str,
    direction: int,
    xscale: str | None = None,
    label_name: str = "label",
) -> Figure:
    """PD curves (mean prediction per bucket centre) of one feature, one line per model, with the
    ICE q10–q90 band shaded. ``curves_by_model[label]`` is a ``MonotonicityResult.curves`` table;
    x is the raw bucket centre. ``xscale``: None picks "log" (or "symlog" when a centre is 0) when
    the non-negative centres span more than two decades, else "linear". ``label_name`` names the
    predicted label on the y axis and in the title."""
    fig, ax = _new_figure()
    xs = _curves_with_band(ax, curves_by_model, feature, "centre", "bucket")
    _set_xscale(ax, xscale or _auto_xscale(xs), xs)
    ax.set_title(_title(feature, direction, " — bucket centres", label_name))
    ax.set_xlabel(f"{feature} (bucket centre, raw units)")
    ax.set_ylabel(prob_label(label_name))
    ax.grid(alpha=0.3)
    if xs.size:
        ax.legend(fontsize=8)
    return fig


def plot_raw_grid_ice(
    curves_by_model: Mapping[str, pd.DataFrame],
    feature: str,
    direction: int,
    boundaries: Sequence[float],
    xscale: str | None = None,
    label_name: str = "label",
) -> Figure:
    """Mean prediction over the raw-value grid of one feature, one line per model, with the ICE
    q10–q90 band; the bucket edges (``boundaries``, raw units) are thin vertical lines (``gid``
    :data:`EDGE_GID`). ``curves_by_model[label]`` is a ``RawGridResult.curves`` table. ``xscale``:
    as :func:`plot_partial_dependence`, from the grid values; ``label_name`` as there."""
    fig, ax = _new_figure((7.0, 4.4))
    xs = _curves_with_band(ax, curves_by_model, feature, "value", "value")
    _set_xscale(ax, xscale or _auto_xscale(xs), xs)
    for j, edge in enumerate(boundaries):
        ax.axvline(
            float(edge), color="grey", lw=0.6, alpha=0.7, ls=":", gid=EDGE_GID, label="bucket edges" if j == 0 else None
        )
    ax.set_title(_title(feature, direction, " — raw-value grid", label_name))
    ax.set_xlabel(f"{feature} (raw value)")
    ax.set_ylabel(prob_label(label_name))
    ax.grid(alpha=0.3)
    if xs.size or len(boundaries):
        ax.legend(fontsize=8)
    return fig


def _pct_text(v: float) -> str:
    if not np.isfinite(v):
        return "n/a"
    if v == 0:
        return "0"
    p = 100 * v
    return f"{p:.2g}%" if p < 1 else f"{p:.1f}%"


@dataclass(frozen=True)
class _BarLayout:
    """Bars: a group per feature, one per model; on a log scale bars stop at ``floor`` (no 0 there)."""

    x: np.ndarray
    width: float
    n_models: int
    measurable: np.ndarray  # per feature: False for the hatched "not measurable" ones
    yscale: str
    floor: float


def _bar_columns(
    per_feature_by_model: Mapping[str, pd.DataFrame],
    pick: Callable[[pd.DataFrame], str | None],
    features: list[str],
    skipped: np.ndarray,
) -> dict[str, np.ndarray]:
    """Each model's column ``pick(its table)`` in ``features`` order; NaN where it has no row, where
    ``pick`` gives None (a table without error bars) and for the features that are not measurable."""
    out = {}
    for label, table in per_feature_by_model.items():
        indexed = table.drop_duplicates("feature").set_index("feature")
        col = pick(indexed)
        got = indexed[col].reindex(features).to_numpy(np.float64) if col else np.full(len(features), np.nan)
        out[label] = np.where(skipped, np.nan, got)
    return out


def _draw_model_bars(ax: Axes, layout: _BarLayout, i: int, label: str, v: np.ndarray, err: np.ndarray) -> float:
    """One model's bars, error bars and value labels; returns the highest bar + error drawn."""
    drawn, e = np.nan_to_num(v, nan=0.0), np.nan_to_num(err, nan=0.0)
    low = np.minimum(e, np.maximum(drawn - layout.floor, 0.0)) if layout.yscale == "log" else np.minimum(e, drawn)
    pos_x = layout.x + (i - (layout.n_models - 1) / 2) * layout.width
    keep = layout.measurable
    ax.bar(
        pos_x[keep],
        drawn[keep],
        layout.width,
        yerr=np.vstack([low, e])[:, keep],
        capsize=2,
        label=label,
        color=_colour(i),
        error_kw={"elinewidth": 0.8, "ecolor": "#333"},
    )
    base = layout.floor if layout.yscale == "log" else 0.0
    for xi, vi, hi in zip(pos_x[keep], v[keep], (drawn + e)[keep], strict=True):
        ax.annotate(
            _pct_text(vi),
            (xi, max(hi, base)),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=6,
        )
    return float(np.max(drawn + e, initial=0.0))


def _hatch_unmeasurable(ax: Axes, skipped: np.ndarray) -> None:
    """A hatched, labelled span over each feature that cannot be measured, so it does not read as 0."""
    for j in np.flatnonzero(skipped):
        ax.axvspan(
            j - 0.4,
            j + 0.4,
            facecolor="none",
            edgecolor="grey",
            hatch="//",
            lw=0.6,
            gid=UNMEASURABLE_GID,
            label="not measurable (one bucket)" if j == np.flatnonzero(skipped)[0] else None,
        )
        ax.text(
            float(j),
            0.5,
            "not measurable:\none bucket",
            transform=ax.get_xaxis_transform(),
            ha="center",
            va="center",
            rotation=90,
            fontsize=7,
            color="#444",
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 2},
        )


def _set_share_axis(ax: Axes, layout: _BarLayout, top: float) -> None:
    """The y axis of a share: its scale, limits that fit the highest bar, and ticks in percent."""
    if layout.yscale == "log":
        ax.set_yscale("log")
        ax.set_ylim(layout.floor, max(top, layout.floor * 10) * 3)
    else:
        ax.set_ylim(0, min(max(top, 1e-3) * 1.3, 1.2))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{100 * y:g}%"))


def plot_violation_bars(
    per_feature_by_model: Mapping[str, pd.DataFrame],
    metric: str = "wrong_step_share",
    error: str | None = None,
    yscale: str | None = None,
    features: Sequence[str] | None = None,
    title: str | None = None,
    unmeasurable: Sequence[str] = (),
) -> Figure:
    """Grouped bars of a share ``metric`` per directed feature, one bar per model, each annotated with
    its value ("0" for an exact zero, "n/a" where the model has no value).

    ``per_feature_by_model[label]``: a table with columns ``feature`` and ``metric`` (e.g. means over
    seeds); ``error``: a column of error-bar half-widths (default ``<metric>_std`` when present; NaN =
    none). ``yscale``: None picks "log" when the non-zero values span more than a decade (so 0.1% stays
    visible next to 10%), else "linear". ``features``: display order (default: order of appearance).
    ``unmeasurable``: features drawn without bars, as a hatched span labelled "not measurable" (gid
    :data:`UNMEASURABLE_GID`) — a directed feature with one bucket, which must not read as 0.
    """
    if features is None:
        features = list(dict.fromkeys(f for t in per_feature_by_model.values() for f in t["feature"]))
    features = list(features)
    skipped = np.asarray([f in set(unmeasurable) for f in features], dtype=bool)
    n_models = max(1, len(per_feature_by_model))
    values = _bar_columns(per_feature_by_model, lambda _: metric, features, skipped)
    std = f"{metric}_std"
    errors = _bar_columns(
        per_feature_by_model, lambda indexed: error or (std if std in indexed.columns else None), features, skipped
    )
    every = np.concatenate(list(values.values())) if values else np.array([])
    pos = every[np.isfinite(every) & (every > 0)]
    if yscale is None:
        yscale = "log" if pos.size and pos.max() / pos.min() > 10 else "linear"
    floor = 10 ** np.floor(np.log10(pos.min() / 2)) if pos.size else 1e-4
    fig, ax = _new_figure((max(6.4, 1.1 * len(features) * n_models / 2 + 3.0), 4.6))
    layout = _BarLayout(np.arange(len(features)), 0.8 / n_models, n_models, ~skipped, yscale, floor)
    top = 0.0
    for i, label in enumerate(per_feature_by_model):
        top = max(top, _draw_model_bars(ax, layout, i, label, values[label], errors[label]))
    _hatch_unmeasurable(ax, skipped)
    _set_share_axis(ax, layout, top)
    ax.set_xticks(layout.x)
    ax.set_xticklabels(features, rotation=30, ha="right", fontsize=8)
    name = metric.replace("_", " ")
    ax.set_ylabel(f"{name} ({yscale} scale)")
    ax.set_title(title or f"{name} per directed feature", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if per_feature_by_model or skipped.any():
        ax.legend(fontsize=8)
    return fig


def plot_roc(curves_by_model: Mapping[str, pd.DataFrame], label_name: str = "label") -> Figure:
    """ROC curves (tables of :func:`.accuracy.roc_curve_data`), AUC by trapezoid in the legend; the
    title names the predicted label."""
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
    ax.set_title(f"ROC — {label_name}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    return fig


#: ``gid`` of the dashed reliability curves :func:`plot_calibration` draws before recalibration.
UNCALIBRATED_GID = "before-recalibration"
UNCALIBRATED = "prob_pred_uncalibrated"


def _recalibrated(cal: pd.DataFrame) -> bool:
    """Whether a calibration table carries a "before" curve that differs from its "after" one."""
    return UNCALIBRATED in cal.columns and not np.allclose(cal[UNCALIBRATED], cal["prob_pred"], rtol=0, atol=1e-12)


def plot_calibration(curves_by_model: Mapping[str, pd.DataFrame], label_name: str = "label") -> Figure:
    """Reliability diagram (tables of :func:`.accuracy.calibration_data`) with the diagonal; axes and
    title name the predicted label.

    Solid: the served probability (after the model's monotone recalibration). Where the table has a
    different ``prob_pred_uncalibrated`` (the same bins before it), the same colour dashed shows that
    curve too (``gid`` :data:`UNCALIBRATED_GID`), so the figure says what the recalibration moved."""
    fig, ax = _new_figure((5.0, 4.6))
    hi, before = 0.0, False
    for i, (label, cal) in enumerate(curves_by_model.items()):
        ax.plot(cal["prob_pred"], cal["prob_true"], marker="o", ms=3, color=_colour(i), label=label)
        hi = max(hi, float(np.nanmax(cal[["prob_pred", "prob_true"]].to_numpy())) if len(cal) else 0.0)
        if len(cal) and _recalibrated(cal):
            before = True
            ax.plot(cal[UNCALIBRATED], cal["prob_true"], ls="--", marker="x", ms=3, lw=0.9, color=_colour(i),
                    alpha=0.8, label=f"{label}, before recalibration", gid=UNCALIBRATED_GID)  # fmt: skip
            hi = max(hi, float(np.nanmax(cal[UNCALIBRATED].to_numpy())))
    hi = min(1.0, hi * 1.05) if hi > 0 else 1.0
    ax.plot([0, hi], [0, hi], ls=":", color="grey", lw=0.8, label="perfectly calibrated")
    ax.set_xlim(0, hi)
    ax.set_ylim(0, hi)
    ax.set_xlabel(f"mean {prob_label(label_name)}")
    ax.set_ylabel(f"observed rate of {label_name}")
    ax.set_title(f"Calibration — {label_name}" + ("\n(dashed: before recalibration)" if before else ""))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7 if before else 8, loc="upper left")
    return fig
