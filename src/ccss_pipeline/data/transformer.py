"""Fit the train-only transforms (spec §2) into a :class:`FeatureSpec`, and apply it to any split.

The fitted spec is the one owner of scaling, bucketing and vocabularies: the model input, the
counterfactual synthesizer and the evaluation all read it, so a moved value, its dense value and its
bucket id never disagree. Fitting sees the training split only.

The fit and the table encoding have one implementation, on the engine
(:mod:`ccss_pipeline.data.relational.transformer`); the functions here run it on an in-memory frame
(through DuckDB) for callers that hold one: scoring chunks, notebooks, tests. ``encode_numerical`` /
``encode_categorical`` encode arrays of moved values in the model's hot path (NumPy; the tests hold
them equal to the engine's encoding).
"""

from __future__ import annotations

import logging
import re

import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.lineage import stamp
from ccss_pipeline.spec import CategoricalFeature, FeatureSpec, NumericalFeature

logger = logging.getLogger(__name__)

#: Standardized dense values are clipped here so a 1e12 outlier cannot blow up a forward pass.
DENSE_CLIP = 10.0


def apply_transform(values: np.ndarray, transform: str) -> np.ndarray:
    """``log1p`` is applied symmetrically (sign · log1p|x|), equal to log1p for the usual x ≥ 0."""
    values = np.asarray(values, dtype=np.float64)
    if transform == "log1p":
        return np.sign(values) * np.log1p(np.abs(values))
    return values


