"""Accuracy metrics (spec §6): AUC, GAUC, LogLoss, the thresholded classification metrics (accuracy,
precision, recall, F1), the Brier score, and the oracle AUC on synthetic data.

Also the curve tables (ROC, calibration) that DVC plots and :mod:`.plots` draw. No model code here:
every function takes labels and probabilities as arrays. :func:`probability_scores` (LogLoss, Brier) is
what a monotone recalibration changes; the evaluation reports it before and after.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import calibration_curve
from sklearn.metrics import (
    accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    precision_score,
    recall_score,
    roc_auc_score,
    roc_curve,
)

_PROB_CLIP = 1e-7
#: Default decision threshold: a row is predicted positive when its probability is at least this.
DEFAULT_THRESHOLD = 0.5
#: Keys :func:`classification_metrics` returns (besides ``threshold``).
CLASSIFICATION_METRICS = ("accuracy", "precision", "recall", "f1", "brier")


def _as_binary(label: np.ndarray) -> np.ndarray:
    y = np.asarray(label).reshape(-1)
    return (y > 0.5).astype(np.int8)


def _auc_or_nan(y: np.ndarray, score: np.ndarray) -> float:
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    return float(roc_auc_score(y, score))


def group_auc_table(label: np.ndarray, prob: np.ndarray, group: np.ndarray) -> pd.DataFrame:
    """Per-group AUC, rank-based and vectorized (no Python loop over groups).

    Within each group the scores are ranked with average ranks for ties; the group's AUC is the
    Mann-Whitney statistic ``(sum of positive ranks - P(P+1)/2) / (P·N)`` — equal to
    ``roc_auc_score`` on that group, ties included. Returns one row per group with columns
    ``group, n, n_pos, auc`` (``auc`` NaN where the group holds a single class).
    """
    y = _as_binary(label)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    g = np.asarray(group).reshape(-1)
    if not (y.size == p.size == g.size):
        raise ValueError(f"label, prob and group differ in length: {y.size}, {p.size}, {g.size}")
    frame = pd.DataFrame({"g": g, "y": y, "p": p})
    frame["r"] = frame.groupby("g", sort=False)["p"].rank(method="average")
    frame["rpos"] = frame["r"] * frame["y"]
    agg = frame.groupby("g", sort=True).agg(n=("y", "size"), n_pos=("y", "sum"), rank_pos=("rpos", "sum"))
    n = agg["n"].to_numpy(np.float64)
    n_pos = agg["n_pos"].to_numpy(np.float64)
    n_neg = n - n_pos
    valid = (n_pos > 0) & (n_neg > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (agg["rank_pos"].to_numpy(np.float64) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc = np.where(valid, auc, np.nan)
    return pd.DataFrame(
        {"group": agg.index.to_numpy(), "n": agg["n"].to_numpy(np.int64), "n_pos": n_pos.astype(np.int64), "auc": auc}
    )


def gauc(label: np.ndarray, prob: np.ndarray, group: np.ndarray) -> tuple[float, int]:
    """GAUC: per-user AUC averaged with impression weights; single-class users skipped.

    Returns ``(gauc, n_groups_used)``; ``gauc`` is NaN when no user has both classes.
    """
    table = group_auc_table(label, prob, group)
    used = table[table["auc"].notna()]
    if used.empty:
        return float("nan"), 0
    w = used["n"].to_numpy(np.float64)
    return float(np.sum(w * used["auc"].to_numpy()) / np.sum(w)), int(len(used))


def probability_scores(label: np.ndarray, prob: np.ndarray) -> dict[str, float]:
    """LogLoss (probabilities clipped to [1e-7, 1 − 1e-7]) and Brier score of ``prob``, by scikit-learn:
    the two figures that judge the probabilities themselves, not their ranking. NaN on an empty split."""
    y = _as_binary(label)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    if y.size != p.size:
        raise ValueError(f"label and prob differ in length: {y.size} vs {p.size}")
    if y.size == 0:
        return {"logloss": float("nan"), "brier": float("nan")}
    return {
        "logloss": float(log_loss(y, np.clip(p, _PROB_CLIP, 1 - _PROB_CLIP), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
    }


def classification_metrics(
    label: np.ndarray, prob: np.ndarray, threshold: float = DEFAULT_THRESHOLD
) -> dict[str, float]:
    """Accuracy, precision, recall and F1 of the rows predicted positive (``prob >= threshold``), and the
    Brier score (mean squared error of ``prob`` against the label), all by scikit-learn.

    Precision, recall and F1 are 0 where undefined (no predicted or no actual positive); every value
    is NaN on an empty split. Keys: :data:`CLASSIFICATION_METRICS` and ``threshold``.
    """
    if not 0 < threshold < 1:
        raise ValueError(f"threshold must be in (0, 1), got {threshold}")
    y = _as_binary(label)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    if y.size != p.size:
        raise ValueError(f"label and prob differ in length: {y.size} vs {p.size}")
    if y.size == 0:
        return {**{k: float("nan") for k in CLASSIFICATION_METRICS}, "threshold": float(threshold)}
    pred = (p >= threshold).astype(np.int8)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "precision": float(precision_score(y, pred, zero_division=0)),
        "recall": float(recall_score(y, pred, zero_division=0)),
        "f1": float(f1_score(y, pred, zero_division=0)),
        "brier": float(brier_score_loss(y, p)),
        "threshold": float(threshold),
    }


def accuracy_metrics(
    label: np.ndarray,
    prob: np.ndarray,
    group: np.ndarray,
    oracle: np.ndarray | None = None,
    threshold: float = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """AUC, GAUC, LogLoss, the thresholded metrics, Brier score, row count and positive rate of one
    model on one split.

    Keys: ``auc``, ``gauc``, ``logloss``, ``accuracy``, ``precision``, ``recall``, ``f1``, ``brier``,
    ``threshold`` (see :func:`classification_metrics`), ``n_rows``, ``positive_rate``, ``mean_prob``,
    ``gauc_groups`` (users with both classes), ``n_groups``; with ``oracle`` (the true positive-class
    probability of a synthetic generator) also ``oracle_auc`` (AUC of the oracle probability against
    the label — the ceiling), ``oracle_logloss``, ``corr_oracle`` (Pearson of prob with oracle) and
    ``auc_vs_oracle_ratio`` (= auc / oracle_auc). Values are plain Python floats/ints (JSON-ready).
    """
    y = _as_binary(label)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    if y.size != p.size:
        raise ValueError(f"label and prob differ in length: {y.size} vs {p.size}")
    if not np.all(np.isfinite(p)):
        raise ValueError("prob contains non-finite values")
    g_auc, n_used = gauc(y, p, group)
    out: dict[str, Any] = {
        "auc": _auc_or_nan(y, p),
        "gauc": g_auc,
        "logloss": probability_scores(y, p)["logloss"],
        **classification_metrics(y, p, threshold),
        "n_rows": int(y.size),
        "positive_rate": float(y.mean()) if y.size else float("nan"),
        "mean_prob": float(p.mean()) if y.size else float("nan"),
        "gauc_groups": n_used,
        "n_groups": int(pd.unique(np.asarray(group).reshape(-1)).size),
    }
    if oracle is not None:
        o = np.asarray(oracle, dtype=np.float64).reshape(-1)
        if o.size != y.size:
            raise ValueError(f"oracle and label differ in length: {o.size} vs {y.size}")
        out["oracle_auc"] = _auc_or_nan(y, o)
        out["oracle_logloss"] = float(log_loss(y, np.clip(o, _PROB_CLIP, 1 - _PROB_CLIP), labels=[0, 1]))
        out["corr_oracle"] = float(np.corrcoef(p, o)[0, 1]) if p.std() > 0 and o.std() > 0 else float("nan")
        out["auc_vs_oracle_ratio"] = out["auc"] / out["oracle_auc"] if out["oracle_auc"] else float("nan")
    return out


def roc_curve_data(label: np.ndarray, prob: np.ndarray, max_points: int = 1000) -> pd.DataFrame:
    """ROC curve as a DataFrame ``fpr, tpr, threshold`` (thinned to at most ``max_points`` rows,
    first and last points kept; the infinite first threshold is written as 1.0 so it serializes)."""
    y = _as_binary(label)
    fpr, tpr, thr = roc_curve(y, np.asarray(prob, dtype=np.float64).reshape(-1))
    if len(fpr) > max_points:
        idx = np.unique(np.linspace(0, len(fpr) - 1, max_points).round().astype(np.int64))
        fpr, tpr, thr = fpr[idx], tpr[idx], thr[idx]
    thr = np.where(np.isfinite(thr), thr, 1.0)
    return pd.DataFrame({"fpr": fpr, "tpr": tpr, "threshold": thr})


def calibration_data(
    label: np.ndarray,
    prob: np.ndarray,
    n_bins: int = 10,
    strategy: str = "quantile",
    prob_uncalibrated: np.ndarray | None = None,
) -> pd.DataFrame:
    """Reliability diagram data: ``prob_pred`` (mean predicted) vs ``prob_true`` (observed rate) per bin
    (scikit-learn's ``calibration_curve``).

    With ``prob_uncalibrated`` (the same rows' probabilities before a monotone recalibration) also
    ``prob_pred_uncalibrated``: their mean in the same bins, so each bin's observed rate is shared and the
    two curves differ only in where the model put them. A strictly increasing map keeps each row's rank,
    hence each quantile bin's rows: these are the uncalibrated model's own quantile bins."""
    y = _as_binary(label)
    p = np.asarray(prob, dtype=np.float64).reshape(-1)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy=strategy)
    table = pd.DataFrame({"prob_pred": prob_pred, "prob_true": prob_true})
    if prob_uncalibrated is None:
        return table
    raw = np.asarray(prob_uncalibrated, dtype=np.float64).reshape(-1)
    if raw.size != p.size:
        raise ValueError(f"prob and prob_uncalibrated differ in length: {p.size} vs {raw.size}")
    ids = _bin_ids(p, n_bins, strategy)
    total = np.bincount(ids, minlength=n_bins)
    means = np.bincount(ids, weights=raw, minlength=n_bins)[total > 0] / total[total > 0]
    if len(means) != len(table):  # the bins are scikit-learn's: this cannot differ unless it changes them
        raise RuntimeError(f"calibration bins disagree: {len(means)} here, {len(table)} from scikit-learn")
    return table.assign(prob_pred_uncalibrated=means)


def _bin_ids(prob: np.ndarray, n_bins: int, strategy: str) -> np.ndarray:
    """Each row's bin as ``sklearn.calibration.calibration_curve`` assigns it (quantile or uniform edges)."""
    if strategy == "quantile":
        edges = np.percentile(prob, np.linspace(0, 1, n_bins + 1) * 100)
    elif strategy == "uniform":
        edges = np.linspace(0.0, 1.0, n_bins + 1)
    else:
        raise ValueError(f"strategy must be 'quantile' or 'uniform', got {strategy!r}")
    return np.searchsorted(edges[1:-1], prob)
