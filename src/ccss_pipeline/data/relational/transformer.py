"""Fit the train-only transforms (spec §2) on the engine, and encode any split with them.

The fit reads the training table through aggregates only: counts, distinct counts, a few hundred
order statistics per feature (the values at given positions of the sorted column), grouped order
statistics for the bucket medians, and the winsorized mean/std. Quantiles are interpolated here from
those order statistics with NumPy's own ``linear`` rule, so the boundaries, centres and quantile
sketch equal ``numpy.quantile`` on the whole column, on DuckDB and on Spark alike (no approximate
quantiles). The encoding is one projection: vocabulary joins for ids, a sum of comparisons with the
boundaries for buckets (= ``searchsorted(..., side="right")``), the scaled transform for dense values.
"""

from __future__ import annotations

import math
from typing import Any

import ibis
import numpy as np
import pandas as pd

from ccss_pipeline.config import FeatureConfig, SchemaConfig
from ccss_pipeline.data.relational.literals import real
from ccss_pipeline.data.transformer import (
    DENSE_CLIP,
    apply_transform,
    categorical_columns,
    greedy_boundaries,
    report_unconstrained,
)
from ccss_pipeline.spec import (
    GROUP_COLUMN,
    LABEL_COLUMN,
    ORACLE_COLUMN,
    QUANTILE_LEVELS,
    TIME_COLUMN,
    CategoricalFeature,
    FeatureSpec,
    NumericalFeature,
)

ROW = "row"


# ------------------------------------------------------------------------------- order statistics
def _is_finite(value: Any) -> Any:
    """Finite and present, in one comparison: NaN sorts above every number on DuckDB and Spark, ±inf
    exceed the largest double, and NULL compares to NULL (a false condition)."""
    return value.abs() <= real(float(np.finfo(np.float64).max))


def _finite(table: ibis.Table, column: str) -> ibis.Table:
    value = table[column].cast("float64")
    return table.select(__v=value).filter(_is_finite(value))


class SortedColumn:
    """The finite values of one column sorted once, with their positions, held by the engine (a DuckDB
    temporary table, a cached Spark frame): every order statistic, count and bucket median of the fit is
    then a scan of it, not another sort. Values fetched are remembered. Use as a context manager."""

    def __init__(self, finite: ibis.Table) -> None:
        self.finite = finite
        self.table = finite.mutate(__pos=ibis.row_number().over(order_by=finite["__v"])).cache()
        row = (
            self.table.aggregate(
                n=self.table.count(),
                distinct=self.table["__v"].nunique(),
                lo=self.table["__v"].min(),
                hi=self.table["__v"].max(),
            )
            .to_pandas()
            .iloc[0]
        )
        self.n = int(row["n"])
        self.distinct = int(row["distinct"])
        self.lo = float(row["lo"]) if self.n else math.nan
        self.hi = float(row["hi"]) if self.n else math.nan
        self._known: dict[int, float] = {}

    def __enter__(self) -> SortedColumn:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def release(self) -> None:
        try:
            self.table.release()
        except Exception:  # noqa: BLE001 - releasing a cache is best effort
            pass

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The values at ``positions`` (0-based) of the sorted column."""
        positions = np.asarray(positions, dtype=np.int64)
        missing = np.setdiff1d(np.unique(positions), np.fromiter(self._known, dtype=np.int64))
        if missing.size:
            wanted = ibis.memtable(pd.DataFrame({"__pos": missing}))
            found = self.table.semi_join(wanted, "__pos").select("__pos", "__v").to_pandas()  # a join, not literals
            self._known.update(zip(found["__pos"].astype(int), found["__v"].astype(float), strict=True))
        return np.array([self._known[int(p)] for p in positions], dtype=np.float64)

    def prefetch(self, *levels: np.ndarray) -> None:
        """Fetch the order statistics of several sets of quantile levels in one query."""
        wanted = [np.concatenate(_quantile_positions(self.n, lv)[1:]) for lv in levels if len(lv)]
        if wanted:
            self.at(np.concatenate(wanted))

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        """How many values are < each edge (one scan)."""
        if not len(edges):
            return np.zeros(0, dtype=np.int64)
        v = self.table["__v"]
        row = self.table.aggregate(**{f"c{i}": (v < real(e)).cast("int64").sum() for i, e in enumerate(edges)})
        values = row.to_pandas().iloc[0]
        return np.array([int(values[f"c{i}"] or 0) for i in range(len(edges))], dtype=np.int64)


def _quantile_positions(n: int, levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """NumPy's ``linear`` method: virtual index (n - 1)·q, its floor and next, clamped at the last."""
    virtual = (n - 1) * np.asarray(levels, dtype=np.float64)
    previous = np.floor(virtual)
    following = previous + 1
    above = virtual >= n - 1
    previous[above], following[above] = n - 1, n - 1
    return virtual, previous.astype(np.int64), following.astype(np.int64)


