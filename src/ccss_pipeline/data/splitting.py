"""Time-ordered train / validation / test split with cut points between distinct timestamps."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.spec import TIME_COLUMN


def split_by_time(frame: pd.DataFrame, cfg: SplitConfig) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Latest ``test_fraction`` of rows to test, the ``validation_fraction`` before it to validation.

    Cuts are placed on timestamps, so rows sharing a timestamp never straddle two splits and every
    train event is strictly earlier than every validation event, and those than every test event.
    """
    ts = frame[TIME_COLUMN].to_numpy()
    if len(ts) == 0:
        raise ValueError("cannot split an empty interaction table")
    ordered = np.sort(ts, kind="stable")
    n = len(ordered)
    test_cut = ordered[min(n - 1, int(np.floor(n * (1.0 - cfg.test_fraction))))]
    valid_cut = ordered[min(n - 1, int(np.floor(n * (1.0 - cfg.test_fraction - cfg.validation_fraction))))]
    train = frame[ts < valid_cut]
    valid = frame[(ts >= valid_cut) & (ts < test_cut)]
    test = frame[ts >= test_cut]
    return train.reset_index(drop=True), valid.reset_index(drop=True), test.reset_index(drop=True)
