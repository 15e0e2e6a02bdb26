"""Monotonicity metrics (spec §6, conventions "Monotonicity"), model-agnostic.

The model is reached only through a *scorer*: ``scorer(cat, dense, bucket) -> prob`` with ``cat``
(N, M) int64, ``dense`` (N, K) float32, ``bucket`` (N, K) int64 and ``prob`` (N,) predicted
probabilities of the positive class. Every scorer call here holds at most ``chunk_rows`` rows.

For each directed feature k (direction d ∈ {+1, −1}) every evaluated row is moved to every bucket
centre b (dense value ``centres_dense[b]``, bucket id ``b``, all other inputs unchanged), giving its
ICE curve ``ice[i, b]``. ``f(x)`` is the prediction of the row as it is. From these:

- neighbour violation rate: pairs (row, neighbour) for a row in bucket b < B (missing-bucket rows are
  skipped) with neighbour b+1 ("up", if b+1 < B) and b−1 ("down", if b ≥ 1); violating when
  ``d·(ice[b+1] − f(x)) < −ε`` or ``d·(f(x) − ice[b−1]) < −ε``. rate = violating pairs / pairs;
  compliance = 1 − rate; ``rows_with_violation`` = share of those rows with ≥ 1 violating pair.
- ICE monotone share: share of rows (all evaluated rows, the missing-bucket ones included — moving
  them to a centre is well defined) whose ICE curve satisfies ``d·Δ ≥ −ε`` at every step; mean
  violating mass = mean over rows of ``Σ_b max(0, −d·Δ_b)``.
- partial dependence: mean of the ICE curves per bucket (with 10 %/90 % quantile band); Spearman ρ
  of the PD curve against the bucket index, ``pd_direction_ok = sign(ρ) == d``.

Pooled: violation rate = all violating pairs / all pairs over the directed features;
``rows_with_violation`` = share of rows with a violating pair in any directed feature;
ICE share, mass and ``pd_direction_ok`` averaged over the measurable features.

A directed feature with a single bucket (``n_buckets == 1``) has no neighbour and a one-point ICE
curve: nothing is measurable. Its row keeps zero pairs, NaN rates, NaN ICE share and mass and
``pd_direction_ok`` False, and it is left out of the pooled averages (never counted as monotone).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from ccss_pipeline.spec import FeatureSpec, ModelInputs, NumericalFeature

Scorer = Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]

DEFAULT_EPS = 1e-6
DEFAULT_CHUNK_ROWS = 262_144
PER_FEATURE_COLUMNS = [
    "feature",
    "direction",
    "violation_rate",
    "compliance",
    "rows_with_violation",
    "ice_monotone_share",
    "mean_violating_mass",
    "pd_spearman",
    "pd_direction_ok",
    "n_pairs",
    "n_violations",
    "n_rows",
]
CURVE_COLUMNS = ["feature", "direction", "bucket", "centre", "centre_dense", "mean", "q10", "q90"]


@dataclass
class MonotonicityResult:
    """Output of :func:`monotonicity_report`.

    ``per_feature``: one row per directed feature, columns :data:`PER_FEATURE_COLUMNS`.
    ``pooled``: violation_rate, compliance, n_pairs, n_violations, rows_with_violation,
    ice_monotone_share, mean_violating_mass, pd_direction_ok_share, n_rows, n_features, eps.
    ``curves``: long table, one row per (feature, bucket), columns :data:`CURVE_COLUMNS`
    (``centre`` in raw units from ``NumericalFeature.centres``).
    """

    per_feature: pd.DataFrame
    pooled: dict[str, Any]
    curves: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)

    def metrics(self) -> dict[str, Any]:
        """Flat JSON-ready dict: ``pooled/<key>`` and ``<feature>/<column>``."""
        return flat_metrics(self.pooled, self.per_feature)


def flat_metrics(pooled: dict[str, Any], per_feature: pd.DataFrame) -> dict[str, Any]:
    """``pooled/<key>`` and ``<feature>/<column>`` as python scalars (JSON-ready), for every result table."""
    py = lambda v: v.item() if isinstance(v, np.generic) else v  # noqa: E731
    out: dict[str, Any] = {f"pooled/{k}": py(v) for k, v in pooled.items()}
    for row in per_feature.to_dict("records"):
        out.update({f"{row['feature']}/{k}": py(v) for k, v in row.items() if k != "feature"})
    return out


def score_batched(
    scorer: Scorer, cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray, chunk_rows: int = DEFAULT_CHUNK_ROWS
) -> np.ndarray:
    """Call ``scorer`` on row chunks of at most ``chunk_rows`` rows; returns (N,) float64."""
    n = dense.shape[0]
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, chunk_rows):
        stop = min(n, start + chunk_rows)
        p = np.asarray(scorer(cat[start:stop], dense[start:stop], bucket[start:stop]), dtype=np.float64)
        out[start:stop] = p.reshape(-1)
    return out


def ice_matrix(
    scorer: Scorer,
    cat: np.ndarray,
    dense: np.ndarray,
    bucket: np.ndarray,
    k: int,
    centres_dense: np.ndarray,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """Predictions with numerical feature ``k`` of every row moved to every bucket centre: (N, B).

    Moved inputs are built per chunk of ``chunk_rows // B`` rows by repetition (no per-row Python).
    """
    n = dense.shape[0]
    centres = np.asarray(centres_dense, dtype=np.float32)
    n_b = centres.size
    rows_per_chunk = max(1, chunk_rows // max(n_b, 1))
    out = np.empty((n, n_b), dtype=np.float64)
    for start in range(0, n, rows_per_chunk):
        stop = min(n, start + rows_per_chunk)
        c = stop - start
        cat_rep = np.repeat(cat[start:stop], n_b, axis=0)
        dense_rep = np.repeat(dense[start:stop], n_b, axis=0)
        bucket_rep = np.repeat(bucket[start:stop], n_b, axis=0)
        dense_rep[:, k] = np.tile(centres, c)
        bucket_rep[:, k] = np.tile(np.arange(n_b, dtype=bucket_rep.dtype), c)
        p = np.asarray(scorer(cat_rep, dense_rep, bucket_rep), dtype=np.float64).reshape(c, n_b)
        out[start:stop] = p
    return out


def neighbour_violations(
    ice: np.ndarray, fx: np.ndarray, current_bucket: np.ndarray, direction: int, eps: float = DEFAULT_EPS
) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Neighbour-move pairs and violations from an ICE matrix.

    Returns ``(n_pairs, n_violations, evaluated_mask, row_violated)`` where ``evaluated_mask`` marks
    rows in a real bucket (missing bucket / out-of-range skipped) and ``row_violated`` marks rows with
    at least one violating pair.
    """
    n, n_b = ice.shape
    b = np.asarray(current_bucket, dtype=np.int64)
    ok = (b >= 0) & (b < n_b)
    rows = np.nonzero(ok)[0]
    bb = b[rows]
    f = fx[rows]
    has_up = bb + 1 < n_b
    has_down = bb >= 1
    up = ice[rows, np.minimum(bb + 1, n_b - 1)]
    down = ice[rows, np.maximum(bb - 1, 0)]
    viol_up = has_up & (direction * (up - f) < -eps)
    viol_down = has_down & (direction * (f - down) < -eps)
    n_pairs = int(has_up.sum() + has_down.sum())
    n_viol = int(viol_up.sum() + viol_down.sum())
    row_violated = np.zeros(n, dtype=bool)
    row_violated[rows] = viol_up | viol_down
    return n_pairs, n_viol, ok, row_violated


