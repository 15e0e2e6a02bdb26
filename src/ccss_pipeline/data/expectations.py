"""Great Expectations 1.x suites and the data-validation gate of the raw tables and of the split.

A raw source is a dict of pandas DataFrames: ``"log"`` (one row per impression) and optional side tables
named in ``schema.side_tables``. Each table has a human-readable origin (the file it came from) so that
every error names the file to fix.

Public API
----------
- :func:`build_table_suite` — the GX ``ExpectationSuite`` of one raw table (suites as code).
- :func:`validate_source` — runs every table's suite, plus the checks of each side table's join key
  against the log, and returns a :class:`ValidationReport`.
- :func:`validate_splits` — checks of the time-ordered train / validation / test split.
- :func:`raise_if_failed` — raises :class:`DataValidationError` with ONE message listing every failure.

Notes on GX 1.x behaviour relied upon here
------------------------------------------
- ``ExpectColumnValuesToBeBetween`` ignores missing values: NaN passes it. NaN is therefore caught by a
  separate ``ExpectColumnValuesToNotBeNull`` ("values finite (no NaN)"), while ±inf is caught by a between
  with the finite float bounds ``±numpy.finfo(float).max`` ("values finite (no ±inf)").
- An expectation on a missing column *errors* (``exception_info`` set, ``success`` False, empty
  ``result``) instead of failing. Suites here only add column-level expectations for columns present in
  the frame and an ``ExpectColumnToExist`` for the others; an errored result is still reported as a
  failure ("column exists" when the column is absent, the GX error message otherwise), never a crash.
- Timestamps are validated on a derived column ``<timestamp>__epoch_ms`` (float milliseconds since the
  epoch, NaN where unparseable) added by :func:`prepare_table` before validation, parsed by
  :func:`ccss_pipeline.data.timestamps.epoch_ms` — the parser the join uses too (``datetime`` values must be
  ISO 8601, or match ``schema.timestamp_format`` when it is set). Not-null on it means "timestamp
  parseable", a between with ``cfg.timestamp_min`` / ``cfg.timestamp_max`` converted to epoch milliseconds
  means "timestamp in range", and "no duplicated impressions" compares (user, item, derived timestamp), so
  one instant written two ways is still a duplicate. Offending examples are read back from the raw
  column(s) through GX's ``partial_unexpected_index_list``.
- Every schema categorical and numerical column must hold at least one value ("not entirely null",
  ``ExpectColumnUniqueValueCountToBeBetween(min_value=1)``), checked in the table the join takes it from.
- Side-table joins: the log must hold each present side table's key ("column exists"); the key must be
  numbers in both tables or strings in both ("join key types match", pandas: the join would crash);
  and the share of log rows whose key is found in the side table ("key found in side table") is
  validated on a derived boolean column ``<key>__in_<table>`` of the log with
  ``ExpectColumnValuesToBeInSet([True], mostly=cfg.min_key_coverage)``: rows not found get NaN from the
  left join. A side table the join takes no schema column from is measured (reported) but not gated.
- Split ordering: ``max(train time) <= min(validation time)`` and ``max(validation time) <= min(test
  time)``. Ties at a boundary are allowed by default (events with the same timestamp are simultaneous, not
  future information, and a split by event order may put them on either side); ``allow_ties=False``
  demands strict ``<``. Every non-empty split must hold both classes (AUC and log loss need them).
"""

from __future__ import annotations

import json
import math
import os
import threading
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

os.environ["GX_ANALYTICS_ENABLED"] = "False"

import great_expectations as gx  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from great_expectations.core import ExpectationSuite  # noqa: E402

from ccss_pipeline.config import SchemaConfig, ValidationConfig  # noqa: E402
from ccss_pipeline.data.timestamps import ISO_EXAMPLES, epoch_ms  # noqa: E402

__all__ = [
    "DataValidationError",
    "ExpectationOutcome",
    "Failure",
    "ValidationReport",
    "build_table_suite",
    "key_coverage_column",
    "prepare_table",
    "raise_if_failed",
    "timestamp_epoch_column",
    "validate_source",
    "validate_splits",
]

LOG_TABLE = "log"

# Readable rule names (used in messages, reports and tests).
RULE_EXISTS = "column exists"
RULE_TABLE_PRESENT = "table present"
RULE_ROWS = "row count >= 1"
RULE_LABEL_SET = "label in {0, 1}"
RULE_LABEL_NOT_NULL = "label not null"
RULE_ID_NOT_NULL = "id not null"
RULE_NUMERIC_DTYPE = "numeric dtype"
RULE_FINITE_NAN = "values finite (no NaN)"
RULE_FINITE_INF = "values finite (no ±inf)"
RULE_COUNT = "count >= 0"
RULE_TS_PARSEABLE = "timestamp parseable"
RULE_TS_RANGE = "timestamp in range"
RULE_UNIQUE_KEY = "unique key"
RULE_DUP_IMPRESSIONS = "no duplicated impressions"
RULE_NOT_ALL_NULL = "not entirely null"
RULE_KEY_TYPES = "join key types match"
RULE_KEY_COVERAGE = "key found in side table"
RULE_BOTH_CLASSES = "both classes present"
RULE_SPLIT_NOT_EMPTY = "split not empty"
RULE_TIME_ORDER = "time order (no leakage)"

_FMAX = float(np.finfo(np.float64).max)

