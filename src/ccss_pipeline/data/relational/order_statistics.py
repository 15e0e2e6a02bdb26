"""The sorted finite values of one training column, as the fit reads its order statistics.

Each numerical feature's finite values are read as their (value, count) table when it has at most
:data:`VALUE_COUNTS_IN_MEMORY` rows (counts, discrete measurements: every feature of the default data
but the prior click rates), so order statistics, counts below an edge and the winsorized mean/std are
NumPy on that small table; a feature with more distinct values is sorted once by the engine, with
positions, and its order statistics are scans of that. Quantiles are interpolated here from order
statistics with NumPy's own ``linear`` rule, so they equal ``numpy.quantile`` on the whole column, on
DuckDB and on Spark alike (no approximate quantiles).
"""

from __future__ import annotations

import math

import ibis
import numpy as np
import pandas as pd

from ccss_pipeline.data.relational.encoding import transform_expr
from ccss_pipeline.data.relational.literals import is_finite, real
from ccss_pipeline.encoding import apply_transform


def finite_values(table: ibis.Table, column: str) -> ibis.Table:
    """The finite values of ``column`` as the one column ``__v`` (float64): what every order statistic reads."""
    value = table[column].cast("float64")
    return table.select(__v=value).filter(is_finite(value))


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
    finite = finite_values(table, column)
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
