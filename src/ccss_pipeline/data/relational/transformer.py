"""Fit the train-only transforms (spec §2) on the engine, and encode any split with them.

The fit reads the training table through aggregates only. Each numerical feature's finite values are
read as their (value, count) table when it has at most :data:`VALUE_COUNTS_IN_MEMORY` rows (counts,
discrete measurements: every feature of the default data but the prior click rates), so order
statistics, counts below an edge and the winsorized mean/std are NumPy on that small table; a feature
with more distinct values is sorted once by the engine, with positions, and its order statistics are
scans of that. Quantiles are interpolated here from order statistics with NumPy's own ``linear`` rule,
so the boundaries, centres and quantile sketch equal ``numpy.quantile`` on the whole column, on DuckDB
and on Spark alike (no approximate quantiles). The encoding is one projection: vocabulary joins for ids
(on integers for integer-coded ids, integral floats included), a binary search of comparisons with the
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
    integer_vocabulary,
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


#: A feature whose finite training values take at most this many distinct values (the engine's
#: count) is fitted from its (value, count) table read into memory, sorted: every order
#: statistic, count and the winsorized scale are then NumPy on that table, with no sort of the column
#: (10M rows: ~0.1 s a feature instead of ~1.5 s). Larger (continuous features of large logs) are sorted
#: once on the engine (:class:`SortedColumn`); the bound keeps the fit's memory flat in the row count.
VALUE_COUNTS_IN_MEMORY = 2_000_000


class ValueCounts:
    """The finite values of one column as its sorted distinct values and their counts, in memory: the
    sorted column, run-length encoded. Position ``p`` of the sorted column lies in the run ``i`` with
    ``starts[i] <= p < starts[i + 1]``. Same interface as :class:`SortedColumn`."""

    def __init__(self, values: np.ndarray, counts: np.ndarray) -> None:
        order = np.argsort(values, kind="stable")
        self.values = np.asarray(values, dtype=np.float64)[order]
        self.counts = np.asarray(counts, dtype=np.int64)[order]
        self.starts = np.concatenate([[0], np.cumsum(self.counts)])
        self.n = int(self.starts[-1])
        self.distinct = int(self.values.size)
        self.lo = float(self.values[0]) if self.n else math.nan
        self.hi = float(self.values[-1]) if self.n else math.nan

    @classmethod
    def fetch(cls, finite: ibis.Table, limit: int) -> ValueCounts | None:
        """The (value, count) table of ``finite``, or None when it has more than ``limit`` rows."""
        counts = finite.group_by("__v").aggregate(__c=finite.count()).limit(limit + 1).to_pyarrow()
        if counts.num_rows > limit:
            return None
        return cls(counts["__v"].to_numpy(), counts["__c"].to_numpy())

    def __enter__(self) -> ValueCounts:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def at(self, positions: np.ndarray) -> np.ndarray:
        """The values at ``positions`` (0-based) of the sorted column."""
        runs = np.searchsorted(self.starts, np.asarray(positions, dtype=np.int64), side="right") - 1
        return self.values[runs]

    def prefetch(self, *levels: np.ndarray) -> None:
        """Nothing to fetch: every order statistic is in memory."""

    def count_below(self, edges: np.ndarray) -> np.ndarray:
        """How many values are < each edge."""
        return self.starts[np.searchsorted(self.values, np.asarray(edges, dtype=np.float64), side="left")]

    def distinct_values(self) -> np.ndarray:
        return self.values

    def value_counts(self) -> tuple[np.ndarray, np.ndarray]:
        return self.values, self.counts

    def scale(self, transform: str, clip: tuple[float, float] | None) -> tuple[float, float]:
        """Mean and population std of the transformed values clipped to ``clip``: each distinct value
        weighted by its count, the std from the deviations from the mean (NumPy's two passes).
        Deterministic, unlike a parallel SQL sum."""
        value = apply_transform(self.values, transform)
        if clip is not None:
            value = np.clip(value, *clip)
        mean = float(np.sum(self.counts * value) / self.n)
        std = float(np.sqrt(np.sum(self.counts * (value - mean) ** 2) / self.n))
        return mean, std


class SortedColumn:
    """The finite values of one column sorted once, with their positions, held by the engine (a DuckDB
    temporary table, a cached Spark frame): every order statistic, count and bucket median of the fit is
    then a scan of it, not another sort. Values fetched are remembered. Use as a context manager.

    ``distinct_at_least``: a lower bound on the distinct count, known when the (value, count) table
    was too large for :class:`ValueCounts`; it is then taken as the distinct count (it only ever decides
    "more than ``n_buckets``"), and no distinct count is run."""

    def __init__(self, finite: ibis.Table, distinct_at_least: int | None = None) -> None:
        self.finite = finite
        self.table = finite.mutate(__pos=ibis.row_number().over(order_by=finite["__v"])).cache()
        v = self.table["__v"]
        aggregates = {"n": self.table.count(), "lo": v.min(), "hi": v.max()}
        if distinct_at_least is None:
            aggregates["distinct"] = v.nunique()
        row = self.table.aggregate(**aggregates).to_pandas().iloc[0]
        self.n = int(row["n"])
        self.distinct = int(row["distinct"]) if distinct_at_least is None else distinct_at_least
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
        """How many values are < each edge. An edge strictly between the values at two adjacent known
        positions ``p`` and ``p + 1`` (a quantile edge without ties) has ``p + 1`` below it; only the
        others are counted, by one scan."""
        edges = np.asarray(edges, dtype=np.float64)
        out = np.full(edges.size, -1, dtype=np.int64)
        if self._known:
            known = np.array(sorted(self._known), dtype=np.int64)
            values = np.array([self._known[int(p)] for p in known], dtype=np.float64)
            below = np.searchsorted(values, edges, side="left")  # known values < edge
            inner = (below > 0) & (below < known.size)
            i = np.where(inner, below, 1)
            adjacent = inner & (known[i] == known[i - 1] + 1) & (values[i - 1] < edges)
            out[adjacent] = known[i[adjacent]]
        todo = np.flatnonzero(out < 0)
        if todo.size:
            v = self.table["__v"]
            row = self.table.aggregate(**{f"c{j}": (v < real(edges[j])).cast("int64").sum() for j in todo})
            values = row.to_pandas().iloc[0]
            out[todo] = [int(values[f"c{j}"] or 0) for j in todo]
        return out

    def distinct_values(self) -> np.ndarray:
        distinct = self.finite.select("__v").distinct().order_by("__v").to_pandas()
        return distinct["__v"].to_numpy(np.float64)

    def value_counts(self) -> tuple[np.ndarray, np.ndarray]:
        counts = self.finite.group_by("__v").aggregate(__n=self.finite.count()).order_by("__v").to_pandas()
        return counts["__v"].to_numpy(np.float64), counts["__n"].to_numpy(np.int64)

    def scale(self, transform: str, clip: tuple[float, float] | None) -> tuple[float, float]:
        """Mean and population std of the transformed values clipped to ``clip``, by the engine."""
        value = transform_expr(self.table["__v"], transform)
        if clip is not None:
            value = value.clip(lower=real(clip[0]), upper=real(clip[1]))
        try:
            stats = self.table.aggregate(mean=value.mean(), std=value.std(how="pop")).to_pandas().iloc[0]
        except Exception as exc:  # noqa: BLE001 - an engine's overflow error: reported by the caller as such
            if "range" not in str(exc).lower() and "overflow" not in str(exc).lower():
                raise
            return math.inf, math.inf
        return float(stats["mean"]), float(stats["std"])


Column = ValueCounts | SortedColumn


def open_column(table: ibis.Table, column: str, n_buckets: int) -> Column:
    """The sorted finite values of ``column``: in memory when few distinct, else sorted by the engine.
    The in-memory bound is at least ``n_buckets``, so a sorted column has more distinct values than
    buckets (all its distinct count decides)."""
    finite = _finite(table, column)
    limit = max(VALUE_COUNTS_IN_MEMORY, n_buckets)
    counts = ValueCounts.fetch(finite, limit)
    return counts if counts is not None else SortedColumn(finite, distinct_at_least=limit + 1)


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


def quantiles(column: Column, levels: np.ndarray, transform: str | None = None) -> np.ndarray:
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
    """:func:`ccss_pipeline.data.transformer.bucket_boundaries` from aggregates."""
    if column.distinct <= n_buckets:
        return column.distinct_values()[1:]
    edges = np.unique(quantiles(column, _boundary_levels(n_buckets)))
    edges = edges[edges > column.lo]
    if edges.size == n_buckets - 1:
        return edges
    return greedy_boundaries(*column.value_counts(), n_buckets)


def boundaries(table: ibis.Table, column: str, n_buckets: int) -> np.ndarray:
    """Inner bucket edges of the finite values of ``column`` (see
    :func:`ccss_pipeline.data.transformer.bucket_boundaries` for the rule)."""
    with open_column(table, column, n_buckets) as sorted_column:
        if sorted_column.n == 0:
            return np.empty(0)
        return _boundaries(sorted_column, n_buckets)


def _winsor_levels(outlier_quantile: float) -> np.ndarray:
    return np.array([outlier_quantile, 1.0 - outlier_quantile]) if outlier_quantile > 0 else np.empty(0)


def _winsorized_scale(column: Column, transform: str, outlier_quantile: float) -> tuple[float, float]:
    """:func:`ccss_pipeline.data.transformer.robust_scale` from the sorted column (population std)."""
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


def _as_text(value: Any) -> Any:
    return value.cast("string")


def _fit_vocabulary(train: ibis.Table, name: str, min_count: int) -> CategoricalFeature:
    """Ids seen at least ``min_count`` times in train, by descending count then value (deterministic)."""
    present = train.filter(train[name].notnull())
    if _fits_int64(present[name].type()):  # grouped as integers, only the kept ids cast to text
        counts = present.group_by(value=present[name]).aggregate(count=present.count())
        kept_ids = counts.filter(counts["count"] >= min_count)
        kept = kept_ids.select(value=_as_text(kept_ids["value"]), count=kept_ids["count"]).to_pandas()
    else:
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
def _vocabulary_table(feature: CategoricalFeature, integers: list[int] | None) -> ibis.Table:
    """(``__value``, ``__code``) of a vocabulary. ``__value`` is the vocabulary's text, or for an
    integer-coded one (:func:`integer_vocabulary`) the integer each entry spells, so the join hashes
    integers instead of casting every row to text, and ``63.0`` meets ``63``."""
    codes = np.arange(1, len(feature.vocabulary) + 1, dtype=np.int64)
    if integers is not None:
        frame = pd.DataFrame({"__value": np.asarray(integers, dtype=np.int64), "__code": codes})
        return ibis.memtable(frame, schema={"__value": "int64", "__code": "int64"})
    frame = pd.DataFrame({"__value": pd.Series(feature.vocabulary, dtype=object), "__code": codes})
    return ibis.memtable(frame, schema={"__value": "string", "__code": "int64"})


def _fits_int64(kind: Any) -> bool:
    return bool(kind.is_signed_integer() or (kind.is_unsigned_integer() and kind.nbytes < 8))


def _integer_key(column: Any) -> Any | None:
    """The join key of a column against an integer vocabulary: integers as int64; floats (an id column
    that turned float because one value is blank, Spark's doubles) by their integral values, a
    fractional or non-finite one NULL (no integer id spells it: out of vocabulary, its row alone);
    None for any other type (matched as text)."""
    kind = column.type()
    if _fits_int64(kind):
        return column.cast("int64")
    if not kind.is_floating():
        return None
    value = column.cast("float64")
    integral = (value.abs() < real(2.0**63)) & (value == value.floor())  # NaN and ±inf fail both
    return ibis.ifelse(integral, value, ibis.null("float64")).cast("int64")


def _clipped(value: Any) -> Any:
    """``value`` clipped to ±DENSE_CLIP (``value`` is never NULL: LEAST/GREATEST, not Ibis' NULL-aware
    ``clip``, whose CASE repeats the scaled expression, ``ln`` included, at every reference)."""
    return ibis.greatest(real(-DENSE_CLIP), ibis.least(real(DENSE_CLIP), value))


def to_model_input(table: ibis.Table, spec: FeatureSpec) -> ibis.Table:
    """The model-ready table of one split (columns documented in :mod:`ccss_pipeline.spec`), in the
    canonical row order (``row``) when the table has it.

    Two projections: the first computes each dense feature's scaled value once (0 when the value is
    missing or not finite), the second clips it and casts; the engine then evaluates ``ln`` once a row."""
    out = table
    for cat in spec.categorical:
        integers = integer_vocabulary(cat)
        key = _integer_key(out[cat.name]) if integers is not None else None
        if key is None:
            integers, key = None, _as_text(out[cat.name])
        vocab = _vocabulary_table(cat, integers).rename(
            **{f"__value_{cat.column}": "__value", f"__code_{cat.column}": "__code"}
        )
        out = out.left_join(vocab, key == vocab[f"__value_{cat.column}"])
    scaled: dict[str, Any] = {}
    for num in spec.numerical:
        raw = out[num.name].cast("float64")
        value = (transform_expr(raw, num.transform) - real(num.mean)) / real(num.std)
        scaled[f"__scaled_{num.dense_column}"] = ibis.ifelse(_is_finite(raw), value, real(0.0))
    out = out.mutate(**scaled)
    columns: dict[str, Any] = {
        LABEL_COLUMN: out[LABEL_COLUMN].cast("int8"),
        GROUP_COLUMN: out[GROUP_COLUMN],
        TIME_COLUMN: out[TIME_COLUMN].cast("int64"),
    }
    for cat in spec.categorical:
        columns[cat.column] = out[f"__code_{cat.column}"].coalesce(0).cast("int64")
    for num in spec.numerical:
        raw = out[num.name].cast("float64")
        columns[num.dense_column] = _clipped(out[f"__scaled_{num.dense_column}"]).cast("float32")
        columns[num.bucket_column] = ibis.ifelse(
            _is_finite(raw), bucket_expr(raw, num.boundaries), num.missing_bucket
        ).cast("int64")
    if ORACLE_COLUMN in table.columns:
        columns[ORACLE_COLUMN] = out[ORACLE_COLUMN].cast("float64")
    if ROW in table.columns:
        return out.order_by(out[ROW]).select(**columns)
    return out.select(**columns)