# dtype names (non-object columns) and per-value type names (object columns) that count as numeric.
_NUMERIC_TYPES = [
    *(f"int{b}" for b in (8, 16, 32, 64)),
    *(f"uint{b}" for b in (8, 16, 32, 64)),
    *(f"Int{b}" for b in (8, 16, 32, 64)),
    *(f"UInt{b}" for b in (8, 16, 32, 64)),
    "float16", "float32", "float64", "Float32", "Float64",
    "bool", "boolean", "int", "float",
    *(f"{t}[pyarrow]" for t in ("int8", "int16", "int32", "int64", "float", "double", "bool")),
]


# --------------------------------------------------------------------------------------------------
# Report structures
# --------------------------------------------------------------------------------------------------


def _jsonable(value: Any) -> Any:
    """Plain-Python, strict-JSON version of a value (numpy scalars, NaN/inf, timestamps, dicts)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if value is pd.NaT:
        return "NaT"
    if isinstance(value, (pd.Timestamp, np.datetime64)):
        return str(pd.Timestamp(value))
    return str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, dict):
        return "(" + ", ".join(f"{k}={_fmt(v)}" for k, v in value.items()) + ")"
    return repr(value) if isinstance(value, str) else str(value)


@dataclass(frozen=True)
class Failure:
    """One failed expectation: which file, table, column, rule, how many rows and a few examples."""

    dataset: str
    table: str
    column: str | None
    rule: str
    unexpected_count: int | None = None
    examples: list[Any] = field(default_factory=list)
    detail: str = ""

    def line(self) -> str:
        col = f"column '{self.column}'" if self.column else "table"
        parts = [f"{self.dataset} [table '{self.table}'], {col}: {self.rule} failed"]
        if self.unexpected_count is not None:
            parts.append(f" for {self.unexpected_count} row(s)")
        if self.examples:
            parts.append("; e.g. " + ", ".join(_fmt(v) for v in self.examples))
        if self.detail:
            parts.append(f" ({self.detail})")
        return "".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass(frozen=True)
class ExpectationOutcome:
    """One evaluated expectation (passed or failed), for the report's statistics."""

    dataset: str
    table: str
    column: str | None
    rule: str
    expectation_type: str
    success: bool
    unexpected_count: int | None = None
    observed_value: Any = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return _jsonable(asdict(self))


@dataclass
class TableStats:
    dataset: str
    table: str
    rows: int
    columns: int


@dataclass
class ValidationReport:
    """Result of a validation gate; ``success`` is True iff there is no failure."""

    success: bool
    failures: list[Failure] = field(default_factory=list)
    outcomes: list[ExpectationOutcome] = field(default_factory=list)
    tables: dict[str, TableStats] = field(default_factory=dict)
    title: str = "Data validation"

    def to_dict(self) -> dict[str, Any]:
        tables: dict[str, Any] = {}
        for name, st in self.tables.items():
            outs = [o for o in self.outcomes if o.table == name]
            tables[name] = {
                "dataset": st.dataset,
                "rows": st.rows,
                "columns": st.columns,
                "evaluated": len(outs),
                "failed": sum(not o.success for o in outs),
                "expectations": [o.to_dict() for o in outs],
            }
        out = {
            "title": self.title,
            "success": self.success,
            "n_failures": len(self.failures),
            "failures": [f.to_dict() for f in self.failures],
            "tables": tables,
        }
        json.dumps(out, allow_nan=False)  # guarantee: strict JSON
        return out

    def error_message(self) -> str:
        if self.success:
            return f"{self.title}: PASSED"
        datasets = sorted({f.dataset for f in self.failures})
        head = (
            f"{self.title} FAILED: {len(self.failures)} expectation(s) failed in "
            f"{len(datasets)} dataset(s) ({', '.join(datasets)}):"
        )
        return "\n".join([head, *(f"  - {f.line()}" for f in self.failures)])

    def to_markdown(self) -> str:
        lines = [f"# {self.title} report", "", f"**Result: {'PASSED' if self.success else 'FAILED'}** "
                 f"({len(self.outcomes)} expectations evaluated, {len(self.failures)} failed)", ""]
        for name, st in self.tables.items():
            lines += [f"## {name} — `{st.dataset}`", "", f"{st.rows} rows, {st.columns} columns", "",
                      "| column | rule | expectation | result | unexpected | observed |",
                      "|---|---|---|---|---|---|"]
            for o in (o for o in self.outcomes if o.table == name):
                res = "PASS" if o.success else ("ERROR" if o.error else "FAIL")
                unexp = "" if o.unexpected_count is None else str(o.unexpected_count)
                lines.append(f"| {o.column or '(table)'} | {_md(o.rule)} | `{o.expectation_type}` | {res} "
                             f"| {unexp} | {_md(_observed(o.observed_value))} |")
            lines.append("")
        if self.failures:
            lines += ["## Failures", ""] + [f"- {_md(f.line())}" for f in self.failures] + [""]
        return "\n".join(lines)


