"""Join a validated source (engine tables) into the canonical, time-ordered interaction table.

The same rules as the in-memory face (:mod:`ccss_pipeline.data.interactions`, which runs this on DuckDB
memtables): the side tables are left-joined by their keys (the log wins on shared names); timestamps
are parsed by the project's one parser (:mod:`.timestamps`); numerical columns become float64 (values
that are not numbers become NULL, as ``pandas.to_numeric(errors="coerce")``); repeated impressions
(same user, item and timestamp instant) keep their first row in file order; rows are ordered by
``event_ts``, ties in file order, and ``row`` numbers them in that order (for rows to score, ``row``
is each row's position in the input log instead).

File order is ``row_number()`` over the log as the engine scans it: DuckDB keeps the insertion order
of a file or memtable; Spark moves the log to one partition for it (documented in docs/data-layer.md).
An unordered ``row_number()`` is not a function of the rows on Spark: each evaluation numbers the rows
in the order that partition happens to receive them, and the plan reads the positions twice (the
duplicate check's group-by and the rows it keeps). So on Spark the positioned log is cached once
(``Table.cache()``, memory and disk) and both read the same numbers; a 10M-row log of several files
otherwise kept 1 row.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ibis

from ccss_pipeline.config import SchemaConfig
from ccss_pipeline.data.relational.backends import backend_name
from ccss_pipeline.data.relational.timestamps import to_epoch_ms
from ccss_pipeline.spec import GROUP_COLUMN, LABEL_COLUMN, ORACLE_COLUMN, SPLIT_COLUMN, TIME_COLUMN

USER, ITEM, ROW = "user", "item", "row"
#: Each log row's position in file order, from 0 (dropped from the output).
POSITION = "__ccss_pos"


def _log_core(schema: SchemaConfig) -> set[str]:
    core = {c for c in (schema.user, schema.item) if c} | {schema.label, ORACLE_COLUMN}
    if schema.timestamp:
        core.add(schema.timestamp)
    if schema.split_column:
        core.add(schema.split_column)
    return core


def join_tables(tables: Mapping[str, ibis.Table], schema: SchemaConfig) -> ibis.Table:
    """Left-join the side tables onto the log by their keys; the log wins on shared column names.
    The log gets :data:`POSITION`, its file order."""
    log = tables["log"]
    wanted = set(schema.categorical) | {n.name for n in schema.numerical}
    keep = [c for c in log.columns if c in wanted or c in _log_core(schema)]
    keys = [side.key for name, side in schema.side_tables.items() if name in tables]
    joined = log.select(
        *dict.fromkeys([*keep, *[k for k in keys if k in log.columns]]), **{POSITION: ibis.row_number()}
    )
    if backend_name(log) == "pyspark":  # number the rows once (see the module docstring)
        joined = joined.cache()
    for name, side in schema.side_tables.items():
        if name not in tables:
            continue
        table = tables[name]
        columns = [c for c in table.columns if c in wanted and c not in joined.columns]
        if columns:
            for holder, cols in (("the log", joined.columns), (f"side table '{name}'", table.columns)):
                if side.key not in cols:
                    raise KeyError(f"join key '{side.key}' of side table '{name}' is not a column of {holder}")
            _require_comparable_keys(joined[side.key], table[side.key], name)
            _require_unique_key(table, side.key, name)
            joined = joined.left_join(table.select(side.key, *columns), side.key)
            if f"{side.key}_right" in joined.columns:
                joined = joined.drop(f"{side.key}_right")
    missing = sorted(wanted - set(joined.columns))
    if missing:
        raise KeyError(f"columns declared in the schema are in no table: {missing}")
    return joined


def _kind(column: ibis.Column) -> str:
    kind = column.type()
    return "numbers" if kind.is_numeric() or kind.is_boolean() else "strings" if kind.is_string() else str(kind)


def _require_comparable_keys(log_key: ibis.Column, side_key: ibis.Column, name: str) -> None:
    """A safety net behind the gate's "join key types match" rule."""
    if _kind(log_key) != _kind(side_key):
        raise ValueError(
            f"join key '{log_key.get_name()}': the log holds {_kind(log_key)} ({log_key.type()}) but "
            f"side table '{name}' holds {_kind(side_key)} ({side_key.type()}); they can never match "
            "(the raw-data validation gate reports this as 'join key types match')"
        )


