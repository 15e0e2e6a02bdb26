"""Leak-free numerical features from the log itself, as window expressions (spec: a video's prior
click-through, a user's activity).

Every value of a row is computed from events *strictly earlier* than the row's timestamp:

- per-entity impressions and clicks: per (entity, timestamp) sums, accumulated over the entity's earlier
  timestamps and joined back, so rows sharing an entity and a timestamp see none of each other (the
  value depends on the pair alone; windows over the narrow per-pair table instead of the whole row keep
  memory bounded on logs of 10^8 rows);
- the global click rate (the shrinkage target of smoothed CTRs): per-timestamp sums, accumulated over
  the earlier timestamps, joined back;
- active days: per (entity, UTC day) whether it had a counted event, accumulated over earlier days.

``counted`` names a 0/1 column saying which rows count as events: rows to score are appended to the
training log with weight 0, so they see its history but not each other. No row order is assumed.
"""

from __future__ import annotations

from typing import Any

import ibis

from ccss_pipeline.config import LogFeature
from ccss_pipeline.data.relational.literals import real
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN

_DAY_MS = 86_400_000
_W, _C = "__ccss_w", "__ccss_c"
_IMPRESSIONS, _CLICKS = "__ccss_impressions", "__ccss_clicks"


def _entity_key(feature: LogFeature) -> str:
    return "user" if feature.entity == "user" else "item"


def _prior_by_time(table: ibis.Table) -> ibis.Table:
    """(event_ts, prior): Laplace-smoothed click rate of all counted events at earlier timestamps."""
    per_time = table.group_by(TIME_COLUMN).aggregate(sw=table[_W].sum(), sc=table[_C].sum())
    earlier = ibis.window(order_by=per_time[TIME_COLUMN], rows=(None, -1))
    seen = per_time.sw.sum().over(earlier).coalesce(real(0.0))
    clicks = per_time.sc.sum().over(earlier).coalesce(real(0.0))
    return per_time.select(TIME_COLUMN, __ccss_prior=(clicks + real(1.0)) / (seen + real(2.0)))


def _counts_by_time(table: ibis.Table, key: str) -> ibis.Table:
    """(key, event_ts, impressions, clicks): counted events of the entity at earlier timestamps."""
    per_time = table.group_by([table[key], table[TIME_COLUMN]]).aggregate(sw=table[_W].sum(), sc=table[_C].sum())
    earlier = ibis.window(group_by=per_time[key], order_by=per_time[TIME_COLUMN], rows=(None, -1))
    return per_time.select(key, TIME_COLUMN,
                           **{_IMPRESSIONS: per_time.sw.sum().over(earlier).coalesce(real(0.0)),
                              _CLICKS: per_time.sc.sum().over(earlier).coalesce(real(0.0))})


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
    out = base
    columns: dict[str, Any] = {}
    if any(f.stat == "smoothed_ctr" for f in features):
        out = out.left_join(_prior_by_time(base), TIME_COLUMN).drop(f"{TIME_COLUMN}_right")
    for key in dict.fromkeys(_entity_key(f) for f in features if f.stat != "active_days"):
        counts = _counts_by_time(base, key)
        out = out.left_join(counts, [key, TIME_COLUMN]).drop(f"{key}_right", f"{TIME_COLUMN}_right")
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
            prior, k = out["__ccss_prior"], real(feat.prior_strength)
            columns[feat.name] = ((clicks + k * prior) / (impressions + k) if feat.prior_strength > 0
                                  else ibis.ifelse(impressions > 0, clicks / impressions, prior))
    out = out.mutate(**columns) if columns else out
    for feat in features:
        if feat.stat != "active_days":
            continue
        key = _entity_key(feat)
        by_day = _active_days_by_day(base, key, feat.name)
        out = out.mutate(__ccss_day=out[TIME_COLUMN] // _DAY_MS)
        out = out.left_join(by_day, [key, "__ccss_day"]).drop(f"{key}_right", "__ccss_day_right", "__ccss_day")
    helpers = [c for c in out.columns if c.startswith("__ccss_") and c not in table.columns]
    return out.drop(*helpers).select(*table.columns, *names)