def combine_reports(reports: Iterable[ValidationReport], title: str, max_examples: int = 5) -> ValidationReport:
    """One report for a table validated a chunk at a time: an expectation passes when it passed on every
    chunk; counts of unexpected rows and table rows add up; examples are kept up to ``max_examples``."""
    outcomes: dict[tuple[Any, ...], ExpectationOutcome] = {}
    failures: dict[tuple[Any, ...], Failure] = {}
    tables: dict[str, TableStats] = {}
    for report in reports:
        for o in report.outcomes:
            key = (o.dataset, o.table, o.column, o.rule, o.expectation_type)
            seen = outcomes.get(key)
            count = None if o.unexpected_count is None and (seen is None or seen.unexpected_count is None) else (
                (o.unexpected_count or 0) + ((seen.unexpected_count or 0) if seen else 0))
            outcomes[key] = ExpectationOutcome(o.dataset, o.table, o.column, o.rule, o.expectation_type,
                                               o.success and (seen.success if seen else True), count,
                                               seen.observed_value if seen else o.observed_value,
                                               (seen.error if seen else None) or o.error)
        for f in report.failures:
            key = (f.dataset, f.table, f.column, f.rule)
            seen_f = failures.get(key)
            if seen_f is None:
                failures[key] = f
            else:
                count = None if f.unexpected_count is None else (seen_f.unexpected_count or 0) + f.unexpected_count
                examples = _distinct([*seen_f.examples, *f.examples])[:max_examples]
                failures[key] = Failure(f.dataset, f.table, f.column, f.rule, count, examples, seen_f.detail)
        for name, st in report.tables.items():
            rows = st.rows + (tables[name].rows if name in tables else 0)
            tables[name] = TableStats(st.dataset, st.table, rows, st.columns)
    return ValidationReport(success=not failures, failures=list(failures.values()), outcomes=list(outcomes.values()),
                            tables=tables, title=title)


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def _observed(value: Any, width: int = 80) -> str:
    """A short, one-line rendering of an outcome's observed value for the Markdown table."""
    if value is None:
        return ""
    if isinstance(value, float) or isinstance(value, np.floating):
        text = f"{float(value):.6g}"
    else:
        text = _fmt(value)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


class DataValidationError(ValueError):
    """Raised when a validation gate fails; the message lists every failed expectation."""

    def __init__(self, report: ValidationReport):
        self.report = report
        super().__init__(report.error_message())


def raise_if_failed(report: ValidationReport) -> ValidationReport:
    """Raise :class:`DataValidationError` if the report failed; return it unchanged otherwise."""
    if not report.success:
        raise DataValidationError(report)
    return report


# --------------------------------------------------------------------------------------------------
# GX context (one ephemeral context per process, created lazily; datasources are per call and removed)
# --------------------------------------------------------------------------------------------------

_CONTEXT: Any = None
_LOCK = threading.RLock()


def _context() -> Any:
    global _CONTEXT
    with _LOCK:
        if _CONTEXT is None:
            ctx = gx.get_context(mode="ephemeral")
            try:
                from great_expectations.data_context.types.base import ProgressBarsConfig

                ctx.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)
            except Exception:  # pragma: no cover - cosmetic only
                pass
            _CONTEXT = ctx
        return _CONTEXT


def _run_suites(jobs: list[tuple[str, pd.DataFrame, ExpectationSuite]], max_examples: int) -> dict[str, Any]:
    """Validate each (table, frame, suite) with GX; returns table -> ExpectationSuiteValidationResult."""
    results: dict[str, Any] = {}
    with _LOCK:
        ctx = _context()
        ds_name = f"ccss_{uuid.uuid4().hex}"
        ds = ctx.data_sources.add_pandas(ds_name)
        try:
            for table, frame, suite in jobs:
                asset = ds.add_dataframe_asset(name=table)
                bd = asset.add_batch_definition_whole_dataframe(f"{table}_whole")
                batch = bd.get_batch(batch_parameters={"dataframe": frame})
                results[table] = batch.validate(
                    suite, result_format={"result_format": "SUMMARY", "partial_unexpected_count": max_examples}
                )
        finally:
            ctx.data_sources.delete(ds_name)
    return results


# --------------------------------------------------------------------------------------------------
# Suites
# --------------------------------------------------------------------------------------------------


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
        return (f"unit datetime: missing, or not ISO 8601 (like {ISO_EXAMPLES}); for another layout set "
                "schema.timestamp_format to its strftime format, e.g. '%d/%m/%Y' — day-first and month-first "
                "dates are never guessed")
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


def _join_columns(schema: SchemaConfig, columns: Mapping[str, Iterable[str]]) -> dict[str, list[str]]:
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


