"""Raw-grid monotonicity (spec §6, the headline figures), model-agnostic.

Why a second measurement: :mod:`ccss_pipeline.evaluation.monotonicity` moves rows to bucket centres,
which is exactly the move the margin loss trains on, so a model can pass it while still being
non-monotone *between* centres or *at* the bucket edges. Here the raw value of each directed feature
is swept over a grid of quantiles of its training values (the sketch ``NumericalFeature.quantiles``)
and each value is encoded by the fitted transformer as at inference (:func:`encode_numerical`), so
the dense input and the bucket id move together, as they do for real inputs.

For a directed feature k (direction d) and every sampled row, the ICE curve over the grid gives steps
between consecutive grid values; a step is wrong when ``d·(p[j+1] − p[j]) < −ε``. Steps are split
into those inside one bucket (only the dense path moves) and those crossing an edge. The edge test
compares, at each inner boundary, the value just below it with the boundary itself: the dense input
barely moves while the bucket id moves by one, which isolates the bucket embedding. A discrete feature
(a count: :attr:`NumericalFeature.support`) is swept over its observed values instead, and its edge test
is the real step from the largest observed value below each boundary to the smallest at or above it.

The scorer is ``scorer(cat, dense, bucket) -> prob`` as in :mod:`monotonicity`; every call holds at
most ``chunk_rows`` rows. Cost: ``rows · Σ_k (G_k + 2·E_k)`` scored rows (E = inner boundaries).
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.encoding import encode_numerical
from ccss_pipeline.evaluation.monotonicity import DEFAULT_CHUNK_ROWS, DEFAULT_EPS, Scorer, SweepRows, flat_metrics
from ccss_pipeline.spec import FeatureSpec, NumericalFeature, RowSample

RAW_GRID_COLUMNS = [
    "feature", "direction", "grid", "n_rows", "n_levels", "n_steps", "n_wrong_steps", "wrong_step_share",
    "n_steps_inside", "wrong_step_share_inside", "n_steps_crossing", "wrong_step_share_crossing",
    "monotone_row_share", "mean_wrong_mass", "edge_pairs", "edge_wrong", "edge_wrong_share",
    "worst_edge", "worst_edge_wrong_share", "worst_edge_train_rows",
]  # fmt: skip
#: per-feature columns that are labels, not numbers (left out of the flat metrics)
LABEL_COLUMNS = ("grid", "worst_edge")
CURVE_COLUMNS = ["feature", "direction", "value", "bucket", "crosses_edge", "mean", "q10", "q90"]
EDGE_COLUMNS = [
    "feature", "direction", "boundary", "below", "at", "bucket_below", "bucket_at", "train_rows_below",
    "train_rows_at", "n_rows", "edge_wrong", "edge_wrong_share",
]  # fmt: skip
NAN = float("nan")


def raw_grid(feature: NumericalFeature, levels: int) -> np.ndarray:
    """The raw values the feature is swept over, sorted and distinct.

    A discrete feature (:attr:`NumericalFeature.support`: few distinct training values, such as a count)
    is swept over every value it takes in training, whatever ``levels``: interpolated quantiles would
    test values no row can take (0.849 for a count) and jump over most steps a user makes. A continuous
    feature gets ``levels`` equally spaced quantile levels of the training sketch, de-duplicated
    (repeated values would add zero-length steps).
    """
    if feature.is_discrete:
        return np.asarray(feature.support, dtype=np.float64)
    q = np.asarray(feature.quantiles, dtype=np.float64)
    if q.size == 0:
        raise ValueError(f"numerical feature '{feature.name}' has no quantile sketch; rebuild the feature spec")
    if levels < 1:
        raise ValueError(f"levels must be >= 1, got {levels}")
    grid = np.interp(np.linspace(0.0, 1.0, levels), np.linspace(0.0, 1.0, q.size), q)
    return np.unique(grid)


def grid_kind(feature: NumericalFeature) -> str:
    """Which grid :func:`raw_grid` gives the feature, as the report names it."""
    return "observed values" if feature.is_discrete else "quantiles"


def edge_values(feature: NumericalFeature) -> tuple[np.ndarray, np.ndarray]:
    """``(below, at)`` per inner boundary: a value in the bucket below the edge and one in the bucket at it.

    Continuous feature: just below the edge (``nextafter``) and the edge itself — the dense input is the
    same in float32 and only the bucket id moves. Discrete feature: the largest observed value below the
    edge and the smallest at or above it — the step a user makes across it (a count cannot be 0.9999…);
    two edges with no observed value between them give one step, counted once.
    """
    at = np.asarray(feature.boundaries, dtype=np.float64)
    if not feature.is_discrete:
        return np.nextafter(at, -np.inf), at
    support = np.asarray(feature.support, dtype=np.float64)
    i = np.searchsorted(support, at, side="left")  # first observed value >= the edge
    real = (i > 0) & (i < support.size)
    steps = np.unique(i[real])
    return support[steps - 1], support[steps]


@dataclass
class RawGridResult:
    """Output of :func:`raw_grid_report`.

    ``per_feature``: one row per directed feature (:data:`RAW_GRID_COLUMNS`); ``pooled``: the same
    shares over all directed features plus ``max_feature_wrong_step_share``; ``curves``: the ICE band
    (mean, q10, q90 across rows) per feature and grid value (:data:`CURVE_COLUMNS`); ``per_edge``: the
    edge test per boundary, beside the training rows of the buckets on each side (:data:`EDGE_COLUMNS`),
    to tell which edges fail and whether they are the thinly populated ones.
    """

    per_feature: pd.DataFrame
    pooled: dict[str, Any]
    curves: pd.DataFrame
    params: dict[str, Any] = field(default_factory=dict)
    per_edge: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=EDGE_COLUMNS))

    def metrics(self) -> dict[str, Any]:
        """Flat dict of python numbers: ``pooled/<key>`` and ``<feature>/<column>`` (the labels — the grid's
        kind, the worst edge — stay in the per-feature table)."""
        return flat_metrics(self.pooled, self.per_feature.drop(columns=list(LABEL_COLUMNS)))


def _share(num: int, den: int) -> float:
    return num / den if den else NAN


def sweep_matrix(
    scorer: Scorer,
    cat: np.ndarray,
    dense: np.ndarray,
    bucket: np.ndarray,
    k: int,
    values_dense: np.ndarray,
    values_bucket: np.ndarray,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> np.ndarray:
    """Predictions with numerical input ``k`` of every row set to every (dense, bucket) value: (N, G).

    The (row, value) pairs are flattened row-major and scored in blocks of ``chunk_rows`` (the block's
    copies are built by index repetition, no per-row Python), so even G > ``chunk_rows`` is bounded.
    """
    n, g = dense.shape[0], len(values_dense)
    vd = np.asarray(values_dense, dtype=np.float32)
    vb = np.asarray(values_bucket, dtype=np.int64)
    out = np.empty(n * g, dtype=np.float64)
    step = max(1, int(chunk_rows))
    for start in range(0, n * g, step):
        stop = min(n * g, start + step)
        flat = np.arange(start, stop)
        r, j = np.divmod(flat, g)
        d_c, b_c = dense[r], bucket[r]  # fancy indexing copies
        d_c[:, k] = vd[j]
        b_c[:, k] = vb[j]
        out[start:stop] = np.asarray(scorer(cat[r], d_c, b_c), dtype=np.float64).reshape(-1)
    return out.reshape(n, g)


def _edge_rows(
    feature: NumericalFeature, d: int, below: np.ndarray, at: np.ndarray, edge_ice: np.ndarray, eps: float
) -> pd.DataFrame:
    """One row per edge step of ``feature``: where it is, the training rows beside it, how often it is wrong."""
    n = edge_ice.shape[0]
    wrong = (d * (edge_ice[:, 1::2] - edge_ice[:, 0::2]) < -eps).sum(axis=0)
    _, b_below = encode_numerical(below, feature)
    _, b_at = encode_numerical(at, feature)
    counts = np.asarray(feature.bucket_counts, np.int64)
    rows_of = (lambda b: counts[b]) if counts.size == feature.n_buckets else (lambda b: np.full(b.size, -1))
    return pd.DataFrame(
        {
            "feature": feature.name,
            "direction": d,
            "boundary": b_at - 1,
            "below": below,
            "at": at,
            "bucket_below": b_below,
            "bucket_at": b_at,
            "train_rows_below": rows_of(b_below),
            "train_rows_at": rows_of(b_at),
            "n_rows": n,
            "edge_wrong": wrong.astype(np.int64),
            "edge_wrong_share": wrong / n if n else np.full(wrong.size, NAN),
        },  # fmt: skip
        columns=EDGE_COLUMNS,
    )


def _worst_edge(edges: pd.DataFrame, discrete: bool) -> dict[str, Any]:
    """The feature's edge with the largest wrong share — "4 → 5" for a discrete feature's step, "at 0.74"
    for a continuous one's boundary —, the share, and the fewer of the training rows on its two sides
    (−1 when the spec does not record them)."""
    if edges.empty or edges["edge_wrong_share"].isna().all():
        return {"worst_edge": "", "worst_edge_wrong_share": NAN, "worst_edge_train_rows": -1}
    worst = edges.iloc[int(np.nanargmax(edges["edge_wrong_share"].to_numpy(np.float64)))]
    return {
        "worst_edge": f"{worst['below']:.6g} → {worst['at']:.6g}" if discrete else f"at {worst['at']:.6g}",
        "worst_edge_wrong_share": float(worst["edge_wrong_share"]),
        "worst_edge_train_rows": int(min(worst["train_rows_below"], worst["train_rows_at"])),
    }


def _feature_stats(ice: np.ndarray, edge_ice: np.ndarray, grid_bucket: np.ndarray, d: int, eps: float):
    """Per-feature counts and shares from the grid ICE matrix and the (below, at) edge matrix."""
    n, g = ice.shape
    delta = d * np.diff(ice, axis=1)  # (n, G-1); < 0 is the wrong way
    wrong = delta < -eps
    cross = grid_bucket[1:] != grid_bucket[:-1]
    n_cross, n_inside = int(cross.sum()), int((~cross).sum())
    wrong_cross, wrong_inside = int(wrong[:, cross].sum()), int(wrong[:, ~cross].sum())
    monotone = ~wrong.any(axis=1)
    mass = np.maximum(-delta, 0.0).sum(axis=1)
    edge_delta = d * (edge_ice[:, 1::2] - edge_ice[:, 0::2])
    edge_pairs, edge_wrong = int(edge_delta.size), int((edge_delta < -eps).sum())
    n_steps = n * (g - 1)
    row = {
        "n_rows": n, "n_levels": g, "n_steps": n_steps, "n_wrong_steps": wrong_cross + wrong_inside,
        "wrong_step_share": _share(wrong_cross + wrong_inside, n_steps),
        "n_steps_inside": n * n_inside, "wrong_step_share_inside": _share(wrong_inside, n * n_inside),
        "n_steps_crossing": n * n_cross, "wrong_step_share_crossing": _share(wrong_cross, n * n_cross),
        "monotone_row_share": float(monotone.mean()) if n else NAN,
        "mean_wrong_mass": float(mass.mean()) if n else NAN,
        "edge_pairs": edge_pairs, "edge_wrong": edge_wrong, "edge_wrong_share": _share(edge_wrong, edge_pairs),
    }  # fmt: skip
    return row, monotone, wrong_inside, wrong_cross


@dataclass(frozen=True)
class _StepCounts:
    """What the pooled shares add up over the directed features: grid steps (all, inside one bucket,
    crossing an edge) and edge-test pairs, each with how many went the wrong way."""

    wrong: int = 0
    steps: int = 0
    wrong_inside: int = 0
    inside: int = 0
    wrong_crossing: int = 0
    crossing: int = 0
    edge_wrong: int = 0
    edge_pairs: int = 0

    def __add__(self, other: _StepCounts) -> _StepCounts:
        return _StepCounts(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class _FeatureSweep:
    """One directed feature's ``per_feature`` record, ICE band, edge rows, monotone rows and counts."""

    record: dict[str, Any]
    curve: pd.DataFrame
    edges: pd.DataFrame
    monotone: np.ndarray
    counts: _StepCounts