def _lerp(a: np.ndarray, b: np.ndarray, t: np.ndarray) -> np.ndarray:
    """``numpy.lib._function_base_impl._lerp``: the same two formulas, so the result is bit-identical."""
    diff = b - a
    return np.where(t >= 0.5, b - diff * (1 - t), a + diff * t)


def quantiles(column: SortedColumn, levels: np.ndarray, transform: str | None = None) -> np.ndarray:
    """``numpy.quantile(values, levels, method="linear")`` of the column, from order statistics.

    ``transform``: interpolate between transformed neighbours (the quantiles of ``apply_transform``
    of the values; the transform is increasing, so the neighbours are the same rows).
    """
    virtual, previous, following = _quantile_positions(column.n, levels)
    a, b = column.at(previous), column.at(following)
    if transform is not None:
        a, b = apply_transform(a, transform), apply_transform(b, transform)
    return _lerp(a, b, virtual - previous)


# ------------------------------------------------------------------------------------ expressions
def transform_expr(value: Any, transform: str) -> Any:
    """SQL form of :func:`ccss_pipeline.data.transformer.apply_transform` (sign · ln(1 + |x|))."""
    if transform == "log1p":
        return value.sign() * (value.abs() + real(1.0)).ln()
    return value


def bucket_expr(value: Any, boundaries: list[float]) -> Any:
    """Number of boundaries ≤ value: ``numpy.searchsorted(boundaries, value, side="right")``, as a
    binary search of nested ``CASE`` expressions (log2 of the boundaries comparisons per value, not one
    per boundary). ``value`` must be finite (callers send the others to the missing bucket)."""
    edges = [real(edge) for edge in boundaries]

    def search(lo: int, hi: int) -> Any:  # the count among edges[lo:hi], knowing edges[:lo] <= value
        if lo == hi:
            return ibis.literal(lo, type="int64")
        mid = (lo + hi) // 2
        return ibis.ifelse(value >= edges[mid], search(mid + 1, hi), search(lo, mid))

    return search(0, len(edges))


# ------------------------------------------------------------------------------------------- fit
def _bucket_medians(column: SortedColumn, boundaries: np.ndarray) -> np.ndarray:
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


def _boundaries(column: SortedColumn, n_buckets: int) -> np.ndarray:
    """:func:`ccss_pipeline.data.transformer.bucket_boundaries` from aggregates."""
    finite = column.finite
    if column.distinct <= n_buckets:
        distinct = finite.select("__v").distinct().order_by("__v").to_pandas()["__v"].to_numpy(np.float64)
        return distinct[1:]
    edges = np.unique(quantiles(column, _boundary_levels(n_buckets)))
    edges = edges[edges > column.lo]
    if edges.size == n_buckets - 1:
        return edges
    counts = finite.group_by("__v").aggregate(__n=finite.count()).order_by("__v").to_pandas()
    return greedy_boundaries(counts["__v"].to_numpy(np.float64), counts["__n"].to_numpy(np.int64), n_buckets)


def boundaries(table: ibis.Table, column: str, n_buckets: int) -> np.ndarray:
    """Inner bucket edges of the finite values of ``column`` (see
    :func:`ccss_pipeline.data.transformer.bucket_boundaries` for the rule)."""
    with SortedColumn(_finite(table, column)) as sorted_column:
        if sorted_column.n == 0:
            return np.empty(0)
        return _boundaries(sorted_column, n_buckets)