def _E(cls: Any, rule: str, report_column: str | None, /, **kwargs: Any) -> Any:
    """A GX expectation tagged with its readable rule and the column to name in messages."""
    meta = {"rule": rule, "column": report_column}
    if "meta" in kwargs:
        meta.update(kwargs.pop("meta"))
    return cls(meta=meta, **kwargs)


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
    _context()  # GX needs an active context to add expectations to a suite
    E = gx.expectations
    cols = list(frame_columns)
    present = set(cols)
    skip_values = set(non_numeric)
    suite = ExpectationSuite(name=f"ccss_raw_{table_name}")
    add = suite.add_expectation

    add(_E(E.ExpectTableRowCountToBeBetween, RULE_ROWS, None, min_value=1))

    # required columns of this table
    required = _table_key_columns(table_name, schema, label=label_required)
    for col in required:
        add(_E(E.ExpectColumnToExist, RULE_EXISTS, col, column=col))

    # schema feature columns: checked where present; a column in no table is reported against the log
    searched = dict(all_columns or {table_name: cols})
    searched[table_name] = cols
    feature_cols = [n.name for n in schema.numerical] + list(schema.categorical)
    if table_name == LOG_TABLE:
        for col in feature_cols:
            if not any(col in set(c) for c in searched.values()):
                add(_E(E.ExpectColumnToExist, RULE_EXISTS, col, column=col,
                       meta={"detail": f"not found in any of the tables searched: {', '.join(searched)}"}))
        # the join key of every side table loaded must be in the log too (else the join has nothing to match)
        join_keys: dict[str, list[str]] = {}
        for name, side in schema.side_tables.items():
            if name in searched and side.key not in required:
                join_keys.setdefault(side.key, []).append(name)
        for key, names in join_keys.items():
            add(_E(E.ExpectColumnToExist, RULE_EXISTS, key, column=key,
                   meta={"detail": f"join key of side table(s) {', '.join(repr(n) for n in names)}: the log "
                                   "must hold it for the side table to be joined"}))

    # every schema feature column holds at least one value, checked where the join takes it from
    owners = _column_owners(schema, searched)
    for col in feature_cols:
        if owners.get(col) == table_name:
            add(_E(E.ExpectColumnUniqueValueCountToBeBetween, RULE_NOT_ALL_NULL, col, column=col, min_value=1))

    if table_name == LOG_TABLE:
        for col in (schema.user, schema.item):
            if col in present:
                add(_E(E.ExpectColumnValuesToNotBeNull, RULE_ID_NOT_NULL, col, column=col))
        if schema.label in present:
            add(_E(E.ExpectColumnValuesToNotBeNull, RULE_LABEL_NOT_NULL, schema.label, column=schema.label))
            add(_E(E.ExpectColumnValuesToBeInSet, RULE_LABEL_SET, schema.label, column=schema.label,
                   value_set=[0, 1]))
        ts = schema.timestamp
        if ts and ts in present:
            derived = timestamp_epoch_column(ts)
            meta = {"source_column": ts, "unit": schema.timestamp_unit}
            if schema.timestamp_unit in ("ms", "s"):
                add(_E(E.ExpectColumnValuesToBeInTypeList, RULE_NUMERIC_DTYPE, ts, column=ts,
                       type_list=_NUMERIC_TYPES))
            add(_E(E.ExpectColumnValuesToNotBeNull, RULE_TS_PARSEABLE, ts, column=derived,
                   meta={**meta, "detail": _ts_parse_detail(schema)}))
            add(_E(E.ExpectColumnValuesToBeBetween, RULE_TS_RANGE, ts, column=derived,
                   min_value=_epoch_ms_bound(cfg.timestamp_min), max_value=_epoch_ms_bound(cfg.timestamp_max),
                   meta={**meta, "detail": f"allowed [{cfg.timestamp_min}, {cfg.timestamp_max}]; older or newer "
                                           "data: set data_validation.timestamp_min / timestamp_max in your "
                                           "environment's parameters_data_validation.yml (conf/<env>/, "
                                           "e.g. conf/own_table/)"}))
        keys = [c for c in (schema.user, schema.item, ts) if c]
        if ts and schema.user and schema.item and all(c in present for c in keys):
            # compared on the parsed instant, so one instant written two ways is still a duplicate; rows with
            # a missing id or an unparseable timestamp are reported by their own rules, not here
            frac = float(getattr(cfg, "max_duplicate_impression_fraction", 0.0))
            extra: dict[str, Any] = {"mostly": 1.0 - frac} if frac > 0 else {}
            detail = "same user, item and timestamp instant"
            if frac:
                detail += f"; at most {frac:.2%} of rows may be duplicated"
            add(_E(E.ExpectCompoundColumnsToBeUnique, RULE_DUP_IMPRESSIONS, ", ".join(keys),
                   column_list=[schema.user, schema.item, timestamp_epoch_column(ts)],
                   ignore_row_if="any_value_is_missing",
                   meta={"detail": detail, "source_columns": keys}, **extra))
    elif table_name in schema.side_tables:
        key = schema.side_tables[table_name].key
        if key in present:
            add(_E(E.ExpectColumnValuesToNotBeNull, RULE_ID_NOT_NULL, key, column=key))
            add(_E(E.ExpectColumnValuesToBeUnique, RULE_UNIQUE_KEY, key, column=key))

    for num in schema.numerical:
        col = num.name
        if col not in present or col in required:
            continue
        add(_E(E.ExpectColumnValuesToBeInTypeList, RULE_NUMERIC_DTYPE, col, column=col, type_list=_NUMERIC_TYPES))
        if col in skip_values:
            continue
        add(_E(E.ExpectColumnValuesToNotBeNull, RULE_FINITE_NAN, col, column=col))
        add(_E(E.ExpectColumnValuesToBeBetween, RULE_FINITE_INF, col, column=col, min_value=-_FMAX,
               max_value=_FMAX))
        if num.count:
            add(_E(E.ExpectColumnValuesToBeBetween, RULE_COUNT, col, column=col, min_value=0))
    return suite


def prepare_table(table_name: str, frame: pd.DataFrame, schema: SchemaConfig) -> pd.DataFrame:
    """The frame GX validates: the raw one plus the derived epoch-ms timestamp column (log only)."""
    frame = frame.reset_index(drop=True)  # GX reports index labels: make them unique row positions
    ts = schema.timestamp
    if table_name == LOG_TABLE and ts and ts in frame.columns:
        parsed = epoch_ms(frame[ts], schema.timestamp_unit, schema.timestamp_format)
        return frame.assign(**{timestamp_epoch_column(ts): parsed.to_numpy()})
    return frame


# --------------------------------------------------------------------------------------------------
# Result parsing
# --------------------------------------------------------------------------------------------------


