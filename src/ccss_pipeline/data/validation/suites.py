"""The Great Expectations suite of each raw table, as code, and the derived columns it checks
(parsed timestamps, join-key coverage)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.timestamps import ISO_EXAMPLES, epoch_ms
from ccss_pipeline.data.validation.gx_import import ExpectationSuite, gx  # GX without PySpark
from ccss_pipeline.data.validation.gx_run import gx_context
from ccss_pipeline.data.validation.rules import (
    LOG_TABLE,
    RULE_COUNT,
    RULE_DUP_IMPRESSIONS,
    RULE_EXISTS,
    RULE_FINITE_INF,
    RULE_FINITE_NAN,
    RULE_ID_NOT_NULL,
    RULE_LABEL_NOT_NULL,
    RULE_LABEL_SET,
    RULE_NOT_ALL_NULL,
    RULE_NUMERIC_DTYPE,
    RULE_ROWS,
    RULE_TS_PARSEABLE,
    RULE_TS_RANGE,
    RULE_UNIQUE_KEY,
)

_FMAX = float(np.finfo(np.float64).max)

# dtype names (non-object columns) and per-value type names (object columns) that count as numeric.
_NUMERIC_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"Int{b}" for b in (8, 16, 32, 64)),
    *(f"UInt{b}" for b in (8, 16, 32, 64)),
    "float16",
    "float32",
    "float64",
    "Float32",
    "Float64",
    "bool",
    "boolean",
    "int",
    "float",
    *(f"{t}[pyarrow]" for t in ("int8", "int16", "int32", "int64", "float", "double", "bool")),
]


def timestamp_epoch_column(timestamp: str) -> str:
    """Name of the derived epoch-milliseconds column validated in place of the raw timestamp."""
    return f"{timestamp}__epoch_ms"


def _epoch_ms_bound(value: str) -> float:
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return float((ts - pd.Timestamp("1970-01-01")) / pd.Timedelta(milliseconds=1))


def key_coverage_column(key: str, side_table: str) -> str:
    """Name of the derived boolean log column: is the row's ``key`` found in ``side_table``?"""
    return f"{key}__in_{side_table}"


def _ts_parse_detail(schema: SchemaConfig) -> str:
    unit = schema.timestamp_unit
    if unit == "datetime" and schema.timestamp_format:
        return f"unit datetime: missing, or does not match schema.timestamp_format {schema.timestamp_format!r}"
    if unit == "datetime":
        return (
            f"unit datetime: missing, or not ISO 8601 (like {ISO_EXAMPLES}); for another layout set "
            "schema.timestamp_format to its strftime format, e.g. '%d/%m/%Y' — day-first and month-first "
            "dates are never guessed"
        )
    per = "milliseconds" if unit == "ms" else "seconds"
    return f"unit {unit}: missing, or not a number of {per} since the epoch"


def _column_owners(schema: SchemaConfig, columns: Mapping[str, Iterable[str]]) -> dict[str, str]:
    """Schema feature column -> the table the join takes it from (the log wins, then side tables in order)."""
    sets = {name: set(cols) for name, cols in columns.items()}
    owners: dict[str, str] = {}
    for col in [n.name for n in schema.numerical] + list(schema.categorical):
        for table in [LOG_TABLE, *schema.side_tables]:
            if col in sets.get(table, ()):
                owners[col] = table
                break
    return owners


