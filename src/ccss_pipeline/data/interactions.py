"""Join a validated source bundle into one time-ordered interaction table with canonical columns.

Canonical columns: ``user``, ``item``, ``label`` (int8), ``event_ts`` (int64 ms since the epoch, or
the row order when the source has no timestamp), every schema categorical and numerical column, and
``oracle_prob`` when the source knows the true click probability, and ``row``: each row's position
(in this table for training; in the input log for rows to score), the total order the engine keeps. Timestamps are parsed by
:mod:`ccss_pipeline.data.timestamps`, exactly as the validation gate parses them; a value it cannot parse
raises :class:`ValueError` naming the column (a safety net: the gate runs first). Rows are sorted by
``event_ts`` (stable), which every leak-free feature relies on; repeated impressions (same user, item
and timestamp instant) are collapsed to their first row.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.timestamps import to_epoch_ms
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, SPLIT_COLUMN, TIME_COLUMN

USER, ITEM = "user", "item"

__all__ = ["ITEM", "USER", "build_interactions", "join_tables", "to_epoch_ms"]


def join_tables(bundle: dict[str, pd.DataFrame], schema: SchemaConfig) -> pd.DataFrame:
    """Left-join the side tables onto the log by their keys; the log wins on shared column names."""
    log = bundle["log"]
    wanted = set(schema.categorical) | {n.name for n in schema.numerical}
    frame = log[[c for c in log.columns if c in wanted or c in _log_core(schema)]].copy()
    for name, side in schema.side_tables.items():
        if name not in bundle:
            continue
        table = bundle[name]
        columns = [c for c in table.columns if c in wanted and c not in frame.columns]
        if columns:
            frame = frame.merge(table[[side.key, *columns]], on=side.key, how="left", validate="many_to_one")
    missing = sorted(wanted - set(frame.columns))
    if missing:
        raise KeyError(f"columns declared in the schema are in no table: {missing}")
    return frame


def _log_core(schema: SchemaConfig) -> set[str]:
    core = {c for c in (schema.user, schema.item) if c} | {schema.label, ORACLE_COLUMN}
    if schema.timestamp:
        core.add(schema.timestamp)
    if schema.split_column:
        core.add(schema.split_column)
    return core


#: Rows to score: each row's position in the input log, so scores map back to the rows given.
ROW_COLUMN = "row"


def build_interactions(bundle: dict[str, pd.DataFrame], schema: SchemaConfig, for_scoring: bool = False) -> pd.DataFrame:
    """The canonical, time-sorted interaction table of a validated bundle.

    ``for_scoring``: rows to score — the label may be absent, no row is dropped as a duplicate, the split
    column is ignored, and ``row`` keeps each row's position in the input log.
    """
    joined = join_tables(bundle, schema)
    ids = {USER: schema.user, ITEM: schema.item}
    labelled = schema.label in joined.columns or not for_scoring
    out = pd.DataFrame(
        {
            **{canonical: joined[column].to_numpy() for canonical, column in ids.items() if column},
            **({LABEL_COLUMN: pd.to_numeric(joined[schema.label]).to_numpy(np.int8)} if labelled else {}),
            TIME_COLUMN: (
                to_epoch_ms(joined[schema.timestamp], schema.timestamp_unit, schema.timestamp_format,
                            column=schema.timestamp)
                if schema.timestamp
                else np.arange(len(joined), dtype=np.int64)
            ),
        }
    )
    for name in schema.categorical:
        out[name] = joined[name].to_numpy()
    for num in schema.numerical:
        out[num.name] = pd.to_numeric(joined[num.name], errors="coerce").to_numpy(np.float64)
    if ORACLE_COLUMN in joined.columns:
        out[ORACLE_COLUMN] = joined[ORACLE_COLUMN].to_numpy(np.float64)
    if for_scoring:
        out[ROW_COLUMN] = np.arange(len(out), dtype=np.int64)
    elif schema.split_column:
        # Each row's split (feature_engineering.split.mode: column); the split drops it from its outputs.
        if schema.split_column not in joined.columns:
            raise KeyError(f"schema.split_column {schema.split_column!r} is not a column of the log "
                           f"(columns: {list(bundle['log'].columns)})")
        out[SPLIT_COLUMN] = joined[schema.split_column].to_numpy()
    # GAUC groups by user; without a user id every row is one group (the report says GAUC is n/a)
    out[GROUP_COLUMN] = out[USER] if schema.user else 0
    if schema.timestamp and schema.user and schema.item and not for_scoring:
        # Repeated impressions (same user, item and time) that the gate tolerated count once.
        out = out.drop_duplicates(subset=[USER, ITEM, TIME_COLUMN], keep="first")
    out = out.sort_values(TIME_COLUMN, kind="stable").reset_index(drop=True)
    if not for_scoring:
        out[ROW_COLUMN] = np.arange(len(out), dtype=np.int64)  # the canonical row order, for the engine
    return out
