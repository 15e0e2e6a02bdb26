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
from dataclasses import dataclass, field
from typing import Any

import ibis
import pandas as pd

from ccss_pipeline.config import SchemaConfig, ValidationConfig
from ccss_pipeline.data.relational.timestamps import epoch_ms
from ccss_pipeline.data.sources import engine_errors
from ccss_pipeline.data.validation.gates import key_coverage_detail, key_types_detail, missing_tables
from ccss_pipeline.data.validation.gx_run import collect_results, engine_batches, run_suites
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
from ccss_pipeline.data.validation.suites import build_table_suite, join_columns, prepare_table

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


@dataclass(frozen=True)
class EngineCheck:
    """One whole-table rule's verdict, computed by the engine (reported as type ``engine:<kind>``)."""

    dataset: str
    table: str
    column: str | None
    rule: str
    ok: bool
    kind: str
    unexpected: int | None = None
    observed: Any = None
    examples: list[Any] = field(default_factory=list)
    detail: str = ""


@dataclass(frozen=True)
class SourceRun:
    """What every table of one source is validated with."""

    schema: SchemaConfig
    cfg: ValidationConfig
    all_columns: Mapping[str, list[str]]
    label_required: bool
    batch_rows: int


class _Findings:
    """The reports of one source's validation: one per batch of row rules (``parts``) and the whole-table
    rules and table sizes (``whole``), combined at the end."""

    def __init__(self, title: str) -> None:
        self.whole = ValidationReport(success=True, title=title)
        self.parts: list[ValidationReport] = []

    def add(self, check: EngineCheck) -> None:
        c = check
        self.whole.outcomes.append(
            ExpectationOutcome(c.dataset, c.table, c.column, c.rule, f"engine:{c.kind}", c.ok, c.unexpected, c.observed)
        )
        if not c.ok:
            self.whole.failures.append(
                Failure(c.dataset, c.table, c.column, c.rule, c.unexpected, list(c.examples or []), c.detail)
            )


def _whole_table_rules(
    name: str, table: ibis.Table, rows: int, dataset: str, suite: Any, run: SourceRun, findings: _Findings
) -> None:
    """The engine's verdict on the suite's whole-table expectations of one table."""
    for expectation in suite.expectations:
        meta = expectation.meta or {}
        rule = meta.get("rule")
        if rule not in WHOLE_TABLE_RULES:
            continue
        column = meta.get("column")
        if rule == RULE_ROWS:
            findings.add(
                EngineCheck(
                    dataset, name, None, rule, rows >= 1, "row_count", observed=rows, detail=f"observed {rows} rows"
                )
            )
        elif rule == RULE_NOT_ALL_NULL and column is not None and column in table.columns:
            if rows:  # an empty table fails "row count" once
                findings.add(_not_entirely_null(dataset, name, table, column))
        elif rule == RULE_UNIQUE_KEY and column is not None and column in table.columns:
            findings.add(_unique_key(dataset, name, table, column, run.cfg.max_offending_values))
        elif rule == RULE_DUP_IMPRESSIONS:
            findings.add(_duplicate_impressions(name, table, dataset, expectation, run))


def _not_entirely_null(dataset: str, name: str, table: ibis.Table, column: str) -> EngineCheck:
    n = int(_scalar(table[column].nunique(where=_present(table[column]))) or 0)
    detail = f"observed {n} distinct value(s): every value is missing"
    return EngineCheck(dataset, name, column, RULE_NOT_ALL_NULL, n >= 1, "distinct_count", observed=n, detail=detail)


def _unique_key(dataset: str, name: str, table: ibis.Table, column: str, limit: int) -> EngineCheck:
    """Rows whose (non-null) key another row shares; examples are the smallest repeated keys."""
    counts = table.filter(table[column].notnull()).group_by(column).aggregate(n=lambda t: t.count())
    repeated = counts.filter(counts.n > 1)
    bad = int(_scalar(repeated.n.sum()) or 0)
    examples = _smallest(repeated, column, limit) if bad else []
    return EngineCheck(dataset, name, column, RULE_UNIQUE_KEY, bad == 0, "unique", unexpected=bad, examples=examples)


def _duplicate_impressions(name: str, table: ibis.Table, dataset: str, expectation: Any, run: SourceRun) -> EngineCheck:
    """Rows sharing user, item and timestamp instant (parsed by the one parser), among rows with all three."""
    schema, cfg = run.schema, run.cfg
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
    return EngineCheck(
        dataset,
        name,
        meta.get("column"),
        RULE_DUP_IMPRESSIONS,
        ok,
        "compound_unique",
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
    findings: _Findings,
) -> None:
    """Each side table's key against the log: types that can match, and the share of log rows found."""
    if LOG_TABLE not in present:
        return
    log = present[LOG_TABLE]
    taken = join_columns(schema, {n: list(t.columns) for n, t in present.items()})
    for name, side in schema.side_tables.items():
        key = side.key
        if name not in present or key not in log.columns or key not in present[name].columns:
            continue
        types = _key_types(key, name, present, origins)
        findings.add(types)
        if types.ok:
            findings.add(_key_coverage(key, name, (log, present[name]), origins, log_rows, taken.get(name, []), cfg))


