"""Rows to score: the log features of new rows, computed from the training log's history alone.

A new row's prior counts must see every training event strictly before it, as a training row does,
but not the other rows being scored: their labels are unknown (or must not leak into each other's
features). The rows are appended to the history with weight 0 (``counted``) and the leak-free log
features of :mod:`ccss_pipeline.data.relational.log_features` are computed over the union, on the
engine that holds the history.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.interactions import ROW_COLUMN
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN

_HISTORY = "__history__"


def with_history_log_features(rows: pd.DataFrame, history: Any, schema: SchemaConfig) -> pd.DataFrame:
    """``rows`` (canonical, from ``build_interactions(..., for_scoring=True)``) with the schema's log
    features computed from ``history`` (the canonical training log: an Ibis table or a frame) strictly
    before each row.

    Without a timestamp the rows come after the whole history (row order). Returns the rows in their
    input order (``row``).
    """
    import ibis

    from ccss_pipeline.data.relational.log_features import add_log_features

    rows = rows.copy()
    if not schema.log_features:
        return rows.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
    past_table = ibis.memtable(history) if isinstance(history, pd.DataFrame) else history
    if not schema.timestamp:
        last = int(past_table[TIME_COLUMN].max().to_pandas())
        rows[TIME_COLUMN] = last + 1 + np.arange(len(rows), dtype=np.int64)
    keys = [c for c in ("user", "item") if c in rows.columns and c in past_table.columns]
    past = past_table.select(*keys, TIME_COLUMN, LABEL_COLUMN).mutate(
        **{_HISTORY: ibis.literal(1.0), ROW_COLUMN: ibis.literal(-1, type="int64")}
    )
    new = ibis.memtable(rows[[*keys, TIME_COLUMN, ROW_COLUMN]].assign(**{LABEL_COLUMN: 0, _HISTORY: 0.0}))
    new = new.select(*past.columns).cast(past.schema())
    both = add_log_features(past.union(new), schema.log_features, counted=_HISTORY)
    names = [f.name for f in schema.log_features]
    computed = both.filter(both[_HISTORY] == 0.0).select(ROW_COLUMN, *names).to_pandas()
    merged = rows.drop(columns=[c for c in names if c in rows.columns]).merge(computed, on=ROW_COLUMN, how="left")
    return merged.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
