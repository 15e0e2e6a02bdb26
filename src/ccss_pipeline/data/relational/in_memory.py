"""Frames as in-memory engine tables: the one edge where a pandas frame enters the data stages.

The stages take and return engine tables only. A caller that holds frames — the rows to score (read in
chunks), a notebook, a test — turns them into in-memory tables here (``ibis.memtable``: run by DuckDB,
or joined onto the tables of whichever engine they meet) and runs the very same expressions the
pipeline runs on parquet; there is no second, pandas implementation of any rule to keep equal.
"""

from __future__ import annotations

from collections.abc import Mapping

import ibis
import numpy as np
import pandas as pd


def in_memory(frame: pd.DataFrame, *, positions: str | None = None) -> ibis.Table:
    """``frame`` as an in-memory engine table (its index dropped).

    ``positions``: the name of a column to hold each row's position in ``frame`` (overwriting one of
    that name), so a stage that orders by it (the encoding orders by ``row``) gives the rows back in
    the frame's order; an engine keeps no row order of its own."""
    table = frame.reset_index(drop=True)
    if positions is not None:
        table = table.assign(**{positions: np.arange(len(frame), dtype=np.int64)})
    return ibis.memtable(table)


def in_memory_tables(frames: Mapping[str, pd.DataFrame]) -> dict[str, ibis.Table]:
    """Each frame of a bundle (``log`` and its side tables) as an in-memory engine table."""
    return {name: in_memory(frame) for name, frame in frames.items()}