def join_columns(schema: SchemaConfig, columns: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
    """Side table -> the schema columns the left join takes from it (as ``join_tables`` does)."""
    owners = _column_owners(schema, columns)
    out: dict[str, list[str]] = {name: [] for name in schema.side_tables if name in columns}
    for col, table in owners.items():
        if table in out:
            out[table].append(col)
    return out


def _table_key_columns(table_name: str, schema: SchemaConfig, label: bool = True) -> list[str]:
    if table_name == LOG_TABLE:
        return [c for c in (schema.user, schema.item, schema.label if label else None, schema.timestamp) if c]
    side = schema.side_tables.get(table_name)
    return [side.key] if side else []


def tagged(cls: Any, rule: str, report_column: str | None, /, **kwargs: Any) -> Any:
    """A GX expectation tagged with its readable rule and the column to name in messages."""
    meta = {"rule": rule, "column": report_column}
    if "meta" in kwargs:
        meta.update(kwargs.pop("meta"))
    return cls(meta=meta, **kwargs)


def _exists(column: str, detail: str | None = None) -> Any:
    extra = {"meta": {"detail": detail}} if detail is not None else {}
    return tagged(gx.expectations.ExpectColumnToExist, RULE_EXISTS, column, column=column, **extra)


def build_table_suite(
    table_name: str,
    frame_columns: Iterable[str],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    *,
    all_columns: Mapping[str, Iterable[str]] | None = None,
    non_numeric: Iterable[str] = (),
    label_required: bool = True,
) -> ExpectationSuite:
    """The GX expectation suite of one raw table (``"log"`` or a side table of ``schema.side_tables``).

    ``frame_columns`` are the table's columns; ``all_columns`` (table -> columns, every table of the
    source) lets the log suite report a schema numerical/categorical column found in *no* table (a column
    present in some side table is checked there). Without it, the log alone is searched.
    ``non_numeric`` names columns known to hold non-numeric values: they get only the "numeric dtype"
    expectation (which fails), not the value checks that GX could not evaluate on strings.
    Validate the suite on :func:`prepare_table` (it adds the derived timestamp column).
    ``label_required=False`` (rows to score): the label must not exist; when it does, its rules apply.
    """
    gx_context()  # GX needs an active context to add expectations to a suite
    cols = list(frame_columns)
    present = set(cols)
    searched = dict(all_columns or {table_name: cols})
    searched[table_name] = cols
    required = _table_key_columns(table_name, schema, label=label_required)
    expectations = [
        tagged(gx.expectations.ExpectTableRowCountToBeBetween, RULE_ROWS, None, min_value=1),
        *(_exists(col) for col in required),
        *(_columns_the_log_must_hold(schema, searched, required) if table_name == LOG_TABLE else []),
        *_not_entirely_null(table_name, schema, searched),
        *_table_rules(table_name, present, schema, cfg),
        *_numeric_rules(present, required, set(non_numeric), schema),
    ]
    suite = ExpectationSuite(name=f"ccss_raw_{table_name}")
    for expectation in expectations:
        suite.add_expectation(expectation)
    return suite


def _feature_columns(schema: SchemaConfig) -> list[str]:
    return [n.name for n in schema.numerical] + list(schema.categorical)


def _columns_the_log_must_hold(
    schema: SchemaConfig, searched: Mapping[str, Iterable[str]], required: list[str]
) -> list[Any]:
    """ "column exists" in the log for a schema column found in no table searched, and for the join key
    of every side table loaded (else the join has nothing to match)."""
    out = [
        _exists(col, f"not found in any of the tables searched: {', '.join(searched)}")
        for col in _feature_columns(schema)
        if not any(col in set(c) for c in searched.values())
    ]
    join_keys: dict[str, list[str]] = {}
    for name, side in schema.side_tables.items():
        if name in searched and side.key not in required:
            join_keys.setdefault(side.key, []).append(name)
    for key, names in join_keys.items():
        detail = (
            f"join key of side table(s) {', '.join(repr(n) for n in names)}: the log "
            "must hold it for the side table to be joined"
        )
        out.append(_exists(key, detail))
    return out


def _not_entirely_null(table_name: str, schema: SchemaConfig, searched: Mapping[str, Iterable[str]]) -> list[Any]:
    """Every schema feature column holds at least one value, checked where the join takes it from."""
    owners = _column_owners(schema, searched)
    E = gx.expectations
    return [
        tagged(E.ExpectColumnUniqueValueCountToBeBetween, RULE_NOT_ALL_NULL, col, column=col, min_value=1)
        for col in _feature_columns(schema)
        if owners.get(col) == table_name
    ]


def _table_rules(table_name: str, present: set[str], schema: SchemaConfig, cfg: ValidationConfig) -> list[Any]:
    """The log's ids, label, timestamp and duplicate rules; a side table's key rules."""
    if table_name == LOG_TABLE:
        return [
            *_id_and_label_rules(present, schema),
            *_timestamp_rules(present, schema, cfg),
            *_duplicate_rule(present, schema, cfg),
        ]
    side = schema.side_tables.get(table_name)
    if side is None or side.key not in present:
        return []
    E = gx.expectations
    return [
        tagged(E.ExpectColumnValuesToNotBeNull, RULE_ID_NOT_NULL, side.key, column=side.key),
        tagged(E.ExpectColumnValuesToBeUnique, RULE_UNIQUE_KEY, side.key, column=side.key),
    ]


def _id_and_label_rules(present: set[str], schema: SchemaConfig) -> list[Any]:
    E = gx.expectations
    out = [
        tagged(E.ExpectColumnValuesToNotBeNull, RULE_ID_NOT_NULL, id_col, column=id_col)
        for id_col in (schema.user, schema.item)
        if id_col is not None and id_col in present
    ]
    if schema.label in present:
        label = schema.label
        out.append(tagged(E.ExpectColumnValuesToNotBeNull, RULE_LABEL_NOT_NULL, label, column=label))
        out.append(tagged(E.ExpectColumnValuesToBeInSet, RULE_LABEL_SET, label, column=label, value_set=[0, 1]))
    return out


def _timestamp_rules(present: set[str], schema: SchemaConfig, cfg: ValidationConfig) -> list[Any]:
    """Numeric dtype (epoch units), parseable and in range, on the derived epoch-ms column."""
    ts = schema.timestamp
    if not (ts and ts in present):
        return []
    E = gx.expectations
    derived = timestamp_epoch_column(ts)
    meta = {"source_column": ts, "unit": schema.timestamp_unit}
    out = []
    if schema.timestamp_unit in ("ms", "s"):
        out.append(
            tagged(E.ExpectColumnValuesToBeInTypeList, RULE_NUMERIC_DTYPE, ts, column=ts, type_list=_NUMERIC_TYPES)
        )
    out.append(
        tagged(
            E.ExpectColumnValuesToNotBeNull,
            RULE_TS_PARSEABLE,
            ts,
            column=derived,
            meta={**meta, "detail": _ts_parse_detail(schema)},
        )
    )
    range_detail = (
        f"allowed [{cfg.timestamp_min}, {cfg.timestamp_max}]; older or newer "
        "data: set data_validation.timestamp_min / timestamp_max in your "
        "environment's parameters_data_validation.yml (conf/<env>/, "
        "e.g. conf/own_table/)"
    )
    out.append(
        tagged(
            E.ExpectColumnValuesToBeBetween,
            RULE_TS_RANGE,
            ts,
            column=derived,
            min_value=_epoch_ms_bound(cfg.timestamp_min),
            max_value=_epoch_ms_bound(cfg.timestamp_max),
            meta={**meta, "detail": range_detail},
        )
    )
    return out


def _duplicate_rule(present: set[str], schema: SchemaConfig, cfg: ValidationConfig) -> list[Any]:
    """No duplicated impressions, compared on the parsed instant, so one instant written two ways is still
    a duplicate; rows with a missing id or an unparseable timestamp are reported by their own rules."""
    ts = schema.timestamp
    keys = [c for c in (schema.user, schema.item, ts) if c]
    if not (ts and schema.user and schema.item and all(c in present for c in keys)):
        return []
    frac = float(getattr(cfg, "max_duplicate_impression_fraction", 0.0))
    extra: dict[str, Any] = {"mostly": 1.0 - frac} if frac > 0 else {}
    detail = "same user, item and timestamp instant"
    if frac:
        detail += f"; at most {frac:.2%} of rows may be duplicated"
    rule = tagged(
        gx.expectations.ExpectCompoundColumnsToBeUnique,
        RULE_DUP_IMPRESSIONS,
        ", ".join(keys),
        column_list=[schema.user, schema.item, timestamp_epoch_column(ts)],
        ignore_row_if="any_value_is_missing",
        meta={"detail": detail, "source_columns": keys},
        **extra,
    )
    return [rule]


def _numeric_rules(present: set[str], required: list[str], skip_values: set[str], schema: SchemaConfig) -> list[Any]:
    """Numeric dtype, finite (no NaN, no ±inf) and counts >= 0 of the schema's numerical columns present;
    a column known to hold non-numbers gets the dtype rule only."""
    E = gx.expectations
    out = []
    for num in schema.numerical:
        col = num.name
        if col not in present or col in required:
            continue
        out.append(
            tagged(E.ExpectColumnValuesToBeInTypeList, RULE_NUMERIC_DTYPE, col, column=col, type_list=_NUMERIC_TYPES)
        )
        if col in skip_values:
            continue
        out.append(tagged(E.ExpectColumnValuesToNotBeNull, RULE_FINITE_NAN, col, column=col))
        out.append(
            tagged(E.ExpectColumnValuesToBeBetween, RULE_FINITE_INF, col, column=col, min_value=-_FMAX, max_value=_FMAX)
        )
        if num.count:
            out.append(tagged(E.ExpectColumnValuesToBeBetween, RULE_COUNT, col, column=col, min_value=0))
    return out


def prepare_table(table_name: str, frame: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """The frame GX validates: the raw one plus the derived epoch-ms timestamp column (log only)."""
    frame = frame.reset_index(drop=True)  # GX reports index labels: make them unique row positions
    ts = schema.timestamp
    if table_name == LOG_TABLE and ts and ts in frame.columns:
        parsed = epoch_ms(frame[ts], schema.timestamp_unit, schema.timestamp_format)
        return frame.assign(**{timestamp_epoch_column(ts): parsed.to_numpy()})
    return frame