def _distinct(values: list[Any]) -> list[Any]:
    seen: set[str] = set()
    out = []
    for v in values:
        key = repr(v)
        if key not in seen:
            seen.add(key)
            out.append(v)
    return out


def _error_message(exc_info: Any) -> str | None:
    """The GX error message of an errored expectation, None if it ran."""
    if not exc_info:
        return None
    if isinstance(exc_info, dict) and "raised_exception" in exc_info:
        return (exc_info.get("exception_message") or "error") if exc_info.get("raised_exception") else None
    if isinstance(exc_info, dict):  # keyed by metric id
        for info in exc_info.values():
            if isinstance(info, dict) and info.get("raised_exception"):
                return str(info.get("exception_message") or "error")
    return None


def _collect(
    dataset: str,
    table: str,
    frame: pd.DataFrame,
    validation: Any,
    max_examples: int,
    report: ValidationReport,
) -> None:
    for res in validation.results:
        conf = res.expectation_config
        meta = dict(conf.meta or {})
        kwargs = conf.kwargs
        gx_col = kwargs.get("column")
        column = meta.get("column") or gx_col or (", ".join(kwargs.get("column_list", [])) or None)
        rule = meta.get("rule") or conf.type
        result = dict(res.result or {})
        err = _error_message(res.exception_info)
        unexpected = result.get("unexpected_count")
        observed = result.get("observed_value")
        success = bool(res.success) and err is None
        coverage = None
        if meta.get("side_table") and err is None:  # "key found in side table": share of log rows found
            rows = int(result.get("element_count") or 0)
            coverage = (rows - int(unexpected or 0)) / rows if rows else None
            observed = {"side_table": meta["side_table"],
                        "coverage": None if coverage is None else round(coverage, 6),
                        "min_key_coverage": meta.get("min_key_coverage", "not gated")}
        report.outcomes.append(ExpectationOutcome(
            dataset=dataset, table=table, column=column, rule=rule, expectation_type=conf.type,
            success=success, unexpected_count=unexpected, observed_value=observed, error=err))
        if success or (rule == RULE_NOT_ALL_NULL and not len(frame)):  # an empty table fails "row count" once
            continue
        detail = str(meta.get("detail", ""))
        examples: list[Any] = []
        if err is not None:
            needed = [gx_col] if gx_col else list(kwargs.get("column_list", []))
            missing = [c for c in needed if c not in frame.columns]
            if missing:
                rule, detail = RULE_EXISTS, f"column missing, so '{meta.get('rule', conf.type)}' not evaluated"
                column = ", ".join(missing) if not meta.get("source_column") else column
            else:
                detail = f"could not be evaluated: {err.splitlines()[0][:200]}"
        else:
            src = meta.get("source_column")
            srcs = [c for c in meta.get("source_columns") or [] if c in frame.columns]
            idx = result.get("partial_unexpected_index_list")
            rows = ([i for i in idx or [] if not isinstance(i, dict) and i in frame.index]
                    if frame.index.is_unique else [])
            if src and src in frame.columns and rows:  # derived column: raw values
                examples = [frame.at[i, src] for i in rows]
            elif srcs and rows:  # compound key with a derived column: the raw values of the row
                examples = [{c: frame.at[i, c] for c in srcs} for i in rows]
            else:
                examples = list(result.get("partial_unexpected_list") or [])
            examples = _distinct(examples)
            if conf.type == "expect_column_values_to_be_in_type_list" and unexpected is None:
                detail = f"observed dtype {observed}"
            elif conf.type == "expect_table_row_count_to_be_between":
                detail = f"observed {observed} rows"
            elif conf.type == "expect_column_to_exist" and not detail:
                detail = "column missing"
            elif conf.type == "expect_column_unique_value_count_to_be_between":
                detail = f"observed {observed} distinct value(s): every value is missing"
            elif coverage is not None:
                detail = detail.replace("{coverage}", f"{coverage:.2%}")
            elif conf.type == "expect_column_distinct_values_to_contain_set":
                seen = sorted(map(_fmt, frame[gx_col].dropna().unique())) if gx_col in frame.columns else []
                detail = f"observed values {{{', '.join(seen)}}}, expected {set(kwargs.get('value_set', []))}"
        report.failures.append(Failure(dataset=dataset, table=table, column=column, rule=rule,
                                       unexpected_count=unexpected, examples=examples[:max_examples],
                                       detail=detail))


# --------------------------------------------------------------------------------------------------
# Gates
# --------------------------------------------------------------------------------------------------


def missing_tables(tables: Mapping[str, Any], origins: Mapping[str, str], schema: SchemaConfig) -> list[Failure]:
    """"table present" failures: the log, or a required side table, not loaded."""
    return [Failure(dataset=origins.get(name, name), table=name, column=None, rule=RULE_TABLE_PRESENT,
                    detail="table not loaded")
            for name in [LOG_TABLE, *schema.side_tables]
            if name not in tables and (name == LOG_TABLE or schema.side_tables[name].required)]


def key_types_detail(key: str, side_table: str, side_origin: str, kinds: tuple[Any, Any], types: tuple[Any, Any]
                     ) -> str:
    """The "join key types match" message: what each table holds and why the join cannot work."""
    return (f"the log holds {kinds[0]} (dtype {types[0]}) but side table '{side_table}' ({side_origin}) holds "
            f"{kinds[1]} (dtype {types[1]}) in its key column '{key}': they can never match, so the join is "
            "impossible; write the key the same way in both files")


