"""The pandas data stages as they were before the engine (issue 13): the oracle of the equality tests.

Copied verbatim from ``ccss_pipeline.data.log_features``, ``ccss_pipeline.data.transformer`` and
``ccss_pipeline.data.interactions`` (the join behind the gate) at the commits before the Ibis data layer; the relational implementation must reproduce these outputs (ids,
buckets and splits exactly, floats to 1e-9 relative). Not used by the product.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, LogFeature, SchemaConfig
from ccss_pipeline.data.timestamps import to_epoch_ms
from ccss_pipeline.data.transformer import categorical_columns, report_unconstrained
from ccss_pipeline.encoding import DENSE_CLIP, apply_transform
from ccss_pipeline.lineage import stamp
from ccss_pipeline.spec import (
    GROUP_COLUMN,
    LABEL_COLUMN,
    ORACLE_COLUMN,
    QUANTILE_LEVELS,
    SPLIT_COLUMN,
    TIME_COLUMN,
    CategoricalFeature,
    FeatureSpec,
    NumericalFeature,
)

USER, ITEM = "user", "item"
logger = logging.getLogger(__name__)

_DAY_MS = 86_400_000


def _strictly_before(frame: pd.DataFrame, key: str, exclusive: np.ndarray) -> np.ndarray:
    """Replace each row's exclusive cumulative value by that of the first row with the same key and time."""
    tied = pd.Series(exclusive).groupby([frame[key].to_numpy(), frame[TIME_COLUMN].to_numpy()], sort=False)
    return tied.transform("first").to_numpy()


