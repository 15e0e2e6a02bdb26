"""Fit the train-only transforms (spec §2) into a :class:`FeatureSpec`, and apply it to any split.

The fitted spec is the one owner of scaling, bucketing and vocabularies: the model input, the
counterfactual synthesizer and the evaluation all read it, so a moved value, its dense value and its
bucket id never disagree. Fitting sees the training split only.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.lineage import stamp
from ccss_pipeline.spec import (
    GROUP_COLUMN,
    LABEL_COLUMN,
    ORACLE_COLUMN,
    TIME_COLUMN,
    CategoricalFeature,
    FeatureSpec,
    QUANTILE_LEVELS,
    NumericalFeature,
)

logger = logging.getLogger(__name__)

#: Standardized dense values are clipped here so a 1e12 outlier cannot blow up a forward pass.
DENSE_CLIP = 10.0


def apply_transform(values: np.ndarray, transform: str) -> np.ndarray:
    """``log1p`` is applied symmetrically (sign · log1p|x|), equal to log1p for the usual x ≥ 0."""
    values = np.asarray(values, dtype=np.float64)
    if transform == "log1p":
        return np.sign(values) * np.log1p(np.abs(values))
    return values


def robust_scale(transformed: np.ndarray, outlier_quantile: float) -> tuple[float, float]:
    """Mean and std of the transformed training values winsorized at (q, 1 - q).

    Plain mean/std let one 1e12 among thousands of ordinary values set the scale, which squashed
    every ordinary value to the same dense input (test AUC 0.706 -> 0.565 on one such row).
    """
    with np.errstate(over="ignore", invalid="ignore"):
        if outlier_quantile > 0:
            lo, hi = np.quantile(transformed, [outlier_quantile, 1.0 - outlier_quantile], method="linear")
            transformed = np.clip(transformed, lo, hi)
        mean, std = float(transformed.mean()), float(transformed.std())
    return mean, (std if std > 1e-12 else 1.0)


def bucket_boundaries(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner bucket edges in raw units (a value equal to an edge goes up), at most ``n_buckets`` buckets.

    - At most ``n_buckets`` distinct values (a discrete count, a rating): one bucket per value.
    - Otherwise equal-frequency quantile edges; when ties make them collapse (a count that is zero for
      97% of rows gave one bucket, so CCSS never constrained it), a greedy equal-frequency pass over
      the distinct values instead: a heavily tied value gets a bucket of its own and the remaining
      rows share the remaining buckets equally.
    """
    distinct, counts = np.unique(values, return_counts=True)
    if distinct.size <= n_buckets:
        return distinct[1:]
    quantiles = np.unique(np.quantile(values, np.linspace(0, 1, n_buckets + 1)[1:-1], method="linear"))
    edges = quantiles[quantiles > distinct[0]]  # an edge at the minimum would leave bucket 0 empty
    if edges.size == n_buckets - 1:
        return edges
    cumulative = np.cumsum(counts)
    total, done, start, left, greedy = int(cumulative[-1]), 0, 0, n_buckets, []
    while left > 1 and start < distinct.size - 1:
        target = done + (total - done) / left
        end = max(int(np.searchsorted(cumulative, target, side="left")), start)
        if end >= distinct.size - 1:
            break
        greedy.append(distinct[end + 1])  # the next bucket starts at the next distinct value
        done, start, left = int(cumulative[end]), end + 1, left - 1
    return np.asarray(greedy, dtype=np.float64)


def _fit_numerical(name: str, values: np.ndarray, direction: int, transform: str, n_buckets: int,
                   outlier_quantile: float = 0.0) -> NumericalFeature:
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        raise ValueError(f"numerical feature '{name}' has no finite value in the training split")
    mean, std = robust_scale(apply_transform(finite, transform), outlier_quantile)
    with np.errstate(over="ignore", invalid="ignore"):
        boundaries = bucket_boundaries(finite, n_buckets)
        sketch = np.quantile(finite, np.linspace(0.0, 1.0, QUANTILE_LEVELS), method="linear")
    if not (np.isfinite([mean, std]).all() and np.isfinite(boundaries).all() and np.isfinite(sketch).all()):
        raise ValueError(
            f"numerical feature '{name}': its training values (from {finite.min():.6g} to {finite.max():.6g}) "
            "overflow float64 arithmetic when scaled or bucketed; rescale the column (e.g. transform: log1p, "
            "or other units) or drop the extreme rows"
        )
    bucket = np.searchsorted(boundaries, finite, side="right")
    centres = _bucket_medians(finite, bucket, boundaries)
    with np.errstate(over="ignore"):
        centres_dense = np.clip((apply_transform(centres, transform) - mean) / std, -DENSE_CLIP, DENSE_CLIP)
    return NumericalFeature(
        name=name,
        direction=int(direction),
        transform=transform,
        mean=mean,
        std=std,
        boundaries=boundaries.tolist(),
        centres=centres.tolist(),
        centres_dense=centres_dense.tolist(),
        quantiles=sketch.tolist(),
    )