def key_coverage_detail(key: str, side_table: str, side_origin: str, min_coverage: float, columns: list[str]) -> str:
    """The "key found in side table" message, with ``{coverage}`` standing for the measured share."""
    return (f"{{coverage}} of the log rows have a '{key}' found in side table '{side_table}' ({side_origin}), "
            f"below data_validation.min_key_coverage = {min_coverage:g}; the left join leaves "
            f"{', '.join(columns)} empty (NaN) for the others")


def validate_source(
    tables: Mapping[str, pd.DataFrame],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig | None = None,
    *,
    label_required: bool = True,
    title: str = "Raw data validation",
) -> ValidationReport:
    """Run every raw table's suite (the log and the side tables of the schema) and report all failures.

    ``label_required=False`` validates rows to score: a log without the label column passes, one with
    it gets the label rules.

    Tables not named by the schema (neither ``"log"`` nor in ``schema.side_tables``) are ignored; a missing
    log or a missing *required* side table is a "table present" failure. Each side table loaded is also
    checked against the log: its key must be in the log, be numbers in both or strings in both, and be
    found for at least ``cfg.min_key_coverage`` of the log rows (if the join takes any column from it).
    """
    cfg = cfg or ValidationConfig()
    report = ValidationReport(success=True, title=title)
    report.failures.extend(missing_tables(tables, origins, schema))
    present = {n: tables[n] for n in [LOG_TABLE, *schema.side_tables] if n in tables}
    all_columns = {n: [str(c) for c in f.columns] for n, f in present.items()}
    suites, frames = {}, {}
    for name, frame in present.items():
        non_numeric = _non_numeric_columns(frame, [n.name for n in schema.numerical])
        suites[name] = build_table_suite(name, all_columns[name], schema, cfg, all_columns=all_columns,
                                         non_numeric=non_numeric, label_required=label_required)
        frames[name] = prepare_table(name, frame, schema)
        report.tables[name] = TableStats(dataset=origins.get(name, name), table=name, rows=len(frame),
                                         columns=frame.shape[1])
    type_checks = _add_join_checks(present, origins, schema, cfg, suites, frames)
    jobs = [(name, frames[name], suites[name]) for name in present]
    for name, validation in _run_suites(jobs, cfg.max_offending_values).items():
        _collect(origins.get(name, name), name, frames[name], validation, cfg.max_offending_values, report)
    for outcome, failure in type_checks:
        report.outcomes.append(outcome)
        if failure is not None:
            report.failures.append(failure)
    report.success = not report.failures
    return report


_KEY_KINDS = {
    "integer": "numbers", "floating": "numbers", "mixed-integer-float": "numbers", "decimal": "numbers",
    "boolean": "numbers", "string": "strings", "bytes": "strings", "datetime64": "datetimes",
    "datetime": "datetimes", "date": "datetimes",
}


def _key_kind(series: pd.Series) -> str | None:
    """What a key column holds: numbers, strings or datetimes; None when empty or mixed (not compared)."""
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetimes"
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return "numbers"
    values = series.cat.categories.to_series() if isinstance(series.dtype, pd.CategoricalDtype) else series
    return _KEY_KINDS.get(pd.api.types.infer_dtype(values, skipna=True))


def _add_join_checks(
    present: Mapping[str, pd.DataFrame],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    suites: dict[str, ExpectationSuite],
    frames: dict[str, pd.DataFrame],
) -> list[tuple[ExpectationOutcome, Failure | None]]:
    """Cross-table checks of each side table's key against the log.

    Key types (pandas) are returned as (outcome, failure or None); key coverage is added to the log's GX
    suite, on a derived boolean column added to the log's prepared frame. A key missing from either table
    is reported by that table's suite ("column exists") and skipped here.
    """
    if LOG_TABLE not in present:
        return []
    E = gx.expectations
    log = present[LOG_TABLE]
    log_origin = origins.get(LOG_TABLE, LOG_TABLE)
    taken = _join_columns(schema, {n: [str(c) for c in f.columns] for n, f in present.items()})
    checks: list[tuple[ExpectationOutcome, Failure | None]] = []
    derived: dict[str, np.ndarray] = {}
    for name, side in schema.side_tables.items():
        key = side.key
        if name not in present or key not in log.columns or key not in present[name].columns:
            continue
        side_frame, side_origin = present[name], origins.get(name, name)
        lk, sk = log[key], side_frame[key]
        if isinstance(lk, pd.DataFrame) or isinstance(sk, pd.DataFrame):
            continue  # a repeated column name: refused when the file is read
        kinds = (_key_kind(lk), _key_kind(sk))
        ok = None in kinds or kinds[0] == kinds[1]
        outcome = ExpectationOutcome(
            dataset=log_origin, table=LOG_TABLE, column=key, rule=RULE_KEY_TYPES,
            expectation_type="pandas:join_key_types", success=ok,
            observed_value={LOG_TABLE: str(lk.dtype), name: str(sk.dtype)})
        failure = None
        if not ok:
            failure = Failure(
                dataset=log_origin, table=LOG_TABLE, column=key, rule=RULE_KEY_TYPES,
                examples=_distinct([*lk.dropna().head(1), *sk.dropna().head(1)]),
                detail=key_types_detail(key, name, side_origin, kinds, (lk.dtype, sk.dtype)))
        checks.append((outcome, failure))
        if not ok:
            continue
        column = key_coverage_column(key, name)
        derived[column] = (lk.notna() & lk.isin(sk.dropna().unique())).to_numpy()
        columns = taken.get(name, [])
        meta: dict[str, Any] = {"source_column": key, "side_table": name}
        if columns:
            meta["min_key_coverage"] = cfg.min_key_coverage
            meta["detail"] = key_coverage_detail(key, name, side_origin, cfg.min_key_coverage, columns)
        else:
            meta["detail"] = f"not gated: the join takes no schema column from side table '{name}'"
        suites[LOG_TABLE].add_expectation(_E(
            E.ExpectColumnValuesToBeInSet, RULE_KEY_COVERAGE, key, column=column, value_set=[True],
            mostly=cfg.min_key_coverage if columns else 0.0, meta=meta))
    if derived:
        frames[LOG_TABLE] = frames[LOG_TABLE].assign(**derived)
    return checks