def _require_unique_key(table: ibis.Table, key: str, name: str) -> None:
    """A safety net behind the gate's "unique key" rule: a repeated key would multiply log rows."""
    repeated = int(table.group_by(key).aggregate(n=table.count()).filter(lambda t: t.n > 1).count().execute())
    if repeated:
        raise ValueError(
            f"side table '{name}': {repeated} value(s) of key '{key}' repeat, so the join would "
            "be many-to-many and multiply log rows (the raw-data validation gate reports these "
            "as 'unique key')"
        )


def _number(column: ibis.Column) -> ibis.Column:
    """float64; values that are not numbers become NULL (``pandas.to_numeric(errors="coerce")``)."""
    if column.type().is_string():
        return column.strip().try_cast("float64")
    return column.cast("float64")


def _first_of_repeats(table: ibis.Table) -> ibis.Table:
    """Rows whose (user, item, event_ts) is not repeated at an earlier file position. A group-by and a
    semi-join (operators that spill to disk), not a window partitioned by the key (one that must hold
    its partitions)."""
    keys = [USER, ITEM, TIME_COLUMN]
    firsts = table.group_by(keys).aggregate(__ccss_first=table[POSITION].min())
    match = [table[k].identical_to(firsts[k]) for k in keys] + [table[POSITION] == firsts["__ccss_first"]]
    return table.semi_join(firsts, match)


def build_interactions(tables: Mapping[str, ibis.Table], schema: SchemaConfig, for_scoring: bool = False) -> ibis.Table:
    """The canonical interaction table of a validated source (see the module docstring), ordered by
    ``event_ts`` then file order. ``for_scoring``: rows to score — the label may be absent, no row is
    dropped as a duplicate, the split column is ignored, and ``row`` is each row's position in the log.
    """
    joined = join_tables(tables, schema)
    labelled = schema.label in joined.columns or not for_scoring
    columns: dict[str, Any] = {}
    if schema.user:
        columns[USER] = joined[schema.user]
    if schema.item:
        columns[ITEM] = joined[schema.item]
    if labelled:
        columns[LABEL_COLUMN] = _number(joined[schema.label]).cast("int8")
    columns[TIME_COLUMN] = (
        to_epoch_ms(joined[schema.timestamp], schema.timestamp_unit, schema.timestamp_format)
        if schema.timestamp
        else joined[POSITION].cast("int64")
    )
    for name in schema.categorical:
        columns[name] = joined[name]
    for num in schema.numerical:
        columns[num.name] = _number(joined[num.name])
    if ORACLE_COLUMN in joined.columns:
        columns[ORACLE_COLUMN] = joined[ORACLE_COLUMN].cast("float64")
    if for_scoring:
        columns[ROW] = joined[POSITION].cast("int64")
    elif schema.split_column:
        if schema.split_column not in joined.columns:
            raise KeyError(
                f"schema.split_column {schema.split_column!r} is not a column of the log "
                f"(columns: {list(tables['log'].columns)})"
            )
        columns[SPLIT_COLUMN] = joined[schema.split_column]
    columns[GROUP_COLUMN] = joined[schema.user] if schema.user else ibis.literal(0, "int64")
    out = joined.select(**columns, **{POSITION: joined[POSITION]})
    if schema.timestamp and schema.user and schema.item and not for_scoring:
        out = _first_of_repeats(out)
    if not for_scoring:
        out = out.mutate(**{ROW: ibis.row_number().over(order_by=[out[TIME_COLUMN], out[POSITION]]).cast("int64")})
    return out.drop(POSITION).order_by([TIME_COLUMN, ROW])