def _curve(feat: NumericalFeature, d: int, grid: np.ndarray, grid_bucket: np.ndarray, ice: np.ndarray) -> pd.DataFrame:
    """The ICE band (mean, 10 % and 90 % quantiles over the rows) of one feature along its grid."""
    n = ice.shape[0]
    crosses = np.concatenate([[False], grid_bucket[1:] != grid_bucket[:-1]])
    qlo, qhi = np.quantile(ice, (0.1, 0.9), axis=0) if n else (np.full(grid.size, NAN),) * 2
    return pd.DataFrame(
        {
            "feature": feat.name,
            "direction": d,
            "value": grid,
            "bucket": grid_bucket,
            "crosses_edge": crosses,
            "mean": ice.mean(axis=0) if n else np.full(grid.size, NAN),
            "q10": qlo,
            "q90": qhi,
        }  # fmt: skip
    )


def _sweep_feature(
    scorer: Scorer, rows: SweepRows, k: int, feat: NumericalFeature, levels: int, eps: float, chunk_rows: int
) -> _FeatureSweep:
    """Sweep directed feature ``k`` over its raw grid and its edges (encoded as at inference) and measure both."""
    d = int(np.sign(feat.direction))
    grid = raw_grid(feat, levels)
    g_dense, g_bucket = encode_numerical(grid, feat)
    ice = sweep_matrix(scorer, rows.cat, rows.dense, rows.bucket, k, g_dense, g_bucket, chunk_rows)
    below, at = edge_values(feat)
    e_dense, e_bucket = encode_numerical(np.column_stack([below, at]).reshape(-1), feat)
    edge_ice = sweep_matrix(scorer, rows.cat, rows.dense, rows.bucket, k, e_dense, e_bucket, chunk_rows)
    row, monotone, wrong_inside, wrong_cross = _feature_stats(ice, edge_ice, g_bucket, d, eps)
    edges = _edge_rows(feat, d, below, at, edge_ice, eps)
    row.update(_worst_edge(edges, feat.is_discrete))
    counts = _StepCounts(
        wrong=row["n_wrong_steps"], steps=row["n_steps"], wrong_inside=wrong_inside, inside=row["n_steps_inside"],
        wrong_crossing=wrong_cross, crossing=row["n_steps_crossing"], edge_wrong=row["edge_wrong"],
        edge_pairs=row["edge_pairs"],
    )  # fmt: skip
    record = {"feature": feat.name, "direction": d, "grid": grid_kind(feat), **row}
    return _FeatureSweep(record, _curve(feat, d, grid, g_bucket, ice), edges, monotone, counts)


