"""The pandas ``time`` and ``row_order`` splits, the oracle the engine's splits are compared to.

The product splits on the engine (:mod:`ccss_pipeline.data.relational.splitting`): ``time`` and
``row_order`` as filters on cut points, ``random`` and ``column`` by the in-memory rules of
:func:`ccss_pipeline.data.splitting.split_in_memory`. These are the pandas forms of the first two as
they were before (one more implementation of each rule, kept only to compare against).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import SplitConfig
from ccss_pipeline.data.splitting import split_in_memory
from ccss_pipeline.spec import SPLIT_COLUMN, TIME_COLUMN

Splits = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]


def split_rows(
    frame: pd.DataFrame, cfg: SplitConfig, *, has_timestamp: bool = True, split_column: str = SPLIT_COLUMN
) -> Splits:
    """Split ``frame`` as ``cfg.mode`` says; the canonical split column is dropped from the outputs."""
    if cfg.mode in ("random", "column"):
        return split_in_memory(frame, cfg, has_timestamp=has_timestamp, split_column=split_column)
    if len(frame) == 0:
        raise ValueError("cannot split an empty interaction table")
    parts = split_by_time(frame, cfg) if cfg.mode == "time" else split_by_row_order(frame, cfg)
    train, valid, test = (p.drop(columns=[SPLIT_COLUMN], errors="ignore") for p in parts)
    return train, valid, test


def split_by_time(frame: pd.DataFrame, cfg: SplitConfig) -> Splits:
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


def split_by_row_order(frame: pd.DataFrame, cfg: SplitConfig) -> Splits:
    """The fractions of :func:`split_by_time` by the order of the rows (``event_ts`` is the row number).

    Rows are taken in ``event_ts`` order (stable, so the frame's order where it has no ``event_ts``);
    with distinct ``event_ts`` the result equals :func:`split_by_time`.
    """
    n = len(frame)
    if n == 0:
        raise ValueError("cannot split an empty interaction table")
    order = np.argsort(frame[TIME_COLUMN].to_numpy(), kind="stable") if TIME_COLUMN in frame.columns else np.arange(n)
    test_at = min(n - 1, int(np.floor(n * (1.0 - cfg.test_fraction))))
    valid_at = min(n - 1, int(np.floor(n * (1.0 - cfg.test_fraction - cfg.validation_fraction))))
    return _take(frame, order[:valid_at]), _take(frame, order[valid_at:test_at]), _take(frame, order[test_at:])


def _take(frame: pd.DataFrame, positions: np.ndarray) -> pd.DataFrame:
    return frame.iloc[np.sort(positions)].reset_index(drop=True)
