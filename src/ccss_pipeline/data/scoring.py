"""Rows to score: the log features of new rows, computed from the training log's history alone.

A new row's prior counts must see every training event strictly before it, as a training row does,
but not the other rows being scored: their labels are unknown (or must not leak into each other's
features). The rows are appended to the history with weight 0 (``counted``) and the leak-free log
features of :mod:`ccss_pipeline.data.log_features` are computed over the union, in time order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.interactions import ROW_COLUMN
from ccss_pipeline.data.log_features import add_log_features
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN

_HISTORY = "__history__"


def with_history_log_features(rows: pd.DataFrame, history: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """``rows`` (canonical, from ``build_interactions(..., for_scoring=True)``) with the schema's log
    features computed from ``history`` (the canonical training log) strictly before each row.

    Without a timestamp the rows come after the whole history (row order). Returns the rows in their
    input order (``row``).
    """
    rows = rows.copy()
    if not schema.log_features:
        return rows.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
    if not schema.timestamp:
        rows[TIME_COLUMN] = int(history[TIME_COLUMN].max()) + 1 + np.arange(len(rows), dtype=np.int64)
    keys = [c for c in ("user", "item") if c in rows.columns and c in history.columns]
    past = history[[*keys, TIME_COLUMN, LABEL_COLUMN]].assign(**{_HISTORY: 1.0, ROW_COLUMN: -1})
    new = rows[[*keys, TIME_COLUMN, ROW_COLUMN]].assign(**{LABEL_COLUMN: 0, _HISTORY: 0.0})
    both = pd.concat([past, new], ignore_index=True).sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    features = add_log_features(both, schema.log_features, counted=both[_HISTORY].to_numpy())
    names = [f.name for f in schema.log_features]
    computed = features.loc[features[_HISTORY] == 0, [ROW_COLUMN, *names]]
    merged = rows.drop(columns=[c for c in names if c in rows.columns]).merge(computed, on=ROW_COLUMN, how="left")
    return merged.sort_values(ROW_COLUMN, kind="stable").reset_index(drop=True)
