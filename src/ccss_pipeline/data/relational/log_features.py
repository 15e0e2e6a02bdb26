"""Leak-free numerical features from the log itself, as window expressions (spec: a video's prior
click-through, a user's activity).

Every value of a row is computed from events *strictly earlier* than the row's timestamp:

- per-entity impressions and clicks: per (entity, timestamp) sums, accumulated over the entity's earlier
  timestamps and joined back, so rows sharing an entity and a timestamp see none of each other (the
  value depends on the pair alone; windows over the narrow per-pair table instead of the whole row keep
  memory bounded on logs of 10^8 rows);
- the global click rate (the shrinkage target of smoothed CTRs): per-timestamp sums, accumulated over
  the earlier timestamps (the sums of the earlier hours plus a window within the hour, so no window
  spans the whole log), joined back;
- active days: per (entity, UTC day) whether it had a counted event, accumulated over earlier days.

``counted`` names a 0/1 column saying which rows count as events: rows to score are appended to the
training log with weight 0, so they see its history but not each other. No row order is assumed.

On DuckDB the narrow tables are run one at a time into temporary tables of the connection (spilled to
its ``temp_directory`` past ``memory_limit``), each window over one slice of its partitions at a time
(entity hash or hour, modulo a slice count chosen from the row count and ``memory_limit``), and the
returned expression joins the wide table with them: DuckDB's window operator holds its whole input in
memory, and one plan of three windows, aggregates and joins over 10^8 rows ran out of memory under 3 GB.
Spark runs the same expressions as one plan. The values are the same either way (whole-number sums).
"""

from __future__ import annotations

import math
import uuid
import weakref
from typing import Any

import ibis

from ccss_pipeline.config import LogFeature
from ccss_pipeline.data.relational.backends import backend_name
from ccss_pipeline.data.relational.literals import real
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN

_DAY_MS = 86_400_000
_W, _C = "__ccss_w", "__ccss_c"
_IMPRESSIONS, _CLICKS = "__ccss_impressions", "__ccss_clicks"
_HOUR_MS = 3_600_000
#: DuckDB: rows of a narrow per-(entity, timestamp) table one window runs over, per GiB of its
#: memory_limit (its window operator holds its whole input: 10^7 such rows need about 0.5 GiB).
_ROWS_PER_GIB = 8_000_000
#: DuckDB: rows of the log joined back at once (one range of timestamps) per GiB of memory_limit, so
#: the hash tables of its three narrow tables fit in memory instead of spilling the wide rows.
_JOIN_ROWS_PER_GIB = 4_000_000


class _Materializer:
    """DuckDB: run the narrow tables into temporary tables of the connection one at a time, each window
    a slice of its partitions at a time (memory bounded by the slice, not by the log), instead of one
    plan holding every window, aggregate and join at once. The tables are dropped with the expression."""

    def __init__(self, con: Any, rows: int) -> None:
        self.con = con
        limit = _memory_limit_gib(con)
        self.n_slices = max(1, math.ceil(rows / (_ROWS_PER_GIB * limit))) if limit else 1
        self.n_join_slices = max(1, math.ceil(rows / (_JOIN_ROWS_PER_GIB * limit))) if limit else 1

    def table(self, expr: ibis.Table, more: tuple[ibis.Table, ...] = ()) -> ibis.Table:
        name = f"__ccss_log_features_{uuid.uuid4().hex}"
        self.con.create_table(name, expr, temp=True)
        for part in more:
            self.con.insert(name, part)
        out = self.con.table(name)
        weakref.finalize(out.op(), _drop_quietly, self.con, name)
        return out

    def slices(self, table: ibis.Table, by: Any, fn: Any) -> ibis.Table:
        """``fn`` (windows partitioned within ``by``'s values, an integer) run on one slice of ``by``'s
        values at a time (``by`` may be negative, a signed hash: residues folded into 0..n-1)."""
        n = self.n_slices
        parts = [fn(table.filter((by % n + n) % n == i)) if n > 1 else fn(table) for i in range(n)]
        return self.table(parts[0], tuple(parts[1:]))


def _memory_limit_gib(con: Any) -> float | None:
    try:
        value = con.raw_sql("SELECT current_setting('memory_limit')").fetchone()[0]
    except Exception:  # noqa: BLE001 - no limit known: one slice
        return None
    number, _, unit = str(value).partition(" ")
    scale = {
        "KiB": 2**-20,
        "MiB": 2**-10,
        "GiB": 1,
        "TiB": 2**10,
        "KB": 1e3 / 2**30,
        "MB": 1e6 / 2**30,
        "GB": 1e9 / 2**30,
        "TB": 1e12 / 2**30,
    }.get(unit.strip())
    try:
        return float(number) * scale if scale else None
    except ValueError:
        return None