def greedy_boundaries(distinct: np.ndarray, counts: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner edges when tied quantile edges collapse: a greedy equal-frequency pass over the sorted
    distinct values and their counts. A heavily tied value gets a bucket of its own and the remaining
    rows share the remaining buckets equally (a count that is zero for 97% of rows gave one bucket,
    so CCSS never constrained it)."""
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


def bucket_boundaries(values: np.ndarray, n_buckets: int) -> np.ndarray:
    """Inner bucket edges in raw units (a value equal to an edge goes up), at most ``n_buckets`` buckets.

    - At most ``n_buckets`` distinct values (a discrete count, a rating): one bucket per value.
    - Otherwise equal-frequency quantile edges, or :func:`greedy_boundaries` when ties collapse them.
    """
    import ibis

    from ccss_pipeline.data.relational.transformer import boundaries

    frame = pd.DataFrame({"v": np.asarray(values, dtype=np.float64)})
    return boundaries(ibis.memtable(frame), "v", n_buckets)


class UnconstrainedFeatureError(ValueError):
    """A directed feature has one bucket, so CCSS cannot constrain it, and the configuration says fail."""


def report_unconstrained(numerical: list[NumericalFeature], cfg: FeatureConfig) -> None:
    """A directed feature with one bucket (a single training value) cannot be moved to a neighbouring
    bucket, so CCSS never constrains it: a loud warning, or an error with ``unconstrained_directed: fail``."""
    stuck = [f.name for f in numerical if f.direction != 0 and f.n_buckets < 2]
    if not stuck:
        return
    message = (
        f"directed feature(s) {stuck} have a single value in the training split, hence one bucket: CCSS "
        "cannot constrain them and their monotonicity is not measurable (the report marks them)"
    )
    if cfg.unconstrained_directed == "fail":
        raise UnconstrainedFeatureError(message + "; feature_engineering.unconstrained_directed is 'fail'")
    logger.warning("%s; set feature_engineering.unconstrained_directed: fail to stop instead", message)


def categorical_columns(schema: SchemaConfig) -> list[str]:
    """User and item ids first (categorical inputs where the schema has them), then its categoricals."""
    ids = [canonical for canonical, column in (("user", schema.user), ("item", schema.item)) if column]
    return [*ids, *[c for c in schema.categorical if c not in (schema.user, schema.item)]]


def fit_feature_spec(train: pd.DataFrame, schema: SchemaConfig, cfg: FeatureConfig) -> FeatureSpec:
    """Fit every transform on an in-memory training split (the engine's fit, on DuckDB)."""
    import ibis

    from ccss_pipeline.data.relational import transformer as relational

    return relational.fit_feature_spec(ibis.memtable(train), schema, cfg)


def encode_numerical(values: np.ndarray, feature: NumericalFeature) -> tuple[np.ndarray, np.ndarray]:
    """(dense, bucket) of raw values; missing values go to the missing bucket with dense 0."""
    values = np.asarray(values, dtype=np.float64)
    missing = ~np.isfinite(values)
    safe = np.where(missing, 0.0, values)
    with np.errstate(over="ignore"):  # an overflow is ±inf, clipped like any large value
        dense = np.clip(
            (apply_transform(safe, feature.transform) - feature.mean) / feature.std, -DENSE_CLIP, DENSE_CLIP
        )
    bucket = np.searchsorted(np.asarray(feature.boundaries), safe, side="right")
    dense[missing] = 0.0
    bucket[missing] = feature.missing_bucket
    return dense.astype(np.float32), bucket.astype(np.int64)


#: The text of an integral id in a vocabulary: an integer column's decimal form ("63"), or a float
#: column's ("63.0": pandas' id column that once held a NaN, Spark's doubles).
_INTEGRAL_TEXT = re.compile(r"-?(0|[1-9][0-9]*)(\.0)?")  # no leading zero: "007" is a code, not 7
_INT64 = (-(2**63), 2**63)


def integer_vocabulary(feature: CategoricalFeature) -> list[int] | None:
    """The vocabulary as the integers it spells, or None when any entry is not an integral id (or two
    entries spell the same one). Integer-coded ids are matched as integers, so ``63``, ``63.0`` and an
    id column that turned float because one value is blank all find the training id ``63``."""
    values = []
    for text in feature.vocabulary:
        if not _INTEGRAL_TEXT.fullmatch(text):
            return None
        value = int(text.removesuffix(".0"))
        if not _INT64[0] <= value < _INT64[1]:
            return None
        values.append(value)
    return values if len(set(values)) == len(values) else None


def integral_ids(values: pd.Series) -> pd.Series:
    """Numbers as nullable int64 ids: integral values kept, fractional, non-finite and missing ones
    NA (no integer id spells them, so they are out of vocabulary)."""
    if pd.api.types.is_integer_dtype(values):
        return values.astype("Int64")  # not through float64, which rounds ids above 2**53
    numbers = pd.to_numeric(values, errors="coerce").astype("float64")
    integral = np.isfinite(numbers) & (numbers == np.round(numbers)) & (numbers.abs() < 2.0**63)
    return numbers.where(integral).astype("Int64")


def encode_categorical(values: pd.Series, feature: CategoricalFeature) -> np.ndarray:
    """Vocabulary index + 1; unseen or missing ids map to 0 (out of vocabulary). Numbers meet an
    integer vocabulary as integers (:func:`integer_vocabulary`), anything else as text."""
    integers = integer_vocabulary(feature)
    numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if integers is not None and numeric:
        codes = pd.Index(integers, dtype="int64").get_indexer(pd.Index(integral_ids(values)))
    else:
        codes = pd.Index(feature.vocabulary).get_indexer(pd.Index(values.astype(str).where(values.notna(), None)))
    return (codes + 1).astype(np.int64)


def to_model_input(frame: pd.DataFrame, spec: FeatureSpec) -> pd.DataFrame:
    """The model-ready table of an in-memory split (the engine's encoding, on DuckDB), rows in order."""
    import ibis

    from ccss_pipeline.data.relational import transformer as relational

    positioned = frame.reset_index(drop=True).assign(**{relational.ROW: np.arange(len(frame), dtype=np.int64)})
    table = relational.to_model_input(ibis.memtable(positioned), spec).to_pandas()
    return stamp(table.reset_index(drop=True), spec)  # later stages refuse it beside another spec