def _pooled(sweeps: list[_FeatureSweep], per_feature: pd.DataFrame, n: int, eps: float, levels: int) -> dict[str, Any]:
    """The shares over all directed features (step counts added up) and the worst feature's share."""
    tot = sum((s.counts for s in sweeps), _StepCounts())
    all_monotone = np.ones(n, dtype=bool)
    for sweep in sweeps:
        all_monotone &= sweep.monotone
    shares = per_feature["wrong_step_share"].dropna()
    return {
        "wrong_step_share": _share(tot.wrong, tot.steps),
        "wrong_step_share_inside": _share(tot.wrong_inside, tot.inside),
        "wrong_step_share_crossing": _share(tot.wrong_crossing, tot.crossing),
        "monotone_row_share": float(all_monotone.mean()) if n and sweeps else NAN,
        "mean_wrong_mass": float(per_feature["mean_wrong_mass"].mean()) if sweeps else NAN,
        "edge_wrong_share": _share(tot.edge_wrong, tot.edge_pairs),
        "max_feature_wrong_step_share": float(shares.max()) if len(shares) else NAN,
        "n_rows": int(n),
        "n_levels": float(per_feature["n_levels"].mean()) if sweeps else NAN,
        "n_features": len(sweeps),
        "n_steps": int(tot.steps),
        "n_wrong_steps": int(tot.wrong),
        "edge_pairs": int(tot.edge_pairs),
        "edge_wrong": int(tot.edge_wrong),
        "eps": float(eps),
        "levels": int(levels),
    }


