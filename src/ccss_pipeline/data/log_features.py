"""Leak-free numerical features from the log itself (spec: a video's prior click-through, a user's activity).

Every value of a row is computed from events *strictly earlier* than the row's timestamp: group-wise
cumulative sums made exclusive (shifted by one), and rows that share an entity and a timestamp all
take the value of the first of them, so no row ever sees its own label or a simultaneous one.
Fully vectorized over the sorted table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import LogFeature
from ccss_pipeline.data.interactions import ITEM, USER
from ccss_pipeline.spec import LABEL_COLUMN, TIME_COLUMN

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


def add_log_features(interactions: pd.DataFrame, features: list[LogFeature], counted: np.ndarray | None = None
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
            frame[feat.name] = (clicks + k * prior) / (impressions + k) if k > 0 else np.divide(
                clicks, impressions, out=prior.copy(), where=impressions > 0
            )
    return frame