def _non_numeric_columns(frame: pd.DataFrame, names: Iterable[str]) -> list[str]:
    """Columns among ``names`` holding values that are not numbers (strings, dates, ...)."""
    out = []
    for name in names:
        if name not in frame.columns or isinstance(frame[name], pd.DataFrame):
            continue
        col = frame[name]
        if pd.api.types.is_bool_dtype(col) or (
            pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_datetime64_any_dtype(col)
        ):
            continue
        if col.dtype == object and not col.map(lambda v: isinstance(v, (str, bytes)) or
                                                 not isinstance(v, (int, float, np.number, type(None)))).any():
            continue  # object column of plain numbers: checked value by value
        out.append(name)
    return out


def _comparable_time(series: pd.Series) -> pd.Series:
    if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_datetime64_any_dtype(series):
        return series
    return pd.to_datetime(series, errors="coerce")


def validate_splits(
    train: pd.DataFrame,
    validation: pd.DataFrame,
    test: pd.DataFrame,
    label_col: str,
    time_col: str | None,
    origins: Mapping[str, str] | None = None,
    *,
    allow_ties: bool = True,
    max_offending_values: int = 5,
    check_order: bool = True,
) -> ValidationReport:
    """Checks after the split, all reported as :class:`Failure` s.

    GX: every split non-empty, label present / not null / in {0, 1}, both classes present in every
    non-empty split (train needs them to learn; validation and test to compute AUC and log loss, else every
    search trial fails and the metrics are NaN).
    pandas (cross-table): ``max(train[time]) <= min(validation[time])`` and
    ``max(validation[time]) <= min(test[time])``; ties at a boundary are allowed unless
    ``allow_ties=False`` (then strict ``<``). Ordering is not checked against an empty split, nor at all
    with ``check_order=False`` (random and column splits are not ordered in time).
    """
    origins = dict(origins or {})
    _context()
    E = gx.expectations
    splits = {"train": train, "validation": validation, "test": test}
    report = ValidationReport(success=True, title="Split validation")
    jobs = []
    for name, frame in splits.items():
        suite = ExpectationSuite(name=f"ccss_split_{name}")
        suite.add_expectation(_E(E.ExpectTableRowCountToBeBetween, RULE_SPLIT_NOT_EMPTY, None, min_value=1))
        suite.add_expectation(_E(E.ExpectColumnToExist, RULE_EXISTS, label_col, column=label_col))
        if time_col:
            suite.add_expectation(_E(E.ExpectColumnToExist, RULE_EXISTS, time_col, column=time_col))
        if label_col in frame.columns:
            suite.add_expectation(_E(E.ExpectColumnValuesToNotBeNull, RULE_LABEL_NOT_NULL, label_col,
                                     column=label_col))
            suite.add_expectation(_E(E.ExpectColumnValuesToBeInSet, RULE_LABEL_SET, label_col, column=label_col,
                                     value_set=[0, 1]))
            if len(frame):
                suite.add_expectation(_E(E.ExpectColumnDistinctValuesToContainSet, RULE_BOTH_CLASSES, label_col,
                                         column=label_col, value_set=[0, 1]))
        jobs.append((name, frame, suite))
        report.tables[name] = TableStats(dataset=origins.get(name, name), table=name, rows=len(frame),
                                         columns=frame.shape[1])
    for name, res in _run_suites(jobs, max_offending_values).items():
        _collect(origins.get(name, name), name, splits[name], res, max_offending_values, report)

    if time_col and check_order:
        order = [("train", "validation"), ("validation", "test")]
        for early, late in order:
            a, b = splits[early], splits[late]
            if not len(a) or not len(b) or time_col not in a.columns or time_col not in b.columns:
                continue
            ta, tb = _comparable_time(a[time_col]), _comparable_time(b[time_col])
            boundary = ta.max()
            mask = ((tb < boundary) if allow_ties else (tb <= boundary)).to_numpy()
            bad = b[time_col][mask]
            op = "<=" if allow_ties else "<"
            rule = f"{RULE_TIME_ORDER}: max({early}) {op} min({late})"
            ok = bad.empty
            report.outcomes.append(ExpectationOutcome(
                dataset=origins.get(late, late), table=late, column=time_col, rule=rule,
                expectation_type="pandas:time_order", success=ok, unexpected_count=int(len(bad)),
                observed_value={"max_" + early: boundary, "min_" + late: tb.min()}))
            if not ok:
                report.failures.append(Failure(
                    dataset=origins.get(late, late), table=late, column=time_col, rule=rule,
                    unexpected_count=int(len(bad)), examples=_distinct(list(bad))[:max_offending_values],
                    detail=f"max({early})={boundary}, min({late})={tb.min()}: {late} rows "
                           f"{'before' if allow_ties else 'at or before'} the end of {early}"))
    report.success = not report.failures
    return report


