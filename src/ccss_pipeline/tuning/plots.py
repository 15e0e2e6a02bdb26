"""What a finished study shows: its Pareto front with the chosen trial marked, and one row per trial."""

from __future__ import annotations

import warnings

import optuna
import pandas as pd
from matplotlib.figure import Figure

from ccss_pipeline.evaluation.plots import figure_of, message_figure
from ccss_pipeline.tuning.selection import AUC_ATTR, SHARE_ATTR, select_trial

#: the two objectives' names, in Optuna's order
TARGET_NAMES = ["validation AUC", "validation wrong-step share"]


def plot_pareto_front(study: optuna.Study, max_violation: float | None = None) -> Figure:
    """Optuna's Pareto-front plot (AUC against wrong-step share), the chosen trial and the target marked.

    ``max_violation`` defaults to the one ``run_search`` stored on the study (a study user attribute).
    With no completed trial, a figure that says so.
    """
    if max_violation is None:
        max_violation = study.user_attrs.get("max_violation")
    trials = study.get_trials(deepcopy=False)
    chosen, feasible = select_trial(
        trials, max_violation, study.user_attrs.get("max_edge_violation"), study.user_attrs.get("auc_tolerance", 0.0)
    )
    if chosen is None:
        return message_figure("Pareto front: no completed trial yet")
    from optuna.visualization.matplotlib import plot_pareto_front as optuna_pareto

    with warnings.catch_warnings():  # Optuna marks its matplotlib plots experimental
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        ax = optuna_pareto(study, target_names=list(TARGET_NAMES), include_dominated_trials=True)
    auc, share = chosen.values[0], chosen.values[1]
    label = f"chosen: trial {chosen.number}" + ("" if feasible else " (misses the target)")
    ax.scatter([auc], [share], s=220, facecolors="none", edgecolors="black", linewidths=2, zorder=10, label=label)
    ax.annotate(f"trial {chosen.number}", (auc, share), xytext=(8, 8), textcoords="offset points", fontsize=9)
    if max_violation is not None:
        ax.axhline(
            max_violation, color="tab:red", linestyle="--", linewidth=1.2, label=f"target share <= {max_violation:g}"
        )
    ax.legend(loc="best", fontsize=8)
    fig = figure_of(ax)
    fig.set_size_inches(7, 4.5)
    fig.tight_layout()
    return fig


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial: number, state, val_auc, val_wrong_step_share, params, user attrs, duration (s)."""
    frame = study.trials_dataframe(attrs=("number", "value", "params", "state", "user_attrs", "duration"))
    frame = frame.rename(columns={"values_0": AUC_ATTR, "values_1": SHARE_ATTR})
    # the user-attribute copies of the two objectives repeat those columns
    frame = frame.drop(columns=[f"user_attrs_{AUC_ATTR}", f"user_attrs_{SHARE_ATTR}"], errors="ignore")
    if "duration" in frame.columns:
        frame["duration"] = frame["duration"].dt.total_seconds()
    return frame