def raw_grid_report(
    scorer: Scorer,
    inputs: RowSample,
    spec: FeatureSpec,
    levels: int = 200,
    rows: int = 2000,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
    chunk_rows: int = DEFAULT_CHUNK_ROWS,
) -> RawGridResult:
    """Raw-grid ICE and edge-test metrics of one model on one split, for every directed feature.

    ``rows``: a seeded sample (without replacement, kept in row order) shared by all features; all
    rows when ``rows >= len(inputs)``. ``inputs`` may also be a table streamed from parquet
    (:class:`ccss_pipeline.model.streaming.ParquetModelInput`: anything with ``len`` and ``take``). Missing values of the swept feature are simply overwritten.
    """
    n_total = len(inputs)
    idx = np.arange(n_total)
    if rows < n_total:
        idx = np.sort(np.random.default_rng(seed).choice(n_total, size=rows, replace=False))
    sample = inputs.take(idx)  # a table streamed from parquet reads only the row groups holding these rows
    swept = SweepRows.of(sample.cat, sample.dense, sample.bucket, spec)
    sweeps = [
        _sweep_feature(scorer, swept, k, spec.numerical[k], levels, eps, chunk_rows) for k in spec.directed_indices()
    ]
    per_feature = pd.DataFrame([s.record for s in sweeps], columns=RAW_GRID_COLUMNS)
    curves = [s.curve for s in sweeps]
    curve_df = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(columns=CURVE_COLUMNS)
    edges = [s.edges for s in sweeps]
    per_edge = pd.concat(edges, ignore_index=True) if edges else pd.DataFrame(columns=EDGE_COLUMNS)
    return RawGridResult(
        per_feature=per_feature,
        pooled=_pooled(sweeps, per_feature, len(swept), eps, levels),
        curves=curve_df,
        params={"levels": levels, "rows": rows, "seed": seed, "eps": eps, "chunk_rows": chunk_rows},
        per_edge=per_edge,
    )


def wrong_step_share(
    scorer: Scorer,
    inputs: RowSample,
    spec: FeatureSpec,
    levels: int = 100,
    rows: int = 1000,
    seed: int = 0,
    eps: float = DEFAULT_EPS,
) -> float:
    """Pooled raw-grid wrong-step share: a cheap monotonicity objective for the hyper-parameter search."""
    result = raw_grid_report(scorer, inputs, spec, levels=levels, rows=rows, seed=seed, eps=eps)
    return float(result.pooled["wrong_step_share"])
