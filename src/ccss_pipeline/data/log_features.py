"""Leak-free numerical features from the log itself, on an in-memory frame.

The rule has one implementation, on the engine (:mod:`ccss_pipeline.data.relational.log_features`):
every value of a row is computed from events *strictly earlier* than the row's timestamp. This runs
it through DuckDB for callers that hold a frame (notebooks, tests) and returns the rows in their order.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import LogFeature
from ccss_pipeline.spec import TIME_COLUMN

_POSITION, _COUNTED = "__ccss_position", "__ccss_counted"


def add_log_features(
    interactions: pd.DataFrame, features: list[LogFeature], counted: np.ndarray | None = None
) -> pd.DataFrame:
    """Append the requested leak-free features to a time-sorted interaction table (returns a copy).

    ``counted`` (0/1 per row, default all 1) says which rows are events the features count: rows to score
    are appended to the training log with ``counted = 0``, so they see its history but not each other.
    """
    import ibis

    from ccss_pipeline.data.relational.log_features import add_log_features as on_engine

    if not interactions[TIME_COLUMN].is_monotonic_increasing:
        raise ValueError(f"interactions must be sorted by '{TIME_COLUMN}' before computing log features")
    frame = interactions.reset_index(drop=True).assign(**{_POSITION: np.arange(len(interactions), dtype=np.int64)})
    if counted is not None:
        frame[_COUNTED] = np.asarray(counted, dtype=np.float64)
    table = on_engine(ibis.memtable(frame), features, counted=_COUNTED if counted is not None else None)
    out = table.order_by(_POSITION).to_pandas().drop(columns=[c for c in (_POSITION, _COUNTED) if c in frame.columns])
    out.index = interactions.index
    return out
