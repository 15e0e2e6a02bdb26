"""Fit the train-only transforms (spec §2) on the engine into a :class:`FeatureSpec`.

The fitted spec is the one owner of scaling, bucketing and vocabularies: the model input, the
counterfactual synthesizer and the evaluation all read it, so a moved value, its dense value and its
bucket id never disagree. The fit sees the training split only, through aggregates and the order
statistics of :mod:`.order_statistics`; the rules that hold on any engine (the greedy bucket edges,
the unconstrained-feature report, which columns are categorical) are :mod:`ccss_pipeline.data.transformer`.
The encoding of a split with the fitted spec is :mod:`.encoding`.
"""

from __future__ import annotations

import math

import ibis
import numpy as np

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.relational.encoding import as_text, fits_int64
from ccss_pipeline.data.relational.order_statistics import Column, open_column, quantiles
from ccss_pipeline.data.transformer import categorical_columns, greedy_boundaries, report_unconstrained
from ccss_pipeline.encoding import DENSE_CLIP, apply_transform
from ccss_pipeline.spec import ORACLE_COLUMN, QUANTILE_LEVELS, CategoricalFeature, FeatureSpec, NumericalFeature


def _bucket_medians(column: Column, boundaries: np.ndarray) -> np.ndarray:
    """Median training value per bucket (the mean of the two middle values for an even count, as
    pandas). Buckets are runs of the sorted column, so their middles are order statistics; an empty
    bucket falls back to its edges' midpoint."""
    starts = np.concatenate([[0], column.count_below(boundaries)])
    ends = np.concatenate([starts[1:], [column.n]])
    counts = ends - starts
    filled = counts > 0
    low = np.where(filled, starts + (counts - 1) // 2, 0)
    high = np.where(filled, starts + counts // 2, 0)
    a, b = column.at(low), column.at(high)
    medians = np.where(low == high, a, (a + b) / 2)
    if not filled.all():
        lows = np.concatenate([[column.lo], boundaries])
        highs = np.concatenate([boundaries, [column.hi]])
        medians = np.where(filled, medians, (lows + highs) / 2.0)
    return medians


def _boundary_levels(n_buckets: int) -> np.ndarray:
    return np.linspace(0, 1, n_buckets + 1)[1:-1]


def _boundaries(column: Column, n_buckets: int) -> np.ndarray:
    """Inner bucket edges in raw units (a value equal to an edge goes up), at most ``n_buckets`` buckets.

    - At most ``n_buckets`` distinct values (a discrete count, a rating): one bucket per value.
    - Otherwise equal-frequency quantile edges, or :func:`greedy_boundaries` when ties collapse them.
    """
    if column.distinct <= n_buckets:
        return column.distinct_values()[1:]
    edges = np.unique(quantiles(column, _boundary_levels(n_buckets)))
    edges = edges[edges > column.lo]
    if edges.size == n_buckets - 1:
        return edges
    return greedy_boundaries(*column.value_counts(), n_buckets)


def boundaries(table: ibis.Table, column: str, n_buckets: int) -> np.ndarray:
    """Inner bucket edges of the finite values of ``column`` (the rule of ``_boundaries``)."""
    with open_column(table, column, n_buckets) as sorted_column:
        if sorted_column.n == 0:
            return np.empty(0)
        return _boundaries(sorted_column, n_buckets)


def _winsor_levels(outlier_quantile: float) -> np.ndarray:
    return np.array([outlier_quantile, 1.0 - outlier_quantile]) if outlier_quantile > 0 else np.empty(0)


def _winsorized_scale(column: Column, transform: str, outlier_quantile: float) -> tuple[float, float]:
    """Mean and population std of the transformed values, winsorized at ``outlier_quantile``."""
    clip = None
    if outlier_quantile > 0:
        lo, hi = quantiles(column, _winsor_levels(outlier_quantile), transform)
        clip = (lo, hi) if np.isfinite([lo, hi]).all() else None
    mean, std = column.scale(transform, clip)
    return mean, (std if std > 1e-12 else 1.0)


def _fit_numerical(
    train: ibis.Table, name: str, direction: int, transform: str, cfg: FeatureConfig
) -> NumericalFeature:
    with open_column(train, name, cfg.n_buckets) as column:
        return _fit_sorted(column, name, direction, transform, cfg)


def _fit_sorted(column: Column, name: str, direction: int, transform: str, cfg: FeatureConfig) -> NumericalFeature:
    n, lo, hi = column.n, column.lo, column.hi
    if n == 0:
        raise ValueError(f"numerical feature '{name}' has no finite value in the training split")
    sketch_levels = np.linspace(0.0, 1.0, QUANTILE_LEVELS)
    column.prefetch(
        _winsor_levels(cfg.outlier_quantile),
        sketch_levels,
        _boundary_levels(cfg.n_buckets) if column.distinct > cfg.n_buckets else np.empty(0),
    )
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = _winsorized_scale(column, transform, cfg.outlier_quantile)
        edges = _boundaries(column, cfg.n_buckets)
        sketch = quantiles(column, sketch_levels)
    if not (math.isfinite(mean) and math.isfinite(std) and np.isfinite(edges).all() and np.isfinite(sketch).all()):
        raise ValueError(
            f"numerical feature '{name}': its training values (from {lo:.6g} to {hi:.6g}) "
            "overflow float64 arithmetic when scaled or bucketed; rescale the column (e.g. transform: log1p, "
            "or other units) or drop the extreme rows"
        )
    centres = _bucket_medians(column, edges)
    support = column.distinct_values() if column.distinct <= cfg.discrete_max_values else np.empty(0)
    starts = np.concatenate([[0], column.count_below(edges), [n]])
    with np.errstate(over="ignore"):
        centres_dense = np.clip((apply_transform(centres, transform) - mean) / std, -DENSE_CLIP, DENSE_CLIP)
    return NumericalFeature(
        name=name,
        direction=int(direction),
        transform=transform,
        mean=mean,
        std=std,
        boundaries=edges.tolist(),
        centres=centres.tolist(),
        centres_dense=centres_dense.tolist(),
        quantiles=sketch.tolist(),
        support=support.tolist(),
        bucket_counts=np.diff(starts).astype(int).tolist(),
    )


def _fit_vocabulary(train: ibis.Table, name: str, min_count: int) -> CategoricalFeature:
    """Ids seen at least ``min_count`` times in train, by descending count then value (deterministic)."""
    present = train.filter(train[name].notnull())
    if fits_int64(present[name].type()):  # grouped as integers, only the kept ids cast to text
        counts = present.group_by(value=present[name]).aggregate(count=present.count())
        kept_ids = counts.filter(counts["count"] >= min_count)
        kept = kept_ids.select(value=as_text(kept_ids["value"]), count=kept_ids["count"]).to_pandas()
    else:
        text = as_text(present[name]).name("value")
        counts = present.group_by(text).aggregate(count=present.count())
        kept = counts.filter(counts["count"] >= min_count).to_pandas()
    order = sorted(
        zip(kept["value"].astype(str), kept["count"].astype(int), strict=True), key=lambda kv: (-kv[1], kv[0])
    )
    vocabulary = [k for k, _ in order]
    return CategoricalFeature(name=name, vocab_size=len(vocabulary) + 1, vocabulary=vocabulary)


def fit_feature_spec(train: ibis.Table, schema: SchemaConfig, cfg: FeatureConfig) -> FeatureSpec:
    """Fit every transform on the training table and return the spec that encodes them."""
    categorical = [_fit_vocabulary(train, c, cfg.min_category_count) for c in categorical_columns(schema)]
    numerical = [_fit_numerical(train, f.name, f.direction, f.transform, cfg) for f in schema.all_numerical]
    report_unconstrained(numerical, cfg)
    return FeatureSpec(
        categorical=categorical,
        numerical=numerical,
        has_oracle=ORACLE_COLUMN in train.columns,
        source=schema.source,
        label_name=schema.label,
        has_user=schema.user is not None,
        has_item=schema.item is not None,
    )
