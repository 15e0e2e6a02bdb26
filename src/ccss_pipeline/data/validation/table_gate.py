"""The raw-data gate on engine tables: every row validated, memory bounded by a batch.

The same suites (:func:`ccss_pipeline.data.validation.build_table_suite`), rules, report and messages
as :func:`~ccss_pipeline.data.validation.validate_source` on frames, split by what a batch can decide:

- **row rules** (column exists, ids and label not null, label in {0, 1}, numeric dtype, timestamp
  parseable and in range, finite values, counts >= 0) run in Great Expectations on batches of at most
  ``batch_rows`` rows read from the engine (the derived epoch-ms column added by the one parser), and
  are combined: a rule passes when it passed on every batch, unexpected counts add up;
- **whole-table rules** (row count >= 1, not entirely null, unique side-table key, no duplicated
  impressions, join key types, key found in side table) are engine aggregates over the whole table
  (group-bys and semi-joins that DuckDB spills and Spark distributes), reported as outcomes of type
  ``engine:<rule>``. Their examples are the smallest offending values (a batch cannot know the first).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import ibis
import pandas as pd

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.relational.timestamps import epoch_ms
from ccss_pipeline.data.sources import engine_errors
from ccss_pipeline.data.validation.gates import _batches, key_coverage_detail, key_types_detail, missing_tables
from ccss_pipeline.data.validation.gx_run import _collect, _run_suites
from ccss_pipeline.data.validation.report import (
    ExpectationOutcome,
    Failure,
    TableStats,
    ValidationReport,
    combine_reports,
)
from ccss_pipeline.data.validation.rules import (
    LOG_TABLE,
    RULE_DUP_IMPRESSIONS,
    RULE_KEY_COVERAGE,
    RULE_KEY_TYPES,
    RULE_NOT_ALL_NULL,
    RULE_ROWS,
    RULE_UNIQUE_KEY,
)
from ccss_pipeline.data.validation.suites import _join_columns, build_table_suite, prepare_table

#: Rules a batch cannot decide; the engine evaluates them on the whole table.
WHOLE_TABLE_RULES = frozenset({RULE_ROWS, RULE_NOT_ALL_NULL, RULE_UNIQUE_KEY, RULE_DUP_IMPRESSIONS})

__all__ = ["WHOLE_TABLE_RULES", "validate_source_tables"]


def _kind(dtype: Any) -> str | None:
    """numbers, strings or datetimes (as the frame gate's key kinds); None for other types."""
    if dtype.is_numeric() or dtype.is_boolean():
        return "numbers"
    if dtype.is_string():
        return "strings"
    if dtype.is_temporal():
        return "datetimes"
    return None


def _non_numeric(table: ibis.Table, names: Iterable[str]) -> list[str]:
    return [n for n in names if n in table.columns and _kind(table[n].type()) != "numbers"]


def _present(column: ibis.Column) -> ibis.Column:
    """Not missing: not NULL and, for floats, not NaN (pandas and GX count NaN as missing)."""
    return column.notnull() & ~column.isnan() if column.type().is_floating() else column.notnull()


def _scalar(expr: Any) -> Any:
    """The value of a scalar expression; None for SQL NULL (an empty sum: None on DuckDB, NaN on Spark)."""
    value = expr.execute()
    return None if value is None or pd.isna(value) else value


def _smallest(values: ibis.Table, column: str, limit: int) -> list[Any]:
    frame = values.select(column).distinct().order_by(column).limit(limit).to_pandas()
    return frame[column].tolist()


class _Checks:
    """Outcomes and failures of the whole-table rules, in the report's own types."""

    def __init__(self, report: ValidationReport) -> None:
        self.report = report

    def add(
        self,
        dataset: str,
        table: str,
        column: str | None,
        rule: str,
        ok: bool,
        *,
        kind: str,
        unexpected: int | None = None,
        observed: Any = None,
        examples: list[Any] | None = None,
        detail: str = "",
    ) -> None:
        self.report.outcomes.append(
            ExpectationOutcome(dataset, table, column, rule, f"engine:{kind}", ok, unexpected, observed)
        )
        if not ok:
            self.report.failures.append(Failure(dataset, table, column, rule, unexpected, list(examples or []), detail))


def _whole_table_rules(
    name: str,
    table: ibis.Table,
    rows: int,
    dataset: str,
    suite: Any,
    schema: SchemaConfig,
    cfg: ValidationConfig,
    checks: _Checks,
) -> None:
    """The engine's verdict on the suite's whole-table expectations of one table."""
    limit = cfg.max_offending_values
    for expectation in suite.expectations:
        meta = expectation.meta or {}
        rule = meta.get("rule")
        if rule not in WHOLE_TABLE_RULES:
            continue
        column = meta.get("column")
        if rule == RULE_ROWS:
            checks.add(
                dataset, name, None, rule, rows >= 1, kind="row_count", observed=rows, detail=f"observed {rows} rows"
            )
        elif rule == RULE_NOT_ALL_NULL and column in table.columns:
            n = int(_scalar(table[column].nunique(where=_present(table[column]))) or 0)
            if rows:  # an empty table fails "row count" once
                checks.add(
                    dataset,
                    name,
                    column,
                    rule,
                    n >= 1,
                    kind="distinct_count",
                    observed=n,
                    detail=f"observed {n} distinct value(s): every value is missing",
                )
        elif rule == RULE_UNIQUE_KEY and column is not None and column in table.columns:
            key = table[column]
            counts = table.filter(key.notnull()).group_by(column).aggregate(n=lambda t: t.count())
            repeated = counts.filter(counts.n > 1)
            bad = int(_scalar(repeated.n.sum()) or 0)
            checks.add(
                dataset,
                name,
                column,
                rule,
                bad == 0,
                kind="unique",
                unexpected=bad,
                examples=_smallest(repeated, column, limit) if bad else [],
            )
        elif rule == RULE_DUP_IMPRESSIONS:
            _duplicate_impressions(name, table, dataset, expectation, schema, cfg, checks)


def _duplicate_impressions(
    name: str,
    table: ibis.Table,
    dataset: str,
    expectation: Any,
    schema: SchemaConfig,
    cfg: ValidationConfig,
    checks: _Checks,
) -> None:
    """Rows sharing user, item and timestamp instant (parsed by the one parser), among rows with all three."""
    meta = expectation.meta or {}
    ts = schema.timestamp
    instant = "__ccss_instant"
    keyed = table.mutate(**{instant: epoch_ms(table[ts], schema.timestamp_unit, schema.timestamp_format)})
    keyed = keyed.filter(keyed[schema.user].notnull() & keyed[schema.item].notnull() & keyed[instant].notnull())
    groups = keyed.group_by([schema.user, schema.item, instant]).aggregate(n=lambda t: t.count())
    repeated = groups.filter(groups.n > 1)
    bad = int(_scalar(repeated.n.sum()) or 0)
    considered = int(_scalar(keyed.count()) or 0)
    frac = float(getattr(cfg, "max_duplicate_impression_fraction", 0.0))
    ok = bad == 0 if frac <= 0 else (considered == 0 or 1.0 - bad / considered >= 1.0 - frac)
    examples: list[Any] = []
    if bad and not ok:
        first = repeated.order_by([schema.user, schema.item, instant]).limit(cfg.max_offending_values)
        rows = keyed.semi_join(first, [schema.user, schema.item, instant])
        shown = rows.select(*meta.get("source_columns", [])).order_by(meta.get("source_columns", [])).distinct()
        examples = shown.limit(cfg.max_offending_values).to_pandas().to_dict("records")
    checks.add(
        dataset,
        name,
        meta.get("column"),
        RULE_DUP_IMPRESSIONS,
        ok,
        kind="compound_unique",
        unexpected=bad,
        examples=examples,
        detail=str(meta.get("detail", "")),
    )


def _join_rules(
    present: Mapping[str, ibis.Table],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    log_rows: int,
    checks: _Checks,
) -> None:
    """Each side table's key against the log: types that can match, and the share of log rows found."""
    if LOG_TABLE not in present:
        return
    log = present[LOG_TABLE]
    log_origin = origins.get(LOG_TABLE, LOG_TABLE)
    taken = _join_columns(schema, {n: list(t.columns) for n, t in present.items()})
    for name, side in schema.side_tables.items():
        key = side.key
        if name not in present or key not in log.columns or key not in present[name].columns:
            continue
        side_table, side_origin = present[name], origins.get(name, name)
        lt, st = log[key].type(), side_table[key].type()
        kinds = (_kind(lt), _kind(st))
        ok = None in kinds or kinds[0] == kinds[1]
        examples = [] if ok else [*_first_value(log, key), *_first_value(side_table, key)]
        checks.add(
            log_origin,
            LOG_TABLE,
            key,
            RULE_KEY_TYPES,
            ok,
            kind="join_key_types",
            observed={LOG_TABLE: str(lt), name: str(st)},
            examples=examples,
            detail=key_types_detail(key, name, side_origin, kinds, (lt, st)),
        )
        if not ok:
            continue
        keys = side_table.select(key).filter(side_table[key].notnull()).distinct()
        missing = log.anti_join(keys, key) if log_rows else log.limit(0)
        not_found = int(_scalar(missing.count()) or 0)
        coverage = (log_rows - not_found) / log_rows if log_rows else None
        columns = taken.get(name, [])
        gated = bool(columns)
        ok = not gated or coverage is None or coverage >= cfg.min_key_coverage
        observed = {
            "side_table": name,
            "coverage": None if coverage is None else round(coverage, 6),
            "min_key_coverage": cfg.min_key_coverage if gated else "not gated",
        }
        detail = (
            ""
            if coverage is None
            else key_coverage_detail(key, name, side_origin, cfg.min_key_coverage, columns).replace(
                "{coverage}", f"{coverage:.2%}"
            )
        )
        checks.add(
            log_origin,
            LOG_TABLE,
            key,
            RULE_KEY_COVERAGE,
            ok,
            kind="key_coverage",
            unexpected=not_found,
            observed=observed,
            examples=[] if ok else _smallest(missing.filter(missing[key].notnull()), key, cfg.max_offending_values),
            detail=detail,
        )


def _first_value(table: ibis.Table, column: str) -> list[Any]:
    return table.filter(table[column].notnull()).select(column).limit(1).to_pandas()[column].tolist()


def _row_rules_suite(suite: Any) -> Any:
    """The suite without its whole-table expectations (what a batch can decide)."""
    from ccss_pipeline.data.validation.gx_import import ExpectationSuite

    kept = ExpectationSuite(name=f"{suite.name}_rows")
    for expectation in suite.expectations:
        if (expectation.meta or {}).get("rule") not in WHOLE_TABLE_RULES:
            kept.add_expectation(expectation.copy() if hasattr(expectation, "copy") else expectation)
    return kept


def validate_source_tables(
    tables: Mapping[str, ibis.Table],
    origins: Mapping[str, str],
    schema: SchemaConfig,
    cfg: ValidationConfig | None = None,
    *,
    label_required: bool = True,
    title: str = "Raw data validation",
    batch_rows: int = 1_000_000,
) -> ValidationReport:
    """:func:`~ccss_pipeline.data.validation.validate_source` on engine tables (see the module docstring)."""
    cfg = cfg or ValidationConfig()
    head = ValidationReport(success=True, title=title, failures=missing_tables(tables, origins, schema))
    present = {n: tables[n] for n in [LOG_TABLE, *schema.side_tables] if n in tables}
    all_columns = {n: list(t.columns) for n, t in present.items()}
    whole = ValidationReport(success=True, title=title)
    checks = _Checks(whole)
    parts: list[ValidationReport] = []
    rows_of: dict[str, int] = {}
    for name, table in present.items():
        dataset = origins.get(name, name)
        with engine_errors(dataset):  # a file the engine scans lazily fails here, naming it
            rows_of[name] = _validate_table(
                name, table, dataset, all_columns, schema, cfg, label_required, batch_rows, parts, whole, checks
            )
    with engine_errors(origins.get(LOG_TABLE, LOG_TABLE)):
        _join_rules(present, origins, schema, cfg, rows_of.get(LOG_TABLE, 0), checks)
    report = combine_reports([head, *parts, whole], title, cfg.max_offending_values)
    report.tables = whole.tables
    report.success = not report.failures
    return report


def _validate_table(
    name: str,
    table: ibis.Table,
    dataset: str,
    all_columns: dict[str, list[str]],
    schema: SchemaConfig,
    cfg: ValidationConfig,
    label_required: bool,
    batch_rows: int,
    parts: list[ValidationReport],
    whole: ValidationReport,
    checks: _Checks,
) -> int:
    """One table: its row rules batch by batch (appended to ``parts``), its whole-table rules; its rows."""
    suite = build_table_suite(
        name,
        all_columns[name],
        schema,
        cfg,
        all_columns=all_columns,
        non_numeric=_non_numeric(table, [n.name for n in schema.numerical]),
        label_required=label_required,
    )
    rows = int(_scalar(table.count()) or 0)
    whole.tables[name] = TableStats(dataset=dataset, table=name, rows=rows, columns=len(table.columns))
    row_suite = _row_rules_suite(suite)
    for batch in _batches(table, list(table.columns), batch_rows):
        frame = prepare_table(name, batch, schema)
        part = ValidationReport(success=True, title=whole.title)
        for table_name, result in _run_suites([(name, frame, row_suite)], cfg.max_offending_values).items():
            _collect(dataset, table_name, frame, result, cfg.max_offending_values, part)
        parts.append(part)
        del batch, frame  # _batches collects GX's reference cycles between batches
    _whole_table_rules(name, table, rows, dataset, suite, schema, cfg, checks)
    return rows
