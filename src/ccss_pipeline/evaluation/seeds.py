"""Results over seeds: mean ± standard deviation per group, and paired CCSS − baseline differences.

Each final fit is repeated with several seeds (``model_training.n_seeds``); a frame of results has
one row per (group columns, variant, seed) and one column per metric. Plain pandas/numpy/scipy.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from scipy import stats


def _groups(frame: pd.DataFrame, by: Sequence[str]):
    """(key tuple, sub-frame) pairs; ``by`` empty gives the whole frame as one group with key ()."""
    by = list(by)
    if not by:
        return [((), frame)]
    return [((k if isinstance(k, tuple) else (k,)), g) for k, g in frame.groupby(by, sort=True, dropna=False)]


def summarize_over_seeds(frame: pd.DataFrame, by: list[str], metrics: list[str]) -> pd.DataFrame:
    """Per group of ``by``: ``<m>_mean`` and ``<m>_std`` (ddof=1) of each metric, and ``n_seeds``.

    ``n_seeds`` is the number of rows of the group; a metric's NaN values are left out of its mean and
    std (its std is NaN with fewer than two values, e.g. one seed).
    """
    missing = [c for c in [*by, *metrics] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    rows = []
    for key, group in _groups(frame, by):
        row: dict[str, object] = dict(zip(by, key, strict=True))
        for m in metrics:
            values = pd.to_numeric(group[m], errors="coerce").to_numpy(dtype=float)
            values = values[~np.isnan(values)]
            row[f"{m}_mean"] = float(values.mean()) if len(values) else math.nan
            row[f"{m}_std"] = float(values.std(ddof=1)) if len(values) >= 2 else math.nan
        row["n_seeds"] = len(group)
        rows.append(row)
    columns = [*by, *[f"{m}_{s}" for m in metrics for s in ("mean", "std")], "n_seeds"]
    return pd.DataFrame(rows, columns=columns)


def t_interval(values: Sequence[float], confidence: float = 0.95) -> tuple[float, float]:
    """Two-sided Student-t interval of the mean of ``values`` (NaN, NaN with fewer than two values)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n < 2:
        return math.nan, math.nan
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1)) * float(x.std(ddof=1)) / math.sqrt(n)
    mean = float(x.mean())
    return mean - half, mean + half


#: What the report prints instead of an interval of a share that the seeds cannot bound.
TOO_FEW_SEEDS = "too few seeds for an interval"
#: Fewer seeds than this give a share no interval: a 2-seed t-interval (t = 12.7) spans more than a
#: share can be, and even a clipped one would only restate the range.
MIN_SEEDS_FOR_SHARE_INTERVAL = 3


def share_interval(low: float, high: float, n: int, difference: bool = False) -> tuple[float, float] | None:
    """The t-interval ``[low, high]`` of a share (a value in [0, 1]; of a difference of two shares with
    ``difference``: in [-1, 1]) as it may be printed, or None for :data:`TOO_FEW_SEEDS`.

    The one rule for intervals of shares: a Student-t interval knows nothing of the range, so with few
    seeds it reads "[-80.9 pp, +149.9 pp]" — values no share can take. It is clipped to the range; with
    fewer than :data:`MIN_SEEDS_FOR_SHARE_INTERVAL` seeds, no interval, or an interval wider than the
    whole range (it says nothing then) there is none."""
    lower, upper = (-1.0, 1.0) if difference else (0.0, 1.0)
    if n < MIN_SEEDS_FOR_SHARE_INTERVAL or not (math.isfinite(low) and math.isfinite(high)):
        return None
    if high - low > upper - lower:
        return None
    return max(low, lower), min(high, upper)


def paired_difference(
    frame: pd.DataFrame,
    metric: str,
    by: Sequence[str] = ("backbone",),
    variant_col: str = "variant",
    treatment: str = "ccss",
    control: str = "baseline",
    pair_on: str = "seed",
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Per group of ``by``: treatment − control of ``metric``, paired on ``pair_on`` (the seed).

    Seeds present on one side only, or with a NaN metric on either side, are dropped. Columns:
    ``by``, ``metric``, ``n`` (pairs), ``mean``, ``std`` (ddof=1), ``ci_low``, ``ci_high`` (Student-t,
    ``confidence``; NaN when n < 2), ``seeds`` and ``differences`` (lists, in seed order). A group
    without any pair has n = 0 and NaN statistics. Two rows with the same group, variant and seed are
    an error.
    """
    by = list(by)
    missing = [c for c in [*by, variant_col, pair_on, metric] if c not in frame.columns]
    if missing:
        raise KeyError(f"columns not in the frame: {missing}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    dupes = frame.duplicated([*by, variant_col, pair_on], keep=False)
    if dupes.any():
        raise ValueError(f"rows repeat a ({', '.join([*by, variant_col, pair_on])}) combination:\n{frame[dupes]}")
    rows = []
    for key, group in _groups(frame, by):
        side = {
            name: group[group[variant_col] == name].set_index(pair_on)[metric].astype(float)
            for name in (treatment, control)
        }
        diff = (side[treatment] - side[control]).dropna().sort_index()  # aligned on the seed
        d = diff.to_numpy(dtype=float)
        n = len(d)
        low, high = t_interval(d, confidence)
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "metric": metric,
                "n": n,
                "mean": float(d.mean()) if n else math.nan,
                "std": float(d.std(ddof=1)) if n >= 2 else math.nan,
                "ci_low": low,
                "ci_high": high,
                "seeds": diff.index.tolist(),
                "differences": d.tolist(),
            }
        )
    columns = [*by, "metric", "n", "mean", "std", "ci_low", "ci_high", "seeds", "differences"]
    return pd.DataFrame(rows, columns=columns)


def format_mean_std(mean: float, std: float, pct: bool = False, digits: int = 4) -> str:
    """``"0.7833 ± 0.0004"``; with ``pct`` both are multiplied by 100: ``"0.41% ± 0.05%"`` (digits=2).

    A NaN std (one seed) gives the mean alone; a NaN mean gives ``"n/a"``.
    """
    if mean is None or not math.isfinite(float(mean)):
        return "n/a"
    scale, unit = (100.0, "%") if pct else (1.0, "")
    text = f"{float(mean) * scale:.{digits}f}{unit}"
    if std is None or not math.isfinite(float(std)):
        return text
    return f"{text} ± {float(std) * scale:.{digits}f}{unit}"