def _batches(table: Any, columns: list[str], batch_rows: int) -> Iterable[pd.DataFrame]:
    """The table's ``columns`` as frames of at most ``batch_rows`` rows (one empty frame when empty)."""
    present = [c for c in columns if c in table.columns]
    empty = True
    for batch in table.select(*present).to_pyarrow_batches(chunk_size=batch_rows):
        if batch.num_rows:
            empty = False
            yield batch.to_pandas()
    if empty:
        yield table.select(*present).limit(0).to_pandas()


def validate_split_tables(
    tables: Mapping[str, Any],
    label_col: str,
    time_col: str | None,
    origins: Mapping[str, str] | None = None,
    *,
    allow_ties: bool = True,
    max_offending_values: int = 5,
    check_order: bool = True,
    batch_rows: int = 1_000_000,
) -> ValidationReport:
    """:func:`validate_splits` on engine tables (``train``, ``validation``, ``test``; Ibis), with memory
    bounded by ``batch_rows``: the row rules (label present, not null, in {0, 1}) run in GX a batch at a
    time and are combined; "both classes present" runs in GX on the split's distinct labels; the row
    count and the time order are engine aggregates. Same rules, messages and report as the frame version.
    """
    origins = dict(origins or {})
    _context()
    E = gx.expectations
    reports: list[ValidationReport] = []
    order_facts: dict[str, tuple[int, Any, Any]] = {}
    summary = ValidationReport(success=True, title="Split validation")
    for name, table in tables.items():
        dataset = origins.get(name, name)
        suite = ExpectationSuite(name=f"ccss_split_{name}")
        suite.add_expectation(_E(E.ExpectColumnToExist, RULE_EXISTS, label_col, column=label_col))
        if time_col:
            suite.add_expectation(_E(E.ExpectColumnToExist, RULE_EXISTS, time_col, column=time_col))
        if label_col in table.columns:
            suite.add_expectation(_E(E.ExpectColumnValuesToNotBeNull, RULE_LABEL_NOT_NULL, label_col, column=label_col))
            suite.add_expectation(_E(E.ExpectColumnValuesToBeInSet, RULE_LABEL_SET, label_col, column=label_col,
                                     value_set=[0, 1]))
        for batch in _batches(table, [label_col, *([time_col] if time_col else [])], batch_rows):
            part = ValidationReport(success=True, title="Split validation")
            for table_name, res in _run_suites([(name, batch, suite)], max_offending_values).items():
                _collect(dataset, table_name, batch, res, max_offending_values, part)
            reports.append(part)
        facts = table.aggregate(
            n=table.count(),
            **({"lo": table[time_col].min(), "hi": table[time_col].max()} if time_col and time_col in table.columns
               else {}),
        ).to_pandas().iloc[0]
        rows = int(facts["n"])
        lo, hi = facts.get("lo"), facts.get("hi")
        order_facts[name] = (rows, None if lo is None or pd.isna(lo) else int(lo), None if hi is None or pd.isna(hi) else int(hi))
        summary.tables[name] = TableStats(dataset=dataset, table=name, rows=rows, columns=len(table.columns))
        summary.outcomes.append(ExpectationOutcome(dataset, name, None, RULE_SPLIT_NOT_EMPTY, "engine:row_count",
                                                   rows >= 1, None, rows))
        if rows < 1:
            summary.failures.append(Failure(dataset, name, None, RULE_SPLIT_NOT_EMPTY, detail="0 rows"))
        elif label_col in table.columns:
            distinct = table.select(label_col).distinct().to_pandas()
            classes = ExpectationSuite(name=f"ccss_split_{name}_classes")
            classes.add_expectation(_E(E.ExpectColumnDistinctValuesToContainSet, RULE_BOTH_CLASSES, label_col,
                                       column=label_col, value_set=[0, 1]))
            for table_name, res in _run_suites([(name, distinct, classes)], max_offending_values).items():
                _collect(dataset, table_name, distinct, res, max_offending_values, summary)
    report = combine_reports([*reports, summary], "Split validation", max_offending_values)
    report.tables = summary.tables
    if time_col and check_order:
        for early, late in (("train", "validation"), ("validation", "test")):
            n_early, _, boundary = order_facts[early]
            n_late, late_min, _ = order_facts[late]
            if not n_early or not n_late or boundary is None:
                continue
            ts = tables[late][time_col]
            offending = tables[late].filter(ts < boundary if allow_ties else ts <= boundary)
            bad = int(offending.count().to_pandas())
            examples = offending.select(time_col).distinct().order_by(time_col).limit(max_offending_values)
            op = "<=" if allow_ties else "<"
            rule = f"{RULE_TIME_ORDER}: max({early}) {op} min({late})"
            dataset = origins.get(late, late)
            report.outcomes.append(ExpectationOutcome(
                dataset=dataset, table=late, column=time_col, rule=rule, expectation_type="engine:time_order",
                success=bad == 0, unexpected_count=bad, observed_value={"max_" + early: boundary, "min_" + late: late_min}))
            if bad:
                report.failures.append(Failure(
                    dataset=dataset, table=late, column=time_col, rule=rule, unexpected_count=bad,
                    examples=list(examples.to_pandas()[time_col]),
                    detail=f"max({early})={boundary}, min({late})={late_min}: {late} rows "
                           f"{'before' if allow_ties else 'at or before'} the end of {early}"))
    report.success = not report.failures
    return report
