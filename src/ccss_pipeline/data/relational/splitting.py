"""Train / validation / test split of an interaction table on the engine: one implementation per mode.

``time`` and ``row_order`` (the modes of large logs) are filters on cut points found by the engine:
the value of ``event_ts`` at a sorted position (the latest ``test_fraction`` of events is test, the
``validation_fraction`` before it validation). ``random`` and ``column`` splits read the table into
memory and use the rules of :func:`ccss_pipeline.data.splitting.split_in_memory` (scikit-learn's
stratified draw has no engine equivalent); their outputs come back as in-memory engine tables.
"""

from __future__ import annotations

import math

import ibis
import ibis.expr.datatypes as dt

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.data.relational import interactions
from ccss_pipeline.data.relational.backends import backend_name
from ccss_pipeline.data.relational.in_memory import in_memory
from ccss_pipeline.data.relational.literals import real
from ccss_pipeline.data.splitting import split_in_memory
from ccss_pipeline.spec import SPLIT_COLUMN, TIME_COLUMN

#: Each row's position in the canonical interaction table (time order, stable): a total order of rows.
ROW = interactions.ROW

Splits = tuple[ibis.Table, ibis.Table, ibis.Table]


def _cut_positions(n: int, cfg: SplitConfig) -> tuple[int, int]:
    """(validation start, test start) as positions of the sorted rows, shared by both engine modes."""
    test_at = min(n - 1, int(math.floor(n * (1.0 - cfg.test_fraction))))
    valid_at = min(n - 1, int(math.floor(n * (1.0 - cfg.test_fraction - cfg.validation_fraction))))
    return valid_at, test_at


def _value_at(table: ibis.Table, position: int) -> int:
    """``event_ts`` at a position of the sorted column."""
    ranked = table.select(TIME_COLUMN).mutate(__ccss_pos=ibis.row_number().over(order_by=table[TIME_COLUMN]))
    return int(ranked.filter(ranked["__ccss_pos"] == position).select(TIME_COLUMN).to_pandas().iloc[0, 0])


@ibis.udf.agg.builtin(name="quantile_disc")
def _quantile_disc(arg: dt.int64, level: dt.float64) -> dt.int64:
    """DuckDB's exact discrete quantile: the value at 0-based position ``ceil(n · level) - 1`` of the
    sorted column, found by selection (``nth_element``), not a sort."""


def _values_at(table: ibis.Table, n: int, positions: tuple[int, int]) -> tuple[int, int]:
    """``event_ts`` at two positions of the sorted column. DuckDB: by selection, asking for the level
    ``(p + 0.5) / n`` (its rank rule then lands on ``p`` whatever the rounding), and checked: ``p`` values
    must lie below the answer and more than ``p`` at or below it, else the window of :func:`_value_at`
    decides. Other engines: that window (a sort of the column)."""
    if backend_name(table) == "duckdb":
        ts = table[TIME_COLUMN].cast("int64")
        found = (
            table.aggregate(**{f"v{i}": _quantile_disc(ts, real((p + 0.5) / n)) for i, p in enumerate(positions)})
            .to_pyarrow()
            .to_pylist()[0]
        )
        values = [int(found[f"v{i}"]) for i in range(len(positions))]
        checks = {}
        for i, v in enumerate(values):
            checks[f"below{i}"] = (ts < v).cast("int64").sum()
            checks[f"upto{i}"] = (ts <= v).cast("int64").sum()
        counts = table.aggregate(**checks).to_pyarrow().to_pylist()[0]
        if all(counts[f"below{i}"] <= p < counts[f"upto{i}"] for i, p in enumerate(positions)):
            return values[0], values[1]
    return _value_at(table, positions[0]), _value_at(table, positions[1])


def split_by_time(table: ibis.Table, cfg: SplitConfig) -> Splits:
    """Cuts on timestamps, so rows sharing a timestamp never straddle two splits and every train event
    is strictly earlier than every validation event, and those than every test event."""
    n = int(table.count().to_pandas())
    if n == 0:
        raise ValueError("cannot split an empty interaction table")
    valid_at, test_at = _cut_positions(n, cfg)
    valid_cut, test_cut = _values_at(table, n, (valid_at, test_at))
    ts = table[TIME_COLUMN]
    return (
        table.filter(ts < valid_cut),
        table.filter((ts >= valid_cut) & (ts < test_cut)),
        table.filter(ts >= test_cut),
    )


def split_by_row_order(table: ibis.Table, cfg: SplitConfig) -> Splits:
    """The same fractions by row position (``event_ts`` order, then the canonical ``row``)."""
    n = int(table.count().to_pandas())
    if n == 0:
        raise ValueError("cannot split an empty interaction table")
    valid_at, test_at = _cut_positions(n, cfg)
    order = [TIME_COLUMN, ROW] if ROW in table.columns else [TIME_COLUMN]
    ranked = table.mutate(__ccss_pos=ibis.row_number().over(order_by=[table[c] for c in order]))
    pos = ranked["__ccss_pos"]
    parts = (
        ranked.filter(pos < valid_at),
        ranked.filter((pos >= valid_at) & (pos < test_at)),
        ranked.filter(pos >= test_at),
    )
    return tuple(p.drop("__ccss_pos") for p in parts)


def split_table(
    table: ibis.Table, cfg: SplitConfig, *, has_timestamp: bool = True, split_column: str = SPLIT_COLUMN
) -> Splits:
    """Split as ``cfg.mode`` says; the canonical split column is dropped from the outputs.

    ``has_timestamp`` and ``split_column``: see :func:`ccss_pipeline.data.splitting.split_in_memory`."""
    if cfg.mode in ("random", "column"):  # the in-memory rules (see the module docstring)
        frames = split_in_memory(table.to_pandas(), cfg, has_timestamp=has_timestamp, split_column=split_column)
        return in_memory(frames[0]), in_memory(frames[1]), in_memory(frames[2])
    parts = split_by_time(table, cfg) if cfg.mode == "time" else split_by_row_order(table, cfg)
    train, valid, test = (p.drop(SPLIT_COLUMN) if SPLIT_COLUMN in p.columns else p for p in parts)
    return train, valid, test