def _bucket_medians(values: np.ndarray, bucket: np.ndarray, boundaries: np.ndarray) -> np.ndarray:
    """Median training value per bucket; an empty bucket falls back to its edges' midpoint."""
    n = len(boundaries) + 1
    medians = pd.Series(values).groupby(bucket).median().reindex(range(n)).to_numpy()
    if np.isnan(medians).any():
        lo = np.concatenate([[values.min()], boundaries])
        hi = np.concatenate([boundaries, [values.max()]])
        medians = np.where(np.isnan(medians), (lo + hi) / 2.0, medians)
    return medians


def _fit_vocabulary(name: str, values: pd.Series, min_count: int) -> CategoricalFeature:
    """Ids seen at least ``min_count`` times in train, by descending count then value (deterministic)."""
    counts = values.dropna().astype(str).value_counts()
    kept = counts[counts >= min_count]
    order = sorted(kept.items(), key=lambda kv: (-kv[1], kv[0]))
    vocabulary = [k for k, _ in order]
    return CategoricalFeature(name=name, vocab_size=len(vocabulary) + 1, vocabulary=vocabulary)


class UnconstrainedFeatureError(ValueError):
    """A directed feature has one bucket, so CCSS cannot constrain it, and the configuration says fail."""


def _report_unconstrained(numerical: list[NumericalFeature], cfg: FeatureConfig) -> None:
    """A directed feature with one bucket (a single training value) cannot be moved to a neighbouring
    bucket, so CCSS never constrains it: a loud warning, or an error with ``unconstrained_directed: fail``."""
    stuck = [f.name for f in numerical if f.direction != 0 and f.n_buckets < 2]
    if not stuck:
        return
    message = (f"directed feature(s) {stuck} have a single value in the training split, hence one bucket: CCSS "
               "cannot constrain them and their monotonicity is not measurable (the report marks them)")
    if cfg.unconstrained_directed == "fail":
        raise UnconstrainedFeatureError(message + "; feature_engineering.unconstrained_directed is 'fail'")
    logger.warning("%s; set feature_engineering.unconstrained_directed: fail to stop instead", message)


def categorical_columns(schema: SchemaConfig) -> list[str]:
    """User and item ids first (categorical inputs where the schema has them), then its categoricals."""
    ids = [canonical for canonical, column in (("user", schema.user), ("item", schema.item)) if column]
    return [*ids, *[c for c in schema.categorical if c not in (schema.user, schema.item)]]


def fit_feature_spec(train: pd.DataFrame, schema: SchemaConfig, cfg: FeatureConfig) -> FeatureSpec:
    """Fit every transform on the training split and return the spec that encodes them."""
    categorical = [_fit_vocabulary(c, train[c], cfg.min_category_count) for c in categorical_columns(schema)]
    numerical = [
        _fit_numerical(f.name, train[f.name].to_numpy(np.float64), f.direction, f.transform, cfg.n_buckets,
                       cfg.outlier_quantile)
        for f in schema.all_numerical
    ]
    _report_unconstrained(numerical, cfg)
    return FeatureSpec(
        categorical=categorical,
        numerical=numerical,
        has_oracle=ORACLE_COLUMN in train.columns,
        source=schema.source,
        label_name=schema.label,
        has_user=schema.user is not None,
        has_item=schema.item is not None,
    )


def encode_numerical(values: np.ndarray, feature: NumericalFeature) -> tuple[np.ndarray, np.ndarray]:
    """(dense, bucket) of raw values; missing values go to the missing bucket with dense 0."""
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    safe = np.where(missing, 0.0, values)
    with np.errstate(over="ignore"):  # an overflow is ±inf, clipped like any large value
        dense = np.clip((apply_transform(safe, feature.transform) - feature.mean) / feature.std, -DENSE_CLIP, DENSE_CLIP)
    bucket = np.searchsorted(np.asarray(feature.boundaries), safe, side="right")
    dense[missing] = 0.0
    bucket[missing] = feature.missing_bucket
    return dense.astype(np.float32), bucket.astype(np.int64)


def encode_categorical(values: pd.Series, feature: CategoricalFeature) -> np.ndarray:
    """Vocabulary index + 1; unseen or missing ids map to 0 (out of vocabulary)."""
    index = pd.Index(feature.vocabulary)
    codes = index.get_indexer(values.astype(str).where(values.notna(), None))
    return (codes + 1).astype(np.int64)


def to_model_input(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model-ready table of one split (columns documented in :mod:`ccss_pipeline.spec`)."""
    out = {
        LABEL_COLUMN: frame[LABEL_COLUMN].to_numpy(np.int8),
        GROUP_COLUMN: frame[GROUP_COLUMN].to_numpy(),
        TIME_COLUMN: frame[TIME_COLUMN].to_numpy(np.int64),
    }
    for cat in spec.categorical:
        out[cat.column] = encode_categorical(frame[cat.name], cat)
    for num in spec.numerical:
        out[num.dense_column], out[num.bucket_column] = encode_numerical(frame[num.name].to_numpy(), num)
    if ORACLE_COLUMN in frame.columns:
        out[ORACLE_COLUMN] = frame[ORACLE_COLUMN].to_numpy(np.float64)
    return stamp(pd.DataFrame(out), spec)  # later stages refuse it beside another spec