def _winsor_levels(outlier_quantile: float) -> np.ndarray:
    return np.array([outlier_quantile, 1.0 - outlier_quantile]) if outlier_quantile > 0 else np.empty(0)


def _winsorized_scale(column: SortedColumn, transform: str, outlier_quantile: float) -> tuple[float, float]:
    """:func:`ccss_pipeline.data.transformer.robust_scale` on the engine (population std)."""
    table = column.table
    value = transform_expr(table["__v"], transform)
    if outlier_quantile > 0:
        lo, hi = quantiles(column, _winsor_levels(outlier_quantile), transform)
        value = value.clip(lower=real(lo), upper=real(hi)) if np.isfinite([lo, hi]).all() else value
    try:
        stats = table.aggregate(mean=value.mean(), std=value.std(how="pop")).to_pandas().iloc[0]
    except Exception as exc:  # noqa: BLE001 - an engine's overflow error: reported by the caller as such
        if "range" not in str(exc).lower() and "overflow" not in str(exc).lower():
            raise
        return math.inf, math.inf
    mean, std = float(stats["mean"]), float(stats["std"])
    return mean, (std if std > 1e-12 else 1.0)


def _fit_numerical(
    train: ibis.Table, name: str, direction: int, transform: str, cfg: FeatureConfig
) -> NumericalFeature:
    with SortedColumn(_finite(train, name)) as column:
        return _fit_sorted(column, name, direction, transform, cfg)


def _fit_sorted(
    column: SortedColumn, name: str, direction: int, transform: str, cfg: FeatureConfig
) -> NumericalFeature:
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
    )


def _as_text(value: Any) -> Any:
    return value.cast("string")


def _fit_vocabulary(train: ibis.Table, name: str, min_count: int) -> CategoricalFeature:
    """Ids seen at least ``min_count`` times in train, by descending count then value (deterministic)."""
    present = train.filter(train[name].notnull())
    text = _as_text(present[name]).name("value")
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


# ---------------------------------------------------------------------------------------- encode
def _vocabulary_table(feature: CategoricalFeature) -> ibis.Table:
    frame = pd.DataFrame(
        {
            "__value": pd.Series(feature.vocabulary, dtype=object),
            "__code": np.arange(1, len(feature.vocabulary) + 1, dtype=np.int64),
        }
    )
    return ibis.memtable(frame, schema={"__value": "string", "__code": "int64"})


def to_model_input(table: ibis.Table, spec: FeatureSpec) -> ibis.Table:
    """The model-ready table of one split (columns documented in :mod:`ccss_pipeline.spec`), in the
    canonical row order (``row``) when the table has it."""
    out = table
    for cat in spec.categorical:
        vocab = _vocabulary_table(cat).rename(**{f"__value_{cat.column}": "__value", f"__code_{cat.column}": "__code"})
        out = out.left_join(vocab, _as_text(out[cat.name]) == vocab[f"__value_{cat.column}"])
    columns: dict[str, Any] = {
        LABEL_COLUMN: out[LABEL_COLUMN].cast("int8"),
        GROUP_COLUMN: out[GROUP_COLUMN],
        TIME_COLUMN: out[TIME_COLUMN].cast("int64"),
    }
    for cat in spec.categorical:
        columns[cat.column] = out[f"__code_{cat.column}"].coalesce(0).cast("int64")
    for num in spec.numerical:
        raw = out[num.name].cast("float64")
        finite = _is_finite(raw)
        scaled = (transform_expr(raw, num.transform) - real(num.mean)) / real(num.std)
        dense = scaled.clip(lower=real(-DENSE_CLIP), upper=real(DENSE_CLIP))
        columns[num.dense_column] = ibis.ifelse(finite, dense, real(0.0)).cast("float32")
        columns[num.bucket_column] = ibis.ifelse(finite, bucket_expr(raw, num.boundaries), num.missing_bucket).cast(
            "int64"
        )
    if ORACLE_COLUMN in table.columns:
        columns[ORACLE_COLUMN] = out[ORACLE_COLUMN].cast("float64")
    if ROW in table.columns:
        return out.order_by(out[ROW]).select(**columns)
    return out.select(**columns)