def ice_monotone_stats(ice: np.ndarray, direction: int, eps: float = DEFAULT_EPS) -> tuple[np.ndarray, np.ndarray]:
    """Per row: whether the ICE curve is monotone in ``direction`` (within ε) and its violating mass."""
    wrong = -direction * np.diff(ice, axis=1)  # > 0 where a step goes the wrong way
    monotone = np.all(wrong <= eps, axis=1)
    mass = np.maximum(wrong, 0.0).sum(axis=1)
    return monotone, mass


def _spearman(y: np.ndarray) -> float:
    if y.size < 2 or np.all(y == y[0]) or not np.all(np.isfinite(y)):
        return float("nan")
    return float(spearmanr(np.arange(y.size), y).statistic)


@dataclass(frozen=True)
class SweepRows:
    """The rows a report sweeps, as contiguous arrays of the dtypes a scorer takes (every report here
    and in :mod:`.raw_grid` copies its sample to these once, then moves one column at a time)."""

    cat: np.ndarray
    dense: np.ndarray
    bucket: np.ndarray

    @classmethod
    def of(cls, cat: np.ndarray, dense: np.ndarray, bucket: np.ndarray, spec: FeatureSpec) -> SweepRows:
        """Contiguous int64 / float32 / int64 copies (views where they already are); refused when the
        dense inputs do not have one column per numerical feature of ``spec``."""
        if dense.shape[1] != len(spec.numerical):
            raise ValueError(f"dense has {dense.shape[1]} columns, spec has {len(spec.numerical)} numerical features")
        return cls(
            cat=np.ascontiguousarray(cat, dtype=np.int64),
            dense=np.ascontiguousarray(dense, dtype=np.float32),
            bucket=np.ascontiguousarray(bucket, dtype=np.int64),
        )

    def __len__(self) -> int:
        return int(self.dense.shape[0])