def _drop_quietly(con: Any, name: str) -> None:
    try:
        con.drop_table(name, force=True)
    except Exception:  # noqa: BLE001 - the connection may be closed (interpreter shutdown, tests)
        pass


def _entity_key(feature: LogFeature) -> str:
    return "user" if feature.entity == "user" else "item"


def _prior_by_time(table: ibis.Table, materialize: _Materializer | None = None) -> ibis.Table:
    """(event_ts, prior): Laplace-smoothed click rate of all counted events at earlier timestamps.

    The running sums over all timestamps are split at hour boundaries: the sums of the earlier hours
    (a window over one row per hour) plus a window over the earlier timestamps of the row's own hour
    (partitioned by hour, so no window holds the whole log). The weights and clicks are 0/1, so the
    sums are whole numbers and the split changes no value."""
    per_time = table.group_by(TIME_COLUMN).aggregate(sw=table[_W].sum(), sc=table[_C].sum())
    per_time = per_time.mutate(__ccss_hour=per_time[TIME_COLUMN] // _HOUR_MS)
    if materialize is not None:
        per_time = materialize.table(per_time)
    per_hour = per_time.group_by("__ccss_hour").aggregate(hw=per_time.sw.sum(), hc=per_time.sc.sum())
    before = ibis.window(order_by=per_hour["__ccss_hour"], rows=(None, -1))
    per_hour = per_hour.select(
        "__ccss_hour",
        __ccss_hw=per_hour.hw.sum().over(before).coalesce(real(0.0)),
        __ccss_hc=per_hour.hc.sum().over(before).coalesce(real(0.0)),
    )
    if materialize is not None:
        per_hour = materialize.table(per_hour)

    def within_hours(part: ibis.Table) -> ibis.Table:
        joined = part.inner_join(per_hour, "__ccss_hour")
        earlier = ibis.window(group_by=joined["__ccss_hour"], order_by=joined[TIME_COLUMN], rows=(None, -1))
        seen = joined.__ccss_hw + joined.sw.sum().over(earlier).coalesce(real(0.0))
        clicks = joined.__ccss_hc + joined.sc.sum().over(earlier).coalesce(real(0.0))
        return joined.select(TIME_COLUMN, __ccss_prior=(clicks + real(1.0)) / (seen + real(2.0)))

    if materialize is None:
        return within_hours(per_time)
    return materialize.slices(per_time, per_time["__ccss_hour"], within_hours)


def _counts_by_time(table: ibis.Table, key: str, materialize: _Materializer | None = None) -> ibis.Table:
    """(key, event_ts, impressions, clicks): counted events of the entity at earlier timestamps."""
    per_time = table.group_by([table[key], table[TIME_COLUMN]]).aggregate(sw=table[_W].sum(), sc=table[_C].sum())
    if materialize is not None:
        per_time = materialize.table(per_time.mutate(__ccss_slice=per_time[key].hash()))

    def accumulate(part: ibis.Table) -> ibis.Table:
        earlier = ibis.window(group_by=part[key], order_by=part[TIME_COLUMN], rows=(None, -1))
        return part.select(
            key,
            TIME_COLUMN,
            **{
                _IMPRESSIONS: part.sw.sum().over(earlier).coalesce(real(0.0)),
                _CLICKS: part.sc.sum().over(earlier).coalesce(real(0.0)),
            },
        )

    if materialize is None:
        return accumulate(per_time)
    return materialize.slices(per_time, per_time["__ccss_slice"], accumulate)


def _active_days_by_day(table: ibis.Table, key: str, name: str) -> ibis.Table:
    """(key, day, name): distinct days with a counted event of the entity before that day."""
    day = (table[TIME_COLUMN] // _DAY_MS).name("__ccss_day")
    per_day = table.group_by([table[key], day]).aggregate(active=(table[_W] > 0).any().cast("float64"))
    earlier = ibis.window(group_by=per_day[key], order_by=per_day["__ccss_day"], rows=(None, -1))
    return per_day.select(key, "__ccss_day", **{name: per_day.active.sum().over(earlier).coalesce(real(0.0))})


def add_log_features(table: ibis.Table, features: list[LogFeature], counted: str | None = None) -> ibis.Table:
    """``table`` with one column per requested feature (float64); needs ``event_ts``, ``label`` and the
    entities' ``user``/``item`` columns. ``counted``: the 0/1 weight column (default: every row counts)."""
    if not features:
        return table
    names = [f.name for f in features]
    table = table.drop(*[c for c in names if c in table.columns])  # recomputed, never stale
    weight = table[counted].cast("float64") if counted else real(1.0)
    base = table.mutate(**{_W: weight, _C: table[LABEL_COLUMN].cast("float64") * weight})
    keys = list(dict.fromkeys(_entity_key(f) for f in features))
    narrow = base.select(*keys, TIME_COLUMN, _W, _C)  # what the per-(entity, timestamp) tables read
    materialize = None
    if backend_name(table) == "duckdb":
        materialize = _Materializer(ibis.get_backend(table), int(narrow.count().execute()))
    prior = _prior_by_time(narrow, materialize) if any(f.stat == "smoothed_ctr" for f in features) else None
    counts = {
        key: _counts_by_time(narrow, key, materialize)
        for key in dict.fromkeys(_entity_key(f) for f in features if f.stat != "active_days")
    }
    by_day = {f.name: _active_days_by_day(narrow, _entity_key(f), f.name) for f in features if f.stat == "active_days"}
    if materialize is None or materialize.n_join_slices == 1:
        out = _join_back(base, prior, counts, by_day, features)
    else:  # one range of timestamps at a time: every table joined back holds 1/n of its rows
        bounds = (
            narrow.aggregate(lo=narrow[TIME_COLUMN].min(), hi=narrow[TIME_COLUMN].max()).to_pyarrow().to_pylist()[0]
        )
        n, lo, span = materialize.n_join_slices, int(bounds["lo"]), int(bounds["hi"]) - int(bounds["lo"]) + 1
        edges = [lo + span * i // n for i in range(n + 1)]
        parts = [
            _join_back(
                _within(base, a, b),
                _within(prior, a, b) if prior is not None else None,
                {k: _within(v, a, b) for k, v in counts.items()},
                by_day,
                features,
            )
            for a, b in zip(edges[:-1], edges[1:], strict=True)
        ]
        out = ibis.union(*parts)
    return out.select(*table.columns, *names)


def _within(table: ibis.Table, start: int, stop: int) -> ibis.Table:
    return table.filter((table[TIME_COLUMN] >= start) & (table[TIME_COLUMN] < stop))


def _join_back(
    base: ibis.Table,
    prior: ibis.Table | None,
    counts: dict[str, ibis.Table],
    by_day: dict[str, ibis.Table],
    features: list[LogFeature],
) -> ibis.Table:
    """``base`` left-joined with the narrow tables, the features computed from their columns."""
    out = base
    columns: dict[str, Any] = {}
    if prior is not None:
        out = out.left_join(prior, TIME_COLUMN).drop(f"{TIME_COLUMN}_right")
    for key, table in counts.items():
        out = out.left_join(table, [key, TIME_COLUMN]).drop(f"{key}_right", f"{TIME_COLUMN}_right")
        out = out.rename(**{f"{_IMPRESSIONS}_{key}": _IMPRESSIONS, f"{_CLICKS}_{key}": _CLICKS})
    for feat in features:
        if feat.stat == "active_days":
            continue
        key = _entity_key(feat)
        impressions, clicks = out[f"{_IMPRESSIONS}_{key}"], out[f"{_CLICKS}_{key}"]
        if feat.stat == "impressions":
            columns[feat.name] = impressions
        elif feat.stat == "clicks":
            columns[feat.name] = clicks
        else:  # smoothed_ctr
            prior_value, k = out["__ccss_prior"], real(feat.prior_strength)
            columns[feat.name] = (
                (clicks + k * prior_value) / (impressions + k)
                if feat.prior_strength > 0
                else ibis.ifelse(impressions > 0, clicks / impressions, prior_value)
            )
    out = out.mutate(**columns) if columns else out
    for feat in features:
        if feat.stat != "active_days":
            continue
        key = _entity_key(feat)
        out = out.mutate(__ccss_day=out[TIME_COLUMN] // _DAY_MS)
        out = out.left_join(by_day[feat.name], [key, "__ccss_day"]).drop(
            f"{key}_right", "__ccss_day_right", "__ccss_day"
        )
    return out