def _key_types(key: str, name: str, present: Mapping[str, ibis.Table], origins: Mapping[str, str]) -> EngineCheck:
    """ "join key types match": both keys numbers, or both strings, or both datetimes (from the schemas)."""
    log, side_table = present[LOG_TABLE], present[name]
    lt, st = log[key].type(), side_table[key].type()
    kinds = (_kind(lt), _kind(st))
    ok = None in kinds or kinds[0] == kinds[1]
    return EngineCheck(
        origins.get(LOG_TABLE, LOG_TABLE),
        LOG_TABLE,
        key,
        RULE_KEY_TYPES,
        ok,
        "join_key_types",
        observed={LOG_TABLE: str(lt), name: str(st)},
        examples=[] if ok else [*_first_value(log, key), *_first_value(side_table, key)],
        detail=key_types_detail(key, name, origins.get(name, name), kinds, (lt, st)),
    )


def _key_coverage(
    key: str,
    name: str,
    tables: tuple[ibis.Table, ibis.Table],
    origins: Mapping[str, str],
    log_rows: int,
    taken: list[str],
    cfg: ValidationConfig,
) -> EngineCheck:
    """ "key found in side table": the share of log rows whose key the side table holds (an anti-join),
    gated when the join takes a schema column (``taken``) from the side table."""
    log, side_table = tables
    side_origin = origins.get(name, name)
    keys = side_table.select(key).filter(side_table[key].notnull()).distinct()
    missing = log.anti_join(keys, key) if log_rows else log.limit(0)
    not_found = int(_scalar(missing.count()) or 0)
    coverage = (log_rows - not_found) / log_rows if log_rows else None
    gated = bool(taken)
    ok = not gated or coverage is None or coverage >= cfg.min_key_coverage
    observed = {
        "side_table": name,
        "coverage": None if coverage is None else round(coverage, 6),
        "min_key_coverage": cfg.min_key_coverage if gated else "not gated",
    }
    detail = (
        ""
        if coverage is None
        else key_coverage_detail(key, name, side_origin, cfg.min_key_coverage, taken).replace(
            "{coverage}", f"{coverage:.2%}"
        )
    )
    return EngineCheck(
        dataset=origins.get(LOG_TABLE, LOG_TABLE),
        table=LOG_TABLE,
        column=key,
        rule=RULE_KEY_COVERAGE,
        ok=ok,
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
    run = SourceRun(schema, cfg, {n: list(t.columns) for n, t in present.items()}, label_required, batch_rows)
    findings = _Findings(title)
    rows_of: dict[str, int] = {}
    for name, table in present.items():
        dataset = origins.get(name, name)
        with engine_errors(dataset):  # a file the engine scans lazily fails here, naming it
            rows_of[name] = _validate_table(name, table, dataset, run, findings)
    with engine_errors(origins.get(LOG_TABLE, LOG_TABLE)):
        _join_rules(present, origins, schema, cfg, rows_of.get(LOG_TABLE, 0), findings)
    report = combine_reports([head, *findings.parts, findings.whole], title, cfg.max_offending_values)
    report.tables = findings.whole.tables
    report.success = not report.failures
    return report


def _validate_table(name: str, table: ibis.Table, dataset: str, run: SourceRun, findings: _Findings) -> int:
    """One table: its row rules batch by batch (one report each in ``findings.parts``), its whole-table
    rules; returns its rows."""
    schema, cfg = run.schema, run.cfg
    suite = build_table_suite(
        name,
        run.all_columns[name],
        schema,
        cfg,
        all_columns=run.all_columns,
        non_numeric=_non_numeric(table, [n.name for n in schema.numerical]),
        label_required=run.label_required,
    )
    rows = int(_scalar(table.count()) or 0)
    findings.whole.tables[name] = TableStats(dataset=dataset, table=name, rows=rows, columns=len(table.columns))
    row_suite = _row_rules_suite(suite)
    for batch in engine_batches(table, list(table.columns), run.batch_rows):
        frame = prepare_table(name, batch, schema)
        part = ValidationReport(success=True, title=findings.whole.title)
        for table_name, result in run_suites([(name, frame, row_suite)], cfg.max_offending_values).items():
            collect_results(dataset, table_name, frame, result, cfg.max_offending_values, part)
        findings.parts.append(part)
        del batch, frame  # engine_batches collects GX's reference cycles between batches
    _whole_table_rules(name, table, rows, dataset, suite, run, findings)
    return rows