def _sample(inputs: ModelInputs, spec: FeatureSpec, max_rows: int | None, seed: int) -> SweepRows:
    """All rows of ``inputs``, or a sorted random subset of ``max_rows`` of them drawn with ``seed``."""
    n_total = len(inputs)
    if max_rows is not None and max_rows < n_total:
        idx = np.sort(np.random.default_rng(seed).choice(n_total, size=max_rows, replace=False))
        return SweepRows.of(inputs.cat[idx], inputs.dense[idx], inputs.bucket[idx], spec)
    return SweepRows.of(inputs.cat, inputs.dense, inputs.bucket, spec)


@dataclass(frozen=True)
class _FeatureMeasure:
    """One directed feature's ``per_feature`` row and curve, and what the pooled figures add up."""

    row: dict[str, Any]
    curve: pd.DataFrame
    n_pairs: int
    n_violations: int
    row_violated: np.ndarray


def _measure_feature(
    scorer: Scorer,
    rows: SweepRows,
    fx: np.ndarray,
    k: int,
    feat: NumericalFeature,
    eps: float,
    chunk_rows: int,
    quantiles: tuple[float, float],
) -> _FeatureMeasure:
    """Sweep directed feature ``k`` over its bucket centres and measure its neighbour violations, ICE
    monotone share and PD curve (NaN shares for a one-bucket feature: nothing is measurable)."""
    n = len(rows)
    d = int(np.sign(feat.direction))
    ice = ice_matrix(scorer, rows.cat, rows.dense, rows.bucket, k, np.asarray(feat.centres_dense), chunk_rows)
    n_pairs, n_viol, evaluated, row_viol = neighbour_violations(ice, fx, rows.bucket[:, k], d, eps)
    monotone, mass = ice_monotone_stats(ice, d, eps)
    pd_mean = ice.mean(axis=0) if n else np.full(ice.shape[1], np.nan)
    rho = _spearman(pd_mean)
    rate = n_viol / n_pairs if n_pairs else float("nan")
    n_eval = int(evaluated.sum())
    measurable = feat.n_buckets >= 2
    row = {
        "feature": feat.name,
        "direction": d,
        "violation_rate": rate,
        "compliance": 1.0 - rate,
        "rows_with_violation": float(row_viol.sum() / n_eval) if n_eval and measurable else float("nan"),
        "ice_monotone_share": float(monotone.mean()) if n and measurable else float("nan"),
        "mean_violating_mass": float(mass.mean()) if n and measurable else float("nan"),
        "pd_spearman": rho,
        "pd_direction_ok": bool(np.isfinite(rho) and np.sign(rho) == d),
        "n_pairs": n_pairs,
        "n_violations": n_viol,
        "n_rows": n_eval,
    }
    qlo, qhi = np.quantile(ice, quantiles, axis=0) if n else (pd_mean, pd_mean)
    curve = pd.DataFrame(
        {
            "feature": feat.name,
            "direction": d,
            "bucket": np.arange(ice.shape[1]),
            "centre": np.asarray(feat.centres, dtype=np.float64),
            "centre_dense": np.asarray(feat.centres_dense, dtype=np.float64),
            "mean": pd_mean,
            "q10": qlo,
            "q90": qhi,
        }
    )
    return _FeatureMeasure(row, curve, n_pairs, n_viol, row_viol)