def _entity_counts(frame: pd.DataFrame, key: str, counted: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(impressions, clicks) of the row's entity strictly before the row, over the ``counted`` rows."""
    labels = frame[LABEL_COLUMN].to_numpy(np.float64) * counted
    grouped = pd.DataFrame({"w": counted, "c": labels}).groupby(frame[key].to_numpy(), sort=False)
    impressions = grouped["w"].cumsum().to_numpy(np.float64) - counted
    clicks = grouped["c"].cumsum().to_numpy(np.float64) - labels
    return _strictly_before(frame, key, impressions), _strictly_before(frame, key, clicks)


def _global_prior(frame: pd.DataFrame, counted: np.ndarray) -> np.ndarray:
    """Click rate of all counted events strictly before each row (Laplace-smoothed), the shrinkage target."""
    labels = frame[LABEL_COLUMN].to_numpy(np.float64) * counted
    ts = frame[TIME_COLUMN].to_numpy()
    clicks = np.cumsum(labels) - labels
    seen = np.cumsum(counted) - counted
    first_of_time = pd.Series(np.arange(len(ts))).groupby(ts, sort=False).transform("first").to_numpy()
    return (clicks[first_of_time] + 1.0) / (seen[first_of_time] + 2.0)


def _active_days(frame: pd.DataFrame, key: str, counted: np.ndarray) -> np.ndarray:
    """Distinct calendar days (UTC) with a counted event of the entity before the row's day."""
    day = frame[TIME_COLUMN].to_numpy() // _DAY_MS
    keys = frame[key].to_numpy()
    # the first counted event of each (entity, day) marks a day; uncounted rows never do
    first_counted = ~pd.DataFrame({"k": keys, "d": day, "c": counted > 0}).duplicated() & (counted > 0)
    days = pd.Series(first_counted.to_numpy(np.float64)).groupby(keys, sort=False).cumsum().to_numpy()
    exclusive = days - first_counted.to_numpy(np.float64)
    # every row of an (entity, day) takes the value of its first row: the days strictly before that day
    return pd.Series(exclusive).groupby([keys, day], sort=False).transform("first").to_numpy(np.float64)


def add_log_features(
    interactions: pd.DataFrame, features: list[LogFeature], counted: np.ndarray | None = None
) -> pd.DataFrame:
    """Append the requested leak-free features to a time-sorted interaction table (returns a copy).

    ``counted`` (0/1 per row, default all 1) says which rows are events the features count: rows to score
    are appended to the training log with ``counted = 0``, so they see its history but not each other.
    """
    frame = interactions.copy()
    if not frame[TIME_COLUMN].is_monotonic_increasing:
        raise ValueError(f"interactions must be sorted by '{TIME_COLUMN}' before computing log features")
    counted = np.ones(len(frame)) if counted is None else np.asarray(counted, dtype=np.float64)
    cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    prior: np.ndarray | None = None
    for feat in features:
        key = USER if feat.entity == "user" else ITEM
        if feat.stat == "active_days":
            frame[feat.name] = _active_days(frame, key, counted)
            continue
        if key not in cache:
            cache[key] = _entity_counts(frame, key, counted)
        impressions, clicks = cache[key]
        if feat.stat == "impressions":
            frame[feat.name] = impressions
        elif feat.stat == "clicks":
            frame[feat.name] = clicks
        else:  # smoothed_ctr
            if prior is None:
                prior = _global_prior(frame, counted)
            k = feat.prior_strength
            frame[feat.name] = (
                (clicks + k * prior) / (impressions + k)
                if k > 0
                else np.divide(clicks, impressions, out=prior.copy(), where=impressions > 0)
            )
    return frame


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


def _fit_numerical(
    name: str, values: np.ndarray, direction: int, transform: str, n_buckets: int, outlier_quantile: float = 0.0
) -> NumericalFeature:
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


def fit_feature_spec(train: pd.DataFrame, schema: SchemaConfig, cfg: FeatureConfig) -> FeatureSpec:
    """Fit every transform on the training split and return the spec that encodes them."""
    categorical = [_fit_vocabulary(c, train[c], cfg.min_category_count) for c in categorical_columns(schema)]
    numerical = [
        _fit_numerical(
            f.name, train[f.name].to_numpy(np.float64), f.direction, f.transform, cfg.n_buckets, cfg.outlier_quantile
        )
        for f in schema.all_numerical
    ]
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


# ------------------------------------------------------------------ the join (data/interactions.py)
def join_tables(bundle: dict[str, pd.DataFrame], schema: SchemaConfig) -> pd.DataFrame:
    """Left-join the side tables onto the log by their keys; the log wins on shared column names."""
    log = bundle["log"]
    wanted = set(schema.categorical) | {n.name for n in schema.numerical}
    frame = log[[c for c in log.columns if c in wanted or c in _log_core(schema)]].copy()
    for name, side in schema.side_tables.items():
        if name not in bundle:
            continue
        table = bundle[name]
        columns = [c for c in table.columns if c in wanted and c not in frame.columns]
        if columns:
            frame = frame.merge(table[[side.key, *columns]], on=side.key, how="left", validate="many_to_one")
    missing = sorted(wanted - set(frame.columns))
    if missing:
        raise KeyError(f"columns declared in the schema are in no table: {missing}")
    return frame


def _log_core(schema: SchemaConfig) -> set[str]:
    core = {c for c in (schema.user, schema.item) if c} | {schema.label, ORACLE_COLUMN}
    if schema.timestamp:
        core.add(schema.timestamp)
    if schema.split_column:
        core.add(schema.split_column)
    return core


#: Rows to score: each row's position in the input log, so scores map back to the rows given.
ROW_COLUMN = "row"


def build_interactions(
    bundle: dict[str, pd.DataFrame], schema: SchemaConfig, for_scoring: bool = False
) -> pd.DataFrame:
    """The canonical, time-sorted interaction table of a validated bundle.

    ``for_scoring``: rows to score — the label may be absent, no row is dropped as a duplicate, the split
    column is ignored, and ``row`` keeps each row's position in the input log.
    """
    joined = join_tables(bundle, schema)
    ids = {USER: schema.user, ITEM: schema.item}
    labelled = schema.label in joined.columns or not for_scoring
    out = pd.DataFrame(
        {
            **{canonical: joined[column].to_numpy() for canonical, column in ids.items() if column},
            **({LABEL_COLUMN: pd.to_numeric(joined[schema.label]).to_numpy(np.int8)} if labelled else {}),
            TIME_COLUMN: (
                to_epoch_ms(
                    joined[schema.timestamp], schema.timestamp_unit, schema.timestamp_format, column=schema.timestamp
                )
                if schema.timestamp
                else np.arange(len(joined), dtype=np.int64)
            ),
        }
    )
    for name in schema.categorical:
        out[name] = joined[name].to_numpy()
    for num in schema.numerical:
        out[num.name] = pd.to_numeric(joined[num.name], errors="coerce").to_numpy(np.float64)
    if ORACLE_COLUMN in joined.columns:
        out[ORACLE_COLUMN] = joined[ORACLE_COLUMN].to_numpy(np.float64)
    if for_scoring:
        out[ROW_COLUMN] = np.arange(len(out), dtype=np.int64)
    elif schema.split_column:
        # Each row's split (feature_engineering.split.mode: column); the split drops it from its outputs.
        if schema.split_column not in joined.columns:
            raise KeyError(
                f"schema.split_column {schema.split_column!r} is not a column of the log "
                f"(columns: {list(bundle['log'].columns)})"
            )
        out[SPLIT_COLUMN] = joined[schema.split_column].to_numpy()
    # GAUC groups by user; without a user id every row is one group (the report says GAUC is n/a)
    out[GROUP_COLUMN] = out[USER] if schema.user else 0
    if schema.timestamp and schema.user and schema.item and not for_scoring:
        # Repeated impressions (same user, item and time) that the gate tolerated count once.
        out = out.drop_duplicates(subset=[USER, ITEM, TIME_COLUMN], keep="first")
    out = out.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    if not for_scoring:
        out[ROW_COLUMN] = np.arange(len(out), dtype=np.int64)  # the canonical row order, for the engine
    return out
