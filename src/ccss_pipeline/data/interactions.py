"""Join a validated source bundle (in-memory frames) into one time-ordered interaction table.

Canonical columns: ``user``, ``item``, ``label`` (int8), ``event_ts`` (int64 ms since the epoch, or
the row order when the source has no timestamp), every schema categorical and numerical column, and
``oracle_prob`` when the source knows the true click probability, and ``row``: each row's position
(in this table for training; in the input log for rows to score), the total order the engine keeps.

The rule has one implementation, on the engine (:mod:`ccss_pipeline.data.relational.interactions`);
this face runs it on DuckDB memtables for callers that hold frames (the scoring stage, notebooks,
tests). Timestamps are parsed by :mod:`ccss_pipeline.data.timestamps`, exactly as the validation gate
parses them; a value it cannot parse raises :class:`ValueError` naming the column (a safety net: the
gate runs first). Repeated impressions (same user, item and timestamp instant) keep their first row.
"""

from __future__ import annotations

import pandas as pd

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.relational import interactions as on_engine
from ccss_pipeline.data.relational.in_memory import in_memory_tables
from ccss_pipeline.data.timestamps import to_epoch_ms

USER, ITEM = on_engine.USER, on_engine.ITEM
#: Rows to score: each row's position in the input log, so scores map back to the rows given.
ROW_COLUMN = on_engine.ROW

__all__ = ["ITEM", "ROW_COLUMN", "USER", "build_interactions", "join_tables", "to_epoch_ms"]


def _memtables(bundle: dict[str, pd.DataFrame], schema: SchemaConfig) -> dict:
    names = ["log", *schema.side_tables]
    return in_memory_tables({name: bundle[name] for name in names if name in bundle})


def join_tables(bundle: dict[str, pd.DataFrame], schema: SchemaConfig) -> pd.DataFrame:
    """Left-join the side tables onto the log by their keys; the log wins on shared column names."""
    joined = on_engine.join_tables(_memtables(bundle, schema), schema)
    return joined.order_by(on_engine.POSITION).to_pandas().drop(columns=on_engine.POSITION)


def build_interactions(
    bundle: dict[str, pd.DataFrame], schema: SchemaConfig, for_scoring: bool = False
) -> pd.DataFrame:
    """The canonical, time-sorted interaction table of a validated bundle.

    ``for_scoring``: rows to score — the label may be absent, no row is dropped as a duplicate, the split
    column is ignored, and ``row`` keeps each row's position in the input log.
    """
    if schema.timestamp and schema.timestamp in bundle["log"].columns:
        to_epoch_ms(
            bundle["log"][schema.timestamp], schema.timestamp_unit, schema.timestamp_format, column=schema.timestamp
        )  # the safety net: raises naming the column
    table = on_engine.build_interactions(_memtables(bundle, schema), schema, for_scoring=for_scoring)
    return table.to_pandas().reset_index(drop=True)