def _pooled(
    measures: list[_FeatureMeasure], per_feature: pd.DataFrame, spec: FeatureSpec, n: int, eps: float
) -> dict[str, Any]:
    """The pooled figures over the directed features; ICE and PD averages leave out one-bucket features."""
    any_violation = np.zeros(n, dtype=bool)
    for measure in measures:
        any_violation |= measure.row_violated
    total_pairs = sum(m.n_pairs for m in measures)
    total_viol = sum(m.n_violations for m in measures)
    one_bucket = {f.name for f in spec.directed if f.n_buckets < 2}
    measured = per_feature[~per_feature["feature"].isin(one_bucket)]
    pooled_rate = total_viol / total_pairs if total_pairs else float("nan")
    return {
        "violation_rate": pooled_rate,
        "compliance": 1.0 - pooled_rate,
        "n_pairs": int(total_pairs),
        "n_violations": int(total_viol),
        "rows_with_violation": float(any_violation.mean()) if n and measures else float("nan"),
        "ice_monotone_share": float(measured["ice_monotone_share"].mean()) if len(measured) else float("nan"),
        "mean_violating_mass": float(measured["mean_violating_mass"].mean()) if len(measured) else float("nan"),
        "pd_direction_ok_share": float(measured["pd_direction_ok"].mean()) if len(measured) else float("nan"),
        "n_rows": int(n),
        "n_features": len(measures),
        "eps": float(eps),
    }


def monotonicity_report(
    scorer: Scorer,
    inputs: ModelInputs,
    spec: FeatureSpec,
    eps: float = DEFAULT_EPS,
    max_rows: int | None = None,
    seed: int = 0,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
    quantiles: tuple[float, float] = (0.1, 0.9),
) -> MonotonicityResult:
    """All monotonicity metrics of one model on one split, for every directed feature of ``spec``.

    ``max_rows``: evaluate a random subset of that many rows (drawn with ``seed``); ``chunk_rows``:
    the most rows passed to one scorer call. Cost: ``N·(1 + Σ_k B_k)`` scored rows.
    """
    rows = _sample(inputs, spec, max_rows, seed)
    n = len(rows)
    fx = score_batched(scorer, rows.cat, rows.dense, rows.bucket, chunk_rows)
    measures = [
        _measure_feature(scorer, rows, fx, k, spec.numerical[k], eps, chunk_rows, quantiles)
        for k in spec.directed_indices()
    ]
    per_feature = pd.DataFrame([m.row for m in measures], columns=PER_FEATURE_COLUMNS)
    curves = [m.curve for m in measures]
    curve_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    return MonotonicityResult(
        per_feature=per_feature,
        pooled=_pooled(measures, per_feature, spec, n, eps),
        curves=curve_df,
        params={"eps": eps, "max_rows": max_rows, "seed": seed, "chunk_rows": chunk_rows},
    )


def true_direction_agreement(pd_curves: pd.DataFrame, true_directions: dict[str, int]) -> pd.DataFrame:
    """Agreement of each PD curve's trend with a synthetic generator's true direction.

    ``pd_curves``: the ``curves`` table of :func:`monotonicity_report` (columns feature, bucket, mean).
    Returns one row per feature of ``true_directions`` found in the curves: ``feature,
    true_direction, pd_spearman, agrees`` (``agrees`` = sign(ρ) == true direction; a true direction
    of 0 agrees when |ρ| < 0.5). The overall agreement is ``result["agrees"].mean()``.
    """
    out = []
    for name, true_d in true_directions.items():
        sub = pd_curves[pd_curves["feature"] == name].sort_values("bucket")
        if sub.empty:
            continue
        rho = _spearman(sub["mean"].to_numpy(np.float64))
        if true_d == 0:
            agrees = bool(not np.isfinite(rho) or abs(rho) < 0.5)
        else:
            agrees = bool(np.isfinite(rho) and np.sign(rho) == np.sign(true_d))
        out.append({"feature": name, "true_direction": int(true_d), "pd_spearman": rho, "agrees": agrees})
    return pd.DataFrame(out, columns=["feature", "true_direction", "pd_spearman", "agrees"])
